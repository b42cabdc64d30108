//! Classic pcap files in and out (microsecond and nanosecond timestamps read; nanosecond
//! written), through the `pcap-file` crate.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use pcap_file::DataLink;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter};

/// One record: timestamp in nanoseconds and the frame.
pub type Record = (u64, Vec<u8>);

/// Read every record of `path` (Ethernet link type only).
pub fn read(path: &Path) -> anyhow::Result<Vec<Record>> {
    let f = File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let mut r = PcapReader::new(BufReader::new(f)).with_context(|| format!("{}: not a pcap file", path.display()))?;
    let dl = r.header().datalink;
    if dl != DataLink::ETHERNET {
        anyhow::bail!("{}: link type {:?} is not Ethernet", path.display(), dl);
    }
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        let p = p.with_context(|| format!("{}: record {} is unreadable", path.display(), out.len() + 1))?;
        out.push((p.timestamp.as_nanos() as u64, p.data.into_owned()));
    }
    Ok(out)
}

/// A pcap file being written, nanosecond timestamps.
pub struct Writer {
    w: PcapWriter<BufWriter<File>>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("pcap::Writer")
    }
}

impl Writer {
    /// Create `path`.
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        let f = File::create(path).with_context(|| format!("{}: cannot create", path.display()))?;
        let header = PcapHeader {
            ts_resolution: pcap_file::TsResolution::NanoSecond,
            datalink: DataLink::ETHERNET,
            ..PcapHeader::default()
        };
        let w = PcapWriter::with_header(BufWriter::new(f), header)
            .with_context(|| format!("{}: cannot write", path.display()))?;
        Ok(Writer { w })
    }
    /// Append one frame.
    pub fn write(&mut self, ts_ns: u64, data: &[u8]) -> anyhow::Result<()> {
        let pkt = PcapPacket::new(Duration::from_nanos(ts_ns), data.len() as u32, data);
        self.w.write_packet(&pkt).context("cannot write a pcap record")?;
        Ok(())
    }
}
