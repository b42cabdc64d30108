//! Labels: the small enums a stage declares for its next stages and its drop reasons, with
//! names and one-line descriptions, so counters are named, never addressed by offset.

/// A fieldless enum usable as a counter index.
pub trait Label: Copy + Eq + std::fmt::Debug + 'static {
    /// Every value, in index order.
    const ALL: &'static [Self];
    /// Index into [`Label::ALL`].
    fn index(self) -> usize;
    /// Short name, used in counters and metrics.
    fn name(self) -> &'static str;
    /// One line saying what it means.
    fn describe(self) -> &'static str;
}

/// Declares a fieldless enum and its [`Label`] implementation. Every variant carries its
/// counter name and a one-line description:
///
/// ```
/// rvs_core::labels! {
///     /// Why the example stage drops.
///     pub enum ExampleDrop {
///         /// Shorter than its headers.
///         Truncated = ("truncated", "packet shorter than its headers"),
///         /// Not IPv4 or IPv6.
///         NotIp = ("not_ip", "ethertype is neither IPv4 nor IPv6"),
///     }
/// }
/// use rvs_core::label::Label;
/// assert_eq!(ExampleDrop::NotIp.index(), 1);
/// assert_eq!(ExampleDrop::ALL.len(), 2);
/// assert_eq!(ExampleDrop::Truncated.name(), "truncated");
/// ```
#[macro_export]
macro_rules! labels {
    (
        $(#[$m:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vm:meta])* $var:ident = ($n:literal, $d:literal) ),+ $(,)?
        }
    ) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name { $( $(#[$vm])* $var ),+ }

        impl $crate::label::Label for $name {
            const ALL: &'static [Self] = &[ $( $name::$var ),+ ];
            #[inline]
            fn index(self) -> usize { self as usize }
            fn name(self) -> &'static str { match self { $( $name::$var => $n ),+ } }
            fn describe(self) -> &'static str { match self { $( $name::$var => $d ),+ } }
        }
    };
}

labels! {
    /// The label set of a stage that has no next stage or no drop reason of its own.
    pub enum Never {
        /// Never used.
        Unused = ("unused", "never used"),
    }
}
