//! Finds the first video track in `moov` and walks its sample tables.

use serde::{Deserialize, Serialize};

use super::{boxes, find_one, find_opt, fourcc, Reader};
use crate::error::{Error, Result};

/// The video codec of a clip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    /// H.264 / AVC (`avc1`, `avc3`).
    H264,
    /// H.265 / HEVC (`hvc1`, `hev1`).
    H265,
}

impl Codec {
    /// True for NAL unit types that carry coded picture data (VCL).
    pub(crate) fn is_vcl(self, nal_header: u8) -> bool {
        match self {
            Codec::H264 => matches!(nal_header & 0x1f, 1..=5),
            Codec::H265 => (nal_header >> 1) & 0x3f <= 31,
        }
    }
}

/// The parts of a video `trak` needed to locate and time its samples.
pub(crate) struct VideoTrack<'a> {
    pub(crate) codec: Codec,
    pub(crate) width: u16,
    pub(crate) height: u16,
    /// Size in bytes of the NAL length prefix inside samples (1..=4).
    pub(crate) length_size: u8,
    pub(crate) timescale: u32,
    /// Media time where presentation starts (first non-empty `elst` entry), in ticks.
    edit_media_time: i64,
    /// `Some(size)` when every sample has that size, else `None` and `sizes` holds them.
    constant_size: Option<u32>,
    sample_count: u32,
    sizes: &'a [u8],
    stts: &'a [u8],
    ctts: Option<&'a [u8]>,
    stsc: &'a [u8],
    chunk_offsets: &'a [u8],
    chunk_offset_width: usize,
    stss: Option<&'a [u8]>,
}

/// One sample (access unit), already bounds-checked against the file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    pub(crate) offset: usize,
    pub(crate) size: usize,
    /// Presentation time in track ticks (decode time + composition offset - edit shift).
    pub(crate) pts: i64,
    pub(crate) sync: bool,
}

/// Samples in decode order, plus why the walk stopped early (file truncated).
pub(crate) struct SampleWalk {
    pub(crate) samples: Vec<Sample>,
    pub(crate) total: u32,
    pub(crate) truncated: Option<String>,
    pub(crate) duration_ticks: u64,
}

/// Reads a full-box header and a 32-bit entry count, checking that `count`
/// entries of `entry_size` bytes fit; returns (version, count, entries).
fn table<'b>(body: &'b [u8], entry_size: usize, name: &str) -> Result<(u8, u32, &'b [u8])> {
    let mut r = Reader::new(body);
    let version = r.u8()?;
    r.skip(3)?;
    let count = r.u32()?;
    let need = (count as usize)
        .checked_mul(entry_size)
        .ok_or_else(|| Error::Mp4(format!("`{name}` entry count {count} overflows")))?;
    let entries = r.bytes(need).map_err(|_| {
        Error::Mp4(format!(
            "`{name}` declares {count} entries but its box is too short"
        ))
    })?;
    Ok((version, count, entries))
}

fn be32(b: &[u8], i: usize) -> u32 {
    let s = i * 4;
    match b.get(s..s + 4) {
        Some(x) => u32::from_be_bytes([x[0], x[1], x[2], x[3]]),
        None => 0,
    }
}

impl<'a> VideoTrack<'a> {
    /// Finds the first `trak` whose handler is `vide` and reads its tables.
    pub(crate) fn from_moov(moov: &'a [u8]) -> Result<VideoTrack<'a>> {
        if find_opt(moov, b"mvex", "moov")?.is_some() {
            return Err(Error::Mp4Unsupported(
                "fragmented MP4 (moov/mvex); record with mp4mux faststart=true, not fragmented"
                    .into(),
            ));
        }
        for b in boxes(moov) {
            let b = b?;
            if &b.kind != b"trak" {
                continue;
            }
            let mdia = find_one(b.body, b"mdia", "trak")?;
            let hdlr = find_one(mdia, b"hdlr", "mdia")?;
            let mut r = Reader::new(hdlr);
            r.skip(8)?;
            if r.bytes(4)? == b"vide" {
                return Self::from_trak(b.body, mdia);
            }
        }
        Err(Error::Mp4("the file has no video track".into()))
    }

    fn from_trak(trak: &'a [u8], mdia: &'a [u8]) -> Result<VideoTrack<'a>> {
        let mdhd = find_one(mdia, b"mdhd", "mdia")?;
        let mut r = Reader::new(mdhd);
        let timescale = if r.u8()? == 1 {
            r.skip(3 + 16)?;
            r.u32()?
        } else {
            r.skip(3 + 8)?;
            r.u32()?
        };
        if timescale == 0 {
            return Err(Error::Mp4("`mdhd` timescale is 0".into()));
        }
        let edit_media_time = match find_opt(trak, b"edts", "trak")? {
            Some(edts) => match find_opt(edts, b"elst", "edts")? {
                Some(elst) => edit_shift(elst)?,
                None => 0,
            },
            None => 0,
        };
        let minf = find_one(mdia, b"minf", "mdia")?;
        let stbl = find_one(minf, b"stbl", "minf")?;
        let (codec, width, height, length_size) = sample_entry(find_one(stbl, b"stsd", "stbl")?)?;

        if find_opt(stbl, b"stz2", "stbl")?.is_some() {
            return Err(Error::Mp4Unsupported(
                "compact sample sizes (`stz2`)".into(),
            ));
        }
        let stsz = find_one(stbl, b"stsz", "stbl")?;
        let mut r = Reader::new(stsz);
        r.skip(4)?;
        let size = r.u32()?;
        let sample_count = r.u32()?;
        let (constant_size, sizes) = if size == 0 {
            let need = (sample_count as usize)
                .checked_mul(4)
                .ok_or_else(|| Error::Mp4("`stsz` sample count overflows".into()))?;
            let sizes = r.bytes(need).map_err(|_| {
                Error::Mp4(format!(
                    "`stsz` declares {sample_count} samples but its box is too short"
                ))
            })?;
            (None, sizes)
        } else {
            (Some(size), &[][..])
        };
        let (_, _, stts) = table(find_one(stbl, b"stts", "stbl")?, 8, "stts")?;
        let ctts = match find_opt(stbl, b"ctts", "stbl")? {
            Some(b) => Some(table(b, 8, "ctts")?.2),
            None => None,
        };
        let (_, _, stsc) = table(find_one(stbl, b"stsc", "stbl")?, 12, "stsc")?;
        let (chunk_offsets, chunk_offset_width) = match find_opt(stbl, b"stco", "stbl")? {
            Some(b) => (table(b, 4, "stco")?.2, 4),
            None => match find_opt(stbl, b"co64", "stbl")? {
                Some(b) => (table(b, 8, "co64")?.2, 8),
                None => return Err(Error::Mp4("`stbl` has neither `stco` nor `co64`".into())),
            },
        };
        let stss = match find_opt(stbl, b"stss", "stbl")? {
            Some(b) => Some(table(b, 4, "stss")?.2),
            None => None,
        };
        Ok(VideoTrack {
            codec,
            width,
            height,
            length_size,
            timescale,
            edit_media_time,
            constant_size,
            sample_count,
            sizes,
            stts,
            ctts,
            stsc,
            chunk_offsets,
            chunk_offset_width,
            stss,
        })
    }

    /// Walks every sample in decode order. A sample lying (partly) past the end
    /// of `file_len` stops the walk and is reported in `truncated`; any other
    /// inconsistency between the tables is an error.
    pub(crate) fn walk(&self, file_len: usize) -> Result<SampleWalk> {
        let total = self.sample_count;
        if let Some(size) = self.constant_size {
            // Bound the count by the bytes that would have to back it.
            if u64::from(size).saturating_mul(u64::from(total)) > file_len as u64 {
                return Err(Error::Mp4(format!(
                    "`stsz` claims {total} samples of {size} bytes, more than the whole file"
                )));
            }
        }
        let chunk_count = self.chunk_offsets.len() / self.chunk_offset_width;
        let stsc_count = self.stsc.len() / 12;
        let mut samples = Vec::with_capacity(total as usize);
        let mut stts = Runs::new(self.stts, "stts");
        let mut ctts = self.ctts.map(|c| Runs::new(c, "ctts"));
        let mut stss_pos = 0usize;
        let stss_count = self.stss.map_or(0, |s| s.len() / 4);
        let mut dts: u64 = 0;
        let mut index: u32 = 0;
        let mut stsc_i = 0usize;
        let mut truncated = None;
        'chunks: for chunk in 0..chunk_count {
            let chunk_no = chunk as u64 + 1;
            while stsc_i + 1 < stsc_count
                && u64::from(be32(self.stsc, (stsc_i + 1) * 3)) <= chunk_no
            {
                stsc_i += 1;
            }
            if stsc_count == 0 || u64::from(be32(self.stsc, stsc_i * 3)) > chunk_no {
                return Err(Error::Mp4(format!(
                    "`stsc` does not cover chunk {chunk_no}"
                )));
            }
            let per_chunk = be32(self.stsc, stsc_i * 3 + 1);
            let mut offset = self.chunk_offset(chunk);
            for _ in 0..per_chunk {
                if index >= total {
                    break 'chunks;
                }
                let size = match self.constant_size {
                    Some(s) => s,
                    None => be32(self.sizes, index as usize),
                };
                let end = offset.checked_add(u64::from(size));
                let in_file = end.filter(|&e| e <= file_len as u64);
                let delta = stts.next()?;
                let cts = match ctts.as_mut() {
                    Some(c) => i64::from(c.next()? as i32),
                    None => 0,
                };
                let sync = match self.stss {
                    None => true,
                    Some(stss) => {
                        let is = stss_pos < stss_count && be32(stss, stss_pos) == index + 1;
                        if is {
                            stss_pos += 1;
                        }
                        is
                    }
                };
                let Some(end) = in_file else {
                    truncated = Some(format!(
                        "sample {index} (bytes {offset}..{}) lies past the end of the {file_len}-byte file",
                        end.map_or_else(|| "overflow".to_string(), |e| e.to_string())
                    ));
                    break 'chunks;
                };
                samples.push(Sample {
                    offset: offset as usize,
                    size: size as usize,
                    pts: (dts as i64)
                        .saturating_add(cts)
                        .saturating_sub(self.edit_media_time),
                    sync,
                });
                dts = dts.saturating_add(u64::from(delta));
                offset = end;
                index += 1;
            }
        }
        if truncated.is_none() && index < total {
            return Err(Error::Mp4(format!(
                "the chunk tables place only {index} of {total} samples"
            )));
        }
        // Duration from the full stts table (cheap, and valid even when truncated).
        let duration_ticks = self.stts.chunks_exact(8).fold(0u64, |acc, e| {
            let count = u64::from(u32::from_be_bytes([e[0], e[1], e[2], e[3]]));
            let delta = u64::from(u32::from_be_bytes([e[4], e[5], e[6], e[7]]));
            acc.saturating_add(count.saturating_mul(delta))
        });
        Ok(SampleWalk {
            samples,
            total,
            truncated,
            duration_ticks,
        })
    }

    fn chunk_offset(&self, chunk: usize) -> u64 {
        if self.chunk_offset_width == 4 {
            u64::from(be32(self.chunk_offsets, chunk))
        } else {
            (u64::from(be32(self.chunk_offsets, chunk * 2)) << 32)
                | u64::from(be32(self.chunk_offsets, chunk * 2 + 1))
        }
    }
}

/// Run-length table cursor for `stts`/`ctts` ((count, value) pairs).
struct Runs<'a> {
    entries: &'a [u8],
    pos: usize,
    left: u32,
    value: u32,
    name: &'static str,
}

impl<'a> Runs<'a> {
    fn new(entries: &'a [u8], name: &'static str) -> Self {
        Runs {
            entries,
            pos: 0,
            left: 0,
            value: 0,
            name,
        }
    }

    fn next(&mut self) -> Result<u32> {
        while self.left == 0 {
            if self.pos + 1 >= self.entries.len() / 4 {
                return Err(Error::Mp4(format!(
                    "`{}` covers fewer samples than `stsz`",
                    self.name
                )));
            }
            self.left = be32(self.entries, self.pos);
            self.value = be32(self.entries, self.pos + 1);
            self.pos += 2;
        }
        self.left -= 1;
        Ok(self.value)
    }
}

/// Media time of the first non-empty edit (where presentation starts).
fn edit_shift(elst: &[u8]) -> Result<i64> {
    let mut r = Reader::new(elst);
    let version = r.u8()?;
    r.skip(3)?;
    let count = r.u32()?;
    for _ in 0..count.min(1024) {
        let media_time = if version == 1 {
            r.skip(8)?;
            r.u64()? as i64
        } else {
            r.skip(4)?;
            i64::from(r.u32()? as i32)
        };
        r.skip(4)?;
        if media_time != -1 {
            return Ok(media_time.max(0));
        }
    }
    Ok(0)
}

/// Reads the first `stsd` entry: codec, dimensions, NAL length size.
fn sample_entry(stsd: &[u8]) -> Result<(Codec, u16, u16, u8)> {
    let mut r = Reader::new(stsd);
    r.skip(4)?;
    if r.u32()? == 0 {
        return Err(Error::Mp4("`stsd` has no sample entry".into()));
    }
    let entry = boxes(r.rest())
        .next()
        .ok_or_else(|| Error::Mp4("`stsd` sample entry is missing or cut short".into()))??;
    let (codec, config_kind) = match &entry.kind {
        b"avc1" | b"avc3" => (Codec::H264, b"avcC"),
        b"hvc1" | b"hev1" => (Codec::H265, b"hvcC"),
        other => {
            return Err(Error::Mp4Unsupported(format!(
                "video codec `{}`; only H.264 (avc1/avc3) and H.265 (hvc1/hev1) are supported",
                fourcc(other)
            )))
        }
    };
    let mut r = Reader::new(entry.body);
    r.skip(24)?;
    let width = r.u16()?;
    let height = r.u16()?;
    r.skip(50)?;
    let config = find_one(r.rest(), config_kind, &fourcc(&entry.kind))?;
    let byte = match codec {
        Codec::H264 => config.get(4),
        Codec::H265 => config.get(21),
    }
    .ok_or_else(|| Error::Mp4(format!("`{}` is too short", fourcc(config_kind))))?;
    let length_size = (byte & 3) + 1;
    if length_size == 3 {
        return Err(Error::Mp4(
            "NAL length size of 3 bytes is not allowed".into(),
        ));
    }
    Ok((codec, width, height, length_size))
}
