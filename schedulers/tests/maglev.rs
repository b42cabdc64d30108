//! Maglev figures: spread of table entries and keys moved when one destination goes or
//! comes, printed as the table in the crate documentation
//! (`cargo test -p rvs-schedulers --release --test maglev -- --nocapture`).

use std::time::Instant;

use rvs_core::Addr;
use rvs_core::rng::SplitMix64;
use rvs_core::service::Dest;
use rvs_schedulers::conformance::test_dest;
use rvs_schedulers::mh::MaglevTable;

const KEYS: usize = 200_000;

struct Figures {
    spread: f64,
    removed: f64,
    added: f64,
}

/// Destination id per key.
fn map(t: &MaglevTable, dests: &[Dest], keys: &[Addr]) -> Vec<u32> {
    keys.iter()
        .map(|&k| {
            let i = t.dest_at(t.slot_of(k, 0)).expect("full table");
            dests[i].id.0
        })
        .collect()
}

fn moved(a: &[u32], b: &[u32]) -> f64 {
    a.iter().zip(b).filter(|(x, y)| x != y).count() as f64 / a.len() as f64
}

fn measure(n: u32, m: u32, keys: &[Addr]) -> Figures {
    let dests: Vec<Dest> = (0..n).map(test_dest).collect();
    let t = MaglevTable::build(&dests, m).expect("build");
    let mut per = vec![0u32; n as usize];
    for &s in t.slots.iter() {
        per[s as usize] += 1;
    }
    let (mx, mn) = (*per.iter().max().expect("n > 0"), *per.iter().min().expect("n > 0"));
    let base = map(&t, &dests, keys);
    // Remove the middle destination.
    let mut fewer = dests.clone();
    let gone = fewer.remove(n as usize / 2).id.0;
    let tf = MaglevTable::build(&fewer, m).expect("build");
    let after_remove = map(&tf, &fewer, keys);
    // Keys of the removed destination must move; no other key should, ideally.
    for (b, a) in base.iter().zip(&after_remove) {
        assert!(*b == gone || *a != gone);
    }
    // Add one.
    let mut more = dests.clone();
    more.push(test_dest(n));
    let tm = MaglevTable::build(&more, m).expect("build");
    let after_add = map(&tm, &more, keys);
    Figures {
        spread: mx as f64 / mn as f64,
        removed: moved(&base, &after_remove),
        added: moved(&base, &after_add),
    }
}

#[test]
fn maglev_spread_and_disruption() {
    let mut rng = SplitMix64::new(2016);
    let keys: Vec<Addr> = (0..KEYS).map(|_| Addr::from_v4_u32(rng.next_u64() as u32)).collect();
    println!("| N | M | spread max/min | moved, one removed (ideal 1/N) | moved, one added (ideal 1/(N+1)) |");
    let mut last_1000 = 1.0f64;
    for (n, m) in [
        (10, 4093),
        (100, 4093),
        (10, 65537),
        (100, 65537),
        (1000, 65537),
        (1000, 655_373),
    ] {
        let f = measure(n, m, &keys);
        if n == 1000 {
            // A larger table disrupts less (the paper's section 5.3).
            assert!(
                f.removed < last_1000,
                "N 1000 M {m}: moved {} not below {last_1000}",
                f.removed
            );
            last_1000 = f.removed;
        }
        let (ir, ia) = (1.0 / n as f64, 1.0 / (n as f64 + 1.0));
        println!(
            "| {n} | {m} | {:.3} | {:.2}% ({:.2}%) | {:.2}% ({:.2}%) |",
            f.spread,
            f.removed * 100.0,
            ir * 100.0,
            f.added * 100.0,
            ia * 100.0
        );
        // The paper's guidance: M > 100 N keeps entries within a few percent of each other.
        if m >= 100 * n {
            assert!(f.spread < 1.05, "N {n} M {m}: spread {}", f.spread);
        }
        assert!(f.spread < 1.6, "N {n} M {m}: spread {}", f.spread);
        // Moved keys: at least the ideal share (minus sampling noise), and a bounded multiple of
        // it: Maglev trades some disruption for balance (the paper's sections 3.4 and 5.3),
        // more so when M is small against N.
        let slack = 10.0;
        assert!(
            f.removed > ir * 0.9 && f.removed < ir * slack,
            "N {n} M {m}: removed moved {}",
            f.removed
        );
        assert!(
            f.added > ia * 0.9 && f.added < ia * slack,
            "N {n} M {m}: added moved {}",
            f.added
        );
    }
    let dests: Vec<Dest> = (0..1000).map(test_dest).collect();
    let t0 = Instant::now();
    let t = MaglevTable::build(&dests, 65537).expect("build");
    println!("build N 1000 M 65537: {:?} ({} slots)", t0.elapsed(), t.size());
}
