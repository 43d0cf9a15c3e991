//! A small, independent MP4 reader for the first video track's samples (the test
//! oracle: it shares no code with the agent's muxer or the evidence crate's reader).
//! Handles non-fragmented files (`stsz`/`stsc`/`stco`|`co64`/`stts`/`ctts`/`stss`).

use std::path::Path;

use anyhow::{bail, ensure, Context, Result};

/// One video sample, in decode order.
#[derive(Debug, Clone)]
pub struct Sample {
    /// The sample's bytes (length-prefixed NAL units).
    pub data: Vec<u8>,
    /// Decode time in track timescale units.
    pub dts: i64,
    /// Presentation time in track timescale units (dts + composition offset).
    pub pts: i64,
    /// Listed in `stss` (or every sample when `stss` is absent).
    pub sync: bool,
}

/// The first video track of an MP4 file.
#[derive(Debug, Clone)]
pub struct VideoTrack {
    /// Sample entry type: `avc1`, `avc3`, `hvc1`, ...
    pub codec: String,
    pub width: u16,
    pub height: u16,
    /// Ticks per second of `dts`/`pts`.
    pub timescale: u32,
    /// Bytes of each NAL length prefix (from `avcC`/`hvcC`).
    pub length_size: usize,
    /// Parameter sets from `avcC` (SPS then PPS), without start codes.
    pub parameter_sets: Vec<Vec<u8>>,
    pub samples: Vec<Sample>,
}

impl VideoTrack {
    /// Read the first video track of the MP4 file at `path`.
    pub fn read(path: &Path) -> Result<VideoTrack> {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        Self::parse(&bytes).with_context(|| format!("cannot parse {}", path.display()))
    }

    /// Parse the first video track out of an MP4 file's bytes.
    pub fn parse(file: &[u8]) -> Result<VideoTrack> {
        let moov = find(file, b"moov")?.context("no moov box")?;
        for trak in children(moov)?.into_iter().filter(|(t, _)| t == b"trak") {
            let mdia = find(trak.1, b"mdia")?.context("trak without mdia")?;
            let hdlr = find(mdia, b"hdlr")?.context("mdia without hdlr")?;
            if hdlr.get(8..12) != Some(b"vide") {
                continue;
            }
            return parse_video(file, mdia);
        }
        bail!("no video track")
    }

    /// Seconds per sample, from the first two decode times.
    pub fn frame_duration(&self) -> f64 {
        match self.samples.as_slice() {
            [a, b, ..] => (b.dts - a.dts) as f64 / f64::from(self.timescale),
            _ => 0.0,
        }
    }

    /// Presentation span: last PTS + one frame − first PTS, in seconds.
    pub fn duration_secs(&self) -> f64 {
        let (Some(min), Some(max)) = (
            self.samples.iter().map(|s| s.pts).min(),
            self.samples.iter().map(|s| s.pts).max(),
        ) else {
            return 0.0;
        };
        (max - min) as f64 / f64::from(self.timescale) + self.frame_duration()
    }
}

fn parse_video(file: &[u8], mdia: &[u8]) -> Result<VideoTrack> {
    let mdhd = find(mdia, b"mdhd")?.context("no mdhd")?;
    let timescale = if mdhd.first() == Some(&1) {
        be32(mdhd, 20)?
    } else {
        be32(mdhd, 12)?
    };
    ensure!(timescale > 0, "timescale 0");
    let minf = find(mdia, b"minf")?.context("no minf")?;
    let stbl = find(minf, b"stbl")?.context("no stbl")?;

    // Sample description: first entry.
    let stsd = find(stbl, b"stsd")?.context("no stsd")?;
    let entry = stsd.get(8..).context("short stsd")?;
    let entry_size = be32(entry, 0)? as usize;
    let entry = entry.get(..entry_size).context("stsd entry past its box")?;
    let codec = String::from_utf8_lossy(entry.get(4..8).context("short entry")?).into_owned();
    let width = be16(entry, 8 + 24)?;
    let height = be16(entry, 8 + 26)?;
    let mut length_size = 4;
    let mut parameter_sets = Vec::new();
    for (kind, body) in children(entry.get(8 + 78..).context("short visual sample entry")?)? {
        if kind == *b"avcC" {
            length_size = usize::from(body.get(4).context("short avcC")? & 3) + 1;
            let mut at = 5;
            for mask in [0x1f, 0xff] {
                let count = usize::from(*body.get(at).context("short avcC")?) & mask;
                at += 1;
                for _ in 0..count {
                    let len = usize::from(be16(body, at)?);
                    parameter_sets.push(
                        body.get(at + 2..at + 2 + len)
                            .context("short avcC")?
                            .to_vec(),
                    );
                    at += 2 + len;
                }
            }
        } else if kind == *b"hvcC" {
            length_size = usize::from(body.get(21).context("short hvcC")? & 3) + 1;
        }
    }

    // Sizes.
    let stsz = find(stbl, b"stsz")?.context("no stsz")?;
    let fixed = be32(stsz, 4)?;
    let count = be32(stsz, 8)? as usize;
    let sizes: Vec<u32> = if fixed != 0 {
        vec![fixed; count]
    } else {
        (0..count)
            .map(|i| be32(stsz, 12 + 4 * i))
            .collect::<Result<_>>()?
    };

    // Chunk offsets.
    let offsets: Vec<u64> = if let Some(stco) = find(stbl, b"stco")? {
        (0..be32(stco, 4)? as usize)
            .map(|i| be32(stco, 8 + 4 * i).map(u64::from))
            .collect::<Result<_>>()?
    } else {
        let co64 = find(stbl, b"co64")?.context("no stco/co64")?;
        (0..be32(co64, 4)? as usize)
            .map(|i| be64(co64, 8 + 8 * i))
            .collect::<Result<_>>()?
    };

    // Samples per chunk, expanded to each sample's file offset.
    let stsc = find(stbl, b"stsc")?.context("no stsc")?;
    let runs: Vec<(u32, u32)> = (0..be32(stsc, 4)? as usize)
        .map(|i| Ok((be32(stsc, 8 + 12 * i)?, be32(stsc, 12 + 12 * i)?)))
        .collect::<Result<_>>()?;
    let mut sample_offsets = Vec::with_capacity(count);
    let mut sample = 0usize;
    for (chunk_index, &chunk_offset) in offsets.iter().enumerate() {
        let chunk_no = chunk_index as u32 + 1;
        let per_chunk = runs
            .iter()
            .rev()
            .find(|(first, _)| *first <= chunk_no)
            .map(|r| r.1)
            .context("stsc does not cover a chunk")?;
        let mut at = chunk_offset;
        for _ in 0..per_chunk {
            if sample >= count {
                break;
            }
            sample_offsets.push(at);
            at += u64::from(sizes[sample]);
            sample += 1;
        }
    }
    ensure!(
        sample_offsets.len() == count,
        "chunks hold {} of {count} samples",
        sample_offsets.len()
    );

    // Decode times.
    let stts = find(stbl, b"stts")?.context("no stts")?;
    let mut dts = Vec::with_capacity(count);
    let mut t = 0i64;
    for i in 0..be32(stts, 4)? as usize {
        let (n, delta) = (be32(stts, 8 + 8 * i)?, be32(stts, 12 + 8 * i)?);
        for _ in 0..n {
            dts.push(t);
            t += i64::from(delta);
        }
    }
    ensure!(
        dts.len() >= count,
        "stts covers {} of {count} samples",
        dts.len()
    );

    // Composition offsets (signed in version 1; version 0 values fit in i32 in practice).
    let mut cts = vec![0i64; count];
    if let Some(ctts) = find(stbl, b"ctts")? {
        let mut s = 0;
        for i in 0..be32(ctts, 4)? as usize {
            let n = be32(ctts, 8 + 8 * i)?;
            let off = i64::from(be32(ctts, 12 + 8 * i)? as i32);
            for _ in 0..n {
                if s < count {
                    cts[s] = off;
                    s += 1;
                }
            }
        }
    }

    let sync: Option<Vec<u32>> = match find(stbl, b"stss")? {
        Some(stss) => Some(
            (0..be32(stss, 4)? as usize)
                .map(|i| be32(stss, 8 + 4 * i))
                .collect::<Result<_>>()?,
        ),
        None => None,
    };

    let mut samples = Vec::with_capacity(count);
    for i in 0..count {
        let start = usize::try_from(sample_offsets[i])?;
        let data = file
            .get(start..start + sizes[i] as usize)
            .with_context(|| format!("sample {i} lies past the end of the file"))?;
        samples.push(Sample {
            data: data.to_vec(),
            dts: dts[i],
            pts: dts[i] + cts[i],
            sync: sync
                .as_ref()
                .is_none_or(|s| s.binary_search(&(i as u32 + 1)).is_ok()),
        });
    }
    Ok(VideoTrack {
        codec,
        width,
        height,
        timescale,
        length_size,
        parameter_sets,
        samples,
    })
}

/// Child boxes of a container body: (type, body).
fn children(mut data: &[u8]) -> Result<Vec<([u8; 4], &[u8])>> {
    let mut out = Vec::new();
    while data.len() >= 8 {
        let size = be32(data, 0)? as u64;
        let kind: [u8; 4] = data[4..8].try_into()?;
        let (header, size) = match size {
            0 => (8, data.len() as u64),
            1 => (16, be64(data, 8)?),
            n => (8, n),
        };
        let size = usize::try_from(size)?;
        ensure!(
            size >= header && size <= data.len(),
            "box {:?} has a bad size",
            String::from_utf8_lossy(&kind)
        );
        out.push((kind, &data[header..size]));
        data = &data[size..];
    }
    Ok(out)
}

/// The body of the first child box of type `kind` (full boxes keep their version/flags).
fn find<'a>(data: &'a [u8], kind: &[u8; 4]) -> Result<Option<&'a [u8]>> {
    Ok(children(data)?
        .into_iter()
        .find(|(k, _)| k == kind)
        .map(|(_, b)| b))
}

fn be16(d: &[u8], at: usize) -> Result<u16> {
    Ok(u16::from_be_bytes(
        d.get(at..at + 2).context("truncated box")?.try_into()?,
    ))
}

fn be32(d: &[u8], at: usize) -> Result<u32> {
    Ok(u32::from_be_bytes(
        d.get(at..at + 4).context("truncated box")?.try_into()?,
    ))
}

fn be64(d: &[u8], at: usize) -> Result<u64> {
    Ok(u64::from_be_bytes(
        d.get(at..at + 8).context("truncated box")?.try_into()?,
    ))
}
