//! Classic pcap files (microsecond and nanosecond timestamp magics) as lists of
//! `(timestamp_ns, bytes)` records, over the `pcap-file` crate. Used by the golden tests and
//! by `rvs replay` tests.
//!
//! Only Ethernet link type is written; reading accepts any link type and reports it.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::time::Duration;

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter};
use pcap_file::{DataLink, Endianness, TsResolution};

/// One captured packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Capture time, nanoseconds since the Unix epoch (or any origin the writer chose).
    pub ts_ns: u64,
    /// The captured bytes.
    pub bytes: Vec<u8>,
}

impl Record {
    /// A record.
    pub fn new(ts_ns: u64, bytes: Vec<u8>) -> Self {
        Record { ts_ns, bytes }
    }
}

/// Timestamp resolution of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// Magic 0xa1b2c3d4: microseconds.
    Micro,
    /// Magic 0xa1b23c4d: nanoseconds.
    Nano,
}

/// An error reading or writing a pcap file.
#[derive(Debug)]
pub struct PcapError(pub String);

impl std::fmt::Display for PcapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PcapError {}

fn err(what: &str, e: impl std::fmt::Display) -> PcapError {
    PcapError(format!("{what}: {e}"))
}

/// What a file held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capture {
    /// Timestamp resolution of the file.
    pub resolution: Resolution,
    /// Link type (1 is Ethernet).
    pub linktype: u32,
    /// The packets in file order.
    pub records: Vec<Record>,
}

/// Read a pcap stream.
pub fn read_from(r: impl Read) -> Result<Capture, PcapError> {
    let mut rd = PcapReader::new(r).map_err(|e| err("pcap header", e))?;
    let h = rd.header();
    let resolution = match h.ts_resolution {
        TsResolution::MicroSecond => Resolution::Micro,
        TsResolution::NanoSecond => Resolution::Nano,
    };
    let mut records = Vec::new();
    while let Some(p) = rd.next_packet() {
        let p = p.map_err(|e| err(&format!("pcap record {}", records.len()), e))?;
        let ts = u64::try_from(p.timestamp.as_nanos()).unwrap_or(u64::MAX);
        records.push(Record::new(ts, p.data.into_owned()));
    }
    Ok(Capture {
        resolution,
        linktype: u32::from(h.datalink),
        records,
    })
}

/// Read a pcap file.
pub fn read(path: impl AsRef<Path>) -> Result<Capture, PcapError> {
    let p = path.as_ref();
    let f = File::open(p).map_err(|e| err(&p.display().to_string(), e))?;
    read_from(BufReader::new(f))
}

/// Write Ethernet records to a stream (little-endian, snaplen 65535). With
/// [`Resolution::Micro`] the nanoseconds below a microsecond are lost.
pub fn write_to(w: impl Write, resolution: Resolution, records: &[Record]) -> Result<(), PcapError> {
    let header = PcapHeader {
        version_major: 2,
        version_minor: 4,
        ts_correction: 0,
        ts_accuracy: 0,
        snaplen: 65535,
        datalink: DataLink::ETHERNET,
        ts_resolution: match resolution {
            Resolution::Micro => TsResolution::MicroSecond,
            Resolution::Nano => TsResolution::NanoSecond,
        },
        endianness: Endianness::Little,
    };
    let mut wr = PcapWriter::with_header(w, header).map_err(|e| err("pcap header", e))?;
    for (i, r) in records.iter().enumerate() {
        let len = u32::try_from(r.bytes.len()).map_err(|_| PcapError(format!("record {i} too long")))?;
        let pkt = PcapPacket::new(Duration::from_nanos(r.ts_ns), len, &r.bytes);
        wr.write_packet(&pkt).map_err(|e| err(&format!("pcap record {i}"), e))?;
    }
    let mut inner = wr.into_writer();
    inner.flush().map_err(|e| err("flush", e))
}

/// Write Ethernet records to a file.
pub fn write(path: impl AsRef<Path>, resolution: Resolution, records: &[Record]) -> Result<(), PcapError> {
    let p = path.as_ref();
    let f = File::create(p).map_err(|e| err(&p.display().to_string(), e))?;
    write_to(BufWriter::new(f), resolution, records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records() -> Vec<Record> {
        vec![
            Record::new(1_700_000_000_123_456_789, vec![1, 2, 3]),
            Record::new(1_700_000_001_000_000_001, vec![0xff; 60]),
        ]
    }

    #[test]
    fn nanosecond_round_trip_is_exact() {
        let mut buf = Vec::new();
        write_to(&mut buf, Resolution::Nano, &records()).expect("write");
        assert_eq!(&buf[..4], &0xa1b23c4du32.to_le_bytes(), "nanosecond magic");
        let c = read_from(&buf[..]).expect("read");
        assert_eq!(c.resolution, Resolution::Nano);
        assert_eq!(c.linktype, 1);
        assert_eq!(c.records, records());
    }

    #[test]
    fn microsecond_round_trip_drops_sub_microsecond_digits() {
        let mut buf = Vec::new();
        write_to(&mut buf, Resolution::Micro, &records()).expect("write");
        assert_eq!(&buf[..4], &0xa1b2c3d4u32.to_le_bytes(), "microsecond magic");
        let c = read_from(&buf[..]).expect("read");
        assert_eq!(c.resolution, Resolution::Micro);
        let want: Vec<u64> = records().iter().map(|r| r.ts_ns / 1000 * 1000).collect();
        let got: Vec<u64> = c.records.iter().map(|r| r.ts_ns).collect();
        assert_eq!(got, want);
        assert_eq!(c.records[1].bytes, vec![0xff; 60]);
    }

    #[test]
    fn reads_a_hand_written_big_endian_file() {
        // Global header (big-endian, microseconds, Ethernet) and one 4-byte record at
        // 2 s + 5 us, written out by hand from the format description (pcap(5)).
        let mut f = Vec::new();
        f.extend_from_slice(&0xa1b2c3d4u32.to_be_bytes());
        f.extend_from_slice(&2u16.to_be_bytes());
        f.extend_from_slice(&4u16.to_be_bytes());
        f.extend_from_slice(&0i32.to_be_bytes());
        f.extend_from_slice(&0u32.to_be_bytes());
        f.extend_from_slice(&65535u32.to_be_bytes());
        f.extend_from_slice(&1u32.to_be_bytes());
        f.extend_from_slice(&2u32.to_be_bytes());
        f.extend_from_slice(&5u32.to_be_bytes());
        f.extend_from_slice(&4u32.to_be_bytes());
        f.extend_from_slice(&4u32.to_be_bytes());
        f.extend_from_slice(&[9, 8, 7, 6]);
        let c = read_from(&f[..]).expect("read");
        assert_eq!(c.records, vec![Record::new(2_000_005_000, vec![9, 8, 7, 6])]);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(read_from(&[1u8, 2, 3][..]).is_err());
        let mut buf = Vec::new();
        write_to(&mut buf, Resolution::Nano, &records()).expect("write");
        buf.truncate(buf.len() - 10);
        assert!(read_from(&buf[..]).is_err());
        assert!(read("/nonexistent/rvs-testkit.pcap").is_err());
    }
}
