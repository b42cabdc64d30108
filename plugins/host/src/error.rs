//! Why a plugin could not be loaded. Every variant names the plugin and what is wrong with
//! it, so an operator can act on the message alone.

use std::path::PathBuf;

/// A plugin load failure (the service keeps its previous scheduler).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The engine could not be configured (a host problem, not the plugin's).
    #[error("wasm engine: {0}")]
    Engine(String),
    /// The file could not be read.
    #[error("plugin {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not WebAssembly at all.
    #[error("plugin {name}: not a WebAssembly module (no \\0asm header, and not WAT text)")]
    NotWasm {
        /// The plugin.
        name: String,
    },
    /// A component, not a core module.
    #[error("plugin {name}: is a WebAssembly component; rvs plugins are core modules (ABI.md section 1)")]
    Component {
        /// The plugin.
        name: String,
    },
    /// wasmtime refused it (invalid, or uses a proposal the host does not enable).
    #[error("plugin {name}: does not compile: {reason}")]
    Compile {
        /// The plugin.
        name: String,
        /// wasmtime's message.
        reason: String,
    },
    /// The module needs more than an instance slot of the host holds (a memory starting
    /// beyond the cap, too many tables or memories).
    #[error("plugin {name}: exceeds the host's instance limits (memory cap {cap} bytes): {reason}")]
    Limits {
        /// The plugin.
        name: String,
        /// The host's memory cap.
        cap: usize,
        /// wasmtime's message.
        reason: String,
    },
    /// No `rvs_abi_vN` export.
    #[error("plugin {name}: exports no rvs_abi_v1 marker: not an rvs scheduler plugin")]
    NoMarker {
        /// The plugin.
        name: String,
    },
    /// A major version this host does not speak.
    #[error("plugin {name}: unknown ABI major version {found}; this host supports {supported}")]
    UnknownMajor {
        /// The plugin.
        name: String,
        /// The major in its marker.
        found: u32,
        /// This host's.
        supported: u32,
    },
    /// A newer minor than the host's.
    #[error("plugin {name}: needs ABI {major}.{found}; this host supports {major}.{supported}")]
    NewerMinor {
        /// The plugin.
        name: String,
        /// Major.
        major: u32,
        /// The plugin's minor.
        found: i64,
        /// This host's.
        supported: u32,
    },
    /// A required export is missing.
    #[error("plugin {name}: missing export `{export}` (ABI.md section 1)")]
    MissingExport {
        /// The plugin.
        name: String,
        /// The export.
        export: &'static str,
    },
    /// An export has the wrong kind or signature.
    #[error("plugin {name}: export `{export}` should be {expected}, is {found}")]
    ExportType {
        /// The plugin.
        name: String,
        /// The export.
        export: String,
        /// What ABI.md says.
        expected: &'static str,
        /// What the module has.
        found: String,
    },
    /// An import the host does not provide (WASI included).
    #[error("plugin {name}: imports `{module}.{field}`; the host provides only `rvs.log(i32, i32, i32)` and no WASI")]
    Import {
        /// The plugin.
        name: String,
        /// Import module.
        module: String,
        /// Import name.
        field: String,
    },
    /// The memory is of a kind the host refuses, or too large from the start.
    #[error("plugin {name}: memory {what}")]
    Memory {
        /// The plugin.
        name: String,
        /// What is wrong.
        what: String,
    },
    /// A `plugin_config` was given and the plugin takes none.
    #[error("plugin {name}: a plugin_config was given but the plugin exports no rvs_config_buf/rvs_configure")]
    ConfigUnsupported {
        /// The plugin.
        name: String,
    },
    /// The plugin has no room for the configuration.
    #[error("plugin {name}: refused a plugin_config of {len} bytes (rvs_config_buf returned no usable buffer)")]
    ConfigTooLarge {
        /// The plugin.
        name: String,
        /// The blob's length.
        len: usize,
    },
    /// The plugin refused its configuration.
    #[error("plugin {name}: rejected its plugin_config (rvs_configure returned {code})")]
    ConfigRejected {
        /// The plugin.
        name: String,
        /// Its status code.
        code: i32,
    },
    /// The probe instance failed (trap, timeout, memory cap, bad table address).
    #[error("plugin {name}: failed its load-time probe: {what}")]
    Probe {
        /// The plugin.
        name: String,
        /// What happened.
        what: String,
    },
}
