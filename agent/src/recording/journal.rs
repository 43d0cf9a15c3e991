//! The capture journal: the piece being recorded, access unit by access unit, as it
//! arrives, so a crash or power cut loses at most the last `sync_ms` of video.
//!
//! ```text
//! file   = "VIGILJ1\n" u32le(header_len) header_json  unit*
//! unit   = u32le(UNIT_MAGIC) u32le(len) u8(flags) u64le(pts_ns) u64le(dts_ns) i64le(wall_ns)
//!          bytes[len] u32le(crc32 of flags..bytes)
//! flags  = bit 0: key frame;  pts/dts u64::MAX = unknown
//! ```
//!
//! Each unit is one `write(2)` (a `kill -9` loses nothing the call returned from);
//! `fdatasync` runs every `sync_ms` from the sync thread (a power cut loses at most
//! that). Reading stops at the first unit that is short or fails its CRC: that is
//! where the writes that reached the disk end.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

const FILE_MAGIC: &[u8; 8] = b"VIGILJ1\n";
const UNIT_MAGIC: u32 = 0x5641_5531; // "VAU1"
const MAX_HEADER: u32 = 64 * 1024;
/// Largest access unit accepted when reading (a 4K key frame is a few MB).
const MAX_UNIT: u32 = 64 << 20;
const NONE: u64 = u64::MAX;

/// What the journal is the start of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalHeader {
    /// Camera.
    pub camera_id: String,
    /// The piece this journal becomes (its clip id, UUIDv7).
    pub piece_id: uuid::Uuid,
    /// The stream's caps (`gst::Caps` string), needed to mux the units.
    pub caps: String,
    /// `continues`, `agent_start` or `stream_restart`.
    pub start_reason: vigil_evidence::manifest::PieceStart,
}

/// One access unit as journaled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalUnit {
    /// The camera's bytes.
    pub bytes: Vec<u8>,
    /// Stream-time PTS in ns.
    pub pts: Option<u64>,
    /// Stream-time DTS in ns.
    pub dts: Option<u64>,
    /// Key frame.
    pub keyframe: bool,
    /// Arrival time, Unix ns.
    pub wall_ns: i64,
}

/// An open journal being appended to.
pub struct JournalWriter {
    file: File,
}

impl JournalWriter {
    /// Creates `path` (which must not exist) with `header`, fsyncs it and its directory.
    pub fn create(path: &Path, header: &JournalHeader) -> std::io::Result<JournalWriter> {
        let json = serde_json::to_vec(header)?;
        let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
        let mut head = Vec::with_capacity(12 + json.len());
        head.extend_from_slice(FILE_MAGIC);
        head.extend_from_slice(&(json.len() as u32).to_le_bytes());
        head.extend_from_slice(&json);
        file.write_all(&head)?;
        file.sync_data()?;
        if let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(JournalWriter { file })
    }

    /// Appends one unit with a single write.
    pub fn append(
        &mut self,
        bytes: &[u8],
        pts: Option<u64>,
        dts: Option<u64>,
        keyframe: bool,
        wall_ns: i64,
    ) -> std::io::Result<()> {
        let mut rec = Vec::with_capacity(37 + bytes.len());
        rec.extend_from_slice(&UNIT_MAGIC.to_le_bytes());
        rec.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        let body_start = rec.len();
        rec.push(u8::from(keyframe));
        rec.extend_from_slice(&pts.unwrap_or(NONE).to_le_bytes());
        rec.extend_from_slice(&dts.unwrap_or(NONE).to_le_bytes());
        rec.extend_from_slice(&wall_ns.to_le_bytes());
        rec.extend_from_slice(bytes);
        let crc = crc32fast::hash(&rec[body_start..]);
        rec.extend_from_slice(&crc.to_le_bytes());
        self.file.write_all(&rec)
    }

    /// A second handle on the file, for the sync thread's `fdatasync`.
    pub fn sync_handle(&self) -> std::io::Result<File> {
        self.file.try_clone()
    }
}

/// A journal read back: its header and every unit that reached the disk whole.
#[derive(Debug)]
pub struct Journal {
    /// The header.
    pub header: JournalHeader,
    /// Units in write (decode) order.
    pub units: Vec<JournalUnit>,
    /// True when the file ends in a partial or damaged unit (the crash point).
    pub torn: bool,
}

/// Reads a journal; `Err` only when its header is unusable (then nothing in it can be
/// muxed and the caller reports it).
pub fn read(path: &Path) -> Result<Journal, String> {
    let mut data = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut data))
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if data.len() < 12 || &data[..8] != FILE_MAGIC {
        return Err(format!(
            "{} is not a capture journal (no VIGILJ1 header)",
            path.display()
        ));
    }
    let hlen = u32::from_le_bytes([data[8], data[9], data[10], data[11]]);
    if hlen > MAX_HEADER || data.len() < 12 + hlen as usize {
        return Err(format!("{}: journal header is truncated", path.display()));
    }
    let header: JournalHeader = serde_json::from_slice(&data[12..12 + hlen as usize])
        .map_err(|e| format!("{}: journal header does not parse: {e}", path.display()))?;
    let mut pos = 12 + hlen as usize;
    let mut units = Vec::new();
    let mut torn = false;
    while pos < data.len() {
        match unit_at(&data, pos) {
            Some((unit, next)) => {
                units.push(unit);
                pos = next;
            }
            None => {
                torn = true;
                break;
            }
        }
    }
    Ok(Journal {
        header,
        units,
        torn,
    })
}

fn unit_at(data: &[u8], pos: usize) -> Option<(JournalUnit, usize)> {
    let u32_at = |p: usize| {
        data.get(p..p + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |p: usize| {
        data.get(p..p + 8).map(|b| {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            u64::from_le_bytes(a)
        })
    };
    if u32_at(pos)? != UNIT_MAGIC {
        return None;
    }
    let len = u32_at(pos + 4)?;
    if len > MAX_UNIT {
        return None;
    }
    let body = pos + 8;
    let bytes_at = body + 25;
    let end = bytes_at.checked_add(len as usize)?;
    let crc = u32_at(end)?;
    if crc32fast::hash(data.get(body..end)?) != crc {
        return None;
    }
    let opt = |v: u64| (v != NONE).then_some(v);
    Some((
        JournalUnit {
            keyframe: data[body] & 1 == 1,
            pts: opt(u64_at(body + 1)?),
            dts: opt(u64_at(body + 9)?),
            wall_ns: u64_at(body + 17)? as i64,
            bytes: data[bytes_at..end].to_vec(),
        },
        end + 4,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_or_damaged_tail_ends_the_journal_and_keeps_every_whole_unit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("p.vjl");
        let header = JournalHeader {
            camera_id: "cam1".into(),
            piece_id: uuid::Uuid::now_v7(),
            caps: "video/x-h264".into(),
            start_reason: vigil_evidence::manifest::PieceStart::AgentStart,
        };
        let mut w = JournalWriter::create(&path, &header).expect("create");
        for i in 0..5u8 {
            w.append(
                &[i; 100],
                Some(u64::from(i) * 100),
                None,
                i == 0,
                1_000 + i64::from(i),
            )
            .expect("append");
        }
        let whole = std::fs::read(&path).expect("read");
        let j = read(&path).expect("journal");
        assert_eq!(j.header, header);
        assert_eq!(j.units.len(), 5);
        assert!(!j.torn);
        assert!(j.units[0].keyframe && !j.units[1].keyframe);
        assert_eq!(j.units[3].pts, Some(300));
        assert_eq!(j.units[3].dts, None);
        assert_eq!(j.units[4].bytes, vec![4u8; 100]);
        // Cut in the middle of the last unit: four units survive.
        std::fs::write(&path, &whole[..whole.len() - 50]).expect("write");
        let j = read(&path).expect("journal");
        assert_eq!((j.units.len(), j.torn), (4, true));
        // A flipped byte in unit 2 ends the journal there (nothing after it is trusted).
        let mut bad = whole.clone();
        let unit_len = 8 + 25 + 100 + 4;
        let at = whole.len() - 3 * unit_len + 40;
        bad[at] ^= 0xff;
        std::fs::write(&path, &bad).expect("write");
        let j = read(&path).expect("journal");
        assert_eq!((j.units.len(), j.torn), (2, true));
        // Not a journal at all.
        std::fs::write(&path, b"hello").expect("write");
        assert!(read(&path).unwrap_err().contains("not a capture journal"));
    }
}
