//! What the `rvs run` tests that drive the real binary through FIFOs share: a pcap stream
//! written into a FIFO that net_pcap reads, and the records of an output pcap read while rvs
//! is still writing it.

use std::fs::File;
use std::io::Write;
use std::path::Path;

/// A pcap stream the test writes into a FIFO (the global header already written).
pub struct Feed {
    /// The FIFO.
    pub f: File,
    /// Timestamp of the last record, microseconds.
    pub t: u64,
}

impl Feed {
    /// Write one frame as a microsecond pcap record, 1 ms after the previous one.
    pub fn send(&mut self, frame: &[u8]) {
        self.t += 1000;
        let mut rec = Vec::with_capacity(16 + frame.len());
        rec.extend_from_slice(&((self.t / 1_000_000) as u32).to_le_bytes());
        rec.extend_from_slice(&((self.t % 1_000_000) as u32).to_le_bytes());
        rec.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        rec.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        rec.extend_from_slice(frame);
        self.f.write_all(&rec).expect("write to rvs's FIFO");
        self.f.flush().expect("flush");
    }
}

/// Records of a pcap file being written: everything complete so far.
pub fn read_records(path: &Path) -> Vec<Vec<u8>> {
    let b = std::fs::read(path).unwrap_or_default();
    let mut out = Vec::new();
    let mut i = 24;
    while i + 16 <= b.len() {
        let cap = u32::from_le_bytes([b[i + 8], b[i + 9], b[i + 10], b[i + 11]]) as usize;
        if i + 16 + cap > b.len() {
            break;
        }
        out.push(b[i + 16..i + 16 + cap].to_vec());
        i += 16 + cap;
    }
    out
}
