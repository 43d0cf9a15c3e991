//! Clip description: file size, file SHA-256 and per-GOP hashes of an MP4.
//!
//! This is the single source of truth for GOP hashing; the agent's signer and
//! the verifier both call [`ClipDescription::from_mp4`] (the verifier through
//! the lenient [`scan`], which also describes damaged and truncated files).
//!
//! A GOP starts at every sync sample (`stss`; every sample if `stss` is
//! absent; samples before the first sync sample form GOP 0). Its hash is
//! SHA-256 over its VCL NAL units (H.264 types 1-5, H.265 types 0-31) in
//! decode order, each as a 4-byte big-endian length followed by the NAL unit
//! bytes (header included, emulation prevention bytes kept). Start codes,
//! container length prefixes, parameter sets, SEI and AUDs are not hashed, so
//! a remux (Annex-B <-> length-prefixed, SPS/PPS in or out of band, another
//! muxer) keeps the hashes, while a change to picture data names its GOP.

use ring::digest::{Context, SHA256};
use serde::{Deserialize, Serialize};

use crate::digest::Sha256Digest;
use crate::error::{Error, Result};
use crate::mp4::{self, VideoTrack};

pub use crate::mp4::Codec;

/// One GOP entry as it appears in a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GopEntry {
    /// Position of the GOP in the clip, from 0.
    pub index: u32,
    /// Presentation time of the GOP's first (sync) frame, in ms from the
    /// start of presentation, rounded down. Informational: GOPs are matched by hash.
    pub pts_ms: i64,
    /// Number of frames (samples) in the GOP.
    pub frames: u32,
    /// Number of VCL NAL units hashed.
    pub nal_count: u32,
    /// SHA-256 over the GOP's VCL NAL units (see the module doc).
    pub sha256: Sha256Digest,
}

/// Everything the manifest records about a clip file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClipDescription {
    /// Size of the file in bytes.
    pub file_size: u64,
    /// SHA-256 of the whole file.
    pub file_sha256: Sha256Digest,
    /// Video codec of the first video track.
    pub codec: Codec,
    /// Coded width from the sample entry.
    pub width: u16,
    /// Coded height from the sample entry.
    pub height: u16,
    /// Number of video samples (frames).
    pub frame_count: u64,
    /// Sum of sample durations, in ms (rounded down).
    pub duration_ms: u64,
    /// Per-GOP entries in decode order.
    pub gops: Vec<GopEntry>,
}

/// A GOP as found by [`scan`]: its entry, or why it could not be hashed.
#[derive(Debug, Clone)]
pub struct ScannedGop {
    /// The entry, with the hash of whatever NAL units could be read.
    pub entry: GopEntry,
    /// Set when a sample's NAL length prefixes do not fit the sample.
    pub damage: Option<String>,
}

/// The lenient description the verifier works from.
#[derive(Debug, Clone)]
pub struct ClipScan {
    /// Size of the file in bytes.
    pub file_size: u64,
    /// SHA-256 of the whole file.
    pub file_sha256: Sha256Digest,
    /// Codec, dimensions, frame count and duration, if the `moov` could be read.
    pub video: Option<(Codec, u16, u16, u64, u64)>,
    /// GOPs that could be located (all of them unless the file is truncated).
    pub gops: Vec<ScannedGop>,
    /// Why the GOPs could not be read at all (no/garbled `moov`, unsupported codec).
    pub error: Option<String>,
    /// Set when the file ends before its last samples.
    pub truncated: Option<String>,
}

impl ClipDescription {
    /// Describes an in-memory MP4: one pass over `bytes` for the file hash and
    /// one walk of the video samples for the GOP hashes (no copies). Fails on
    /// any malformation, truncation or unsupported feature.
    pub fn from_mp4(bytes: &[u8]) -> Result<ClipDescription> {
        let scan = scan(bytes);
        if let Some(e) = scan.error {
            return Err(Error::Mp4(e));
        }
        if let Some(t) = scan.truncated {
            return Err(Error::Mp4(format!("the file is truncated: {t}")));
        }
        let Some((codec, width, height, frame_count, duration_ms)) = scan.video else {
            return Err(Error::Mp4("no video track found".into()));
        };
        let mut gops = Vec::with_capacity(scan.gops.len());
        for g in scan.gops {
            if let Some(d) = g.damage {
                return Err(Error::Mp4(format!("GOP {}: {d}", g.entry.index)));
            }
            gops.push(g.entry);
        }
        Ok(ClipDescription {
            file_size: scan.file_size,
            file_sha256: scan.file_sha256,
            codec,
            width,
            height,
            frame_count,
            duration_ms,
            gops,
        })
    }
}

/// Describes an MP4 as far as it can be read; never fails and never panics.
pub fn scan(bytes: &[u8]) -> ClipScan {
    // The file hash and the GOP walk read disjoint concerns of the same
    // buffer; on a multi-core box run them side by side.
    let (file_sha256, inner) = std::thread::scope(|s| {
        let h = s.spawn(|| Sha256Digest::of(bytes));
        let inner = scan_gops(bytes);
        let d = h.join().unwrap_or_else(|_| Sha256Digest::of(bytes));
        (d, inner)
    });
    let mut out = ClipScan {
        file_size: bytes.len() as u64,
        file_sha256,
        video: None,
        gops: Vec::new(),
        error: None,
        truncated: None,
    };
    match inner {
        Ok((video, gops, truncated)) => {
            out.video = Some(video);
            out.gops = gops;
            out.truncated = truncated;
        }
        Err(e) => out.error = Some(e.to_string()),
    }
    out
}

type GopScan = ((Codec, u16, u16, u64, u64), Vec<ScannedGop>, Option<String>);

fn scan_gops(bytes: &[u8]) -> Result<GopScan> {
    let mut top = mp4::boxes(bytes);
    let mut moov = None;
    for b in &mut top {
        let b = b?;
        if &b.kind == b"moov" {
            if moov.is_some() {
                return Err(Error::Mp4("the file has more than one `moov` box".into()));
            }
            moov = Some(b.body);
        }
    }
    let truncated_box = top.truncated.take();
    let Some(moov) = moov else {
        return Err(Error::Mp4(match truncated_box {
            Some(t) => format!(
                "no complete `moov` box: `{}` ends at byte {} but the file has {} (file truncated?)",
                t.kind, t.declared_end, t.available
            ),
            None => "the file has no `moov` box (not an MP4, or a fragmented one)".into(),
        }));
    };
    let track = VideoTrack::from_moov(moov)?;
    let walk = track.walk(bytes.len())?;
    let ms = |ticks: i128| -> i128 { (ticks * 1000).div_euclid(i128::from(track.timescale)) };
    let duration_ms = u64::try_from(ms(i128::from(walk.duration_ticks))).unwrap_or(u64::MAX);

    let mut gops: Vec<ScannedGop> = Vec::new();
    let mut ctx: Option<Context> = None;
    for s in &walk.samples {
        if s.sync || ctx.is_none() {
            finish_gop(&mut gops, &mut ctx);
            gops.push(ScannedGop {
                entry: GopEntry {
                    index: gops.len() as u32,
                    pts_ms: i64::try_from(ms(i128::from(s.pts))).unwrap_or(i64::MAX),
                    frames: 0,
                    nal_count: 0,
                    sha256: Sha256Digest::default(),
                },
                damage: None,
            });
            ctx = Some(Context::new(&SHA256));
        }
        let (Some(gop), Some(c)) = (gops.last_mut(), ctx.as_mut()) else {
            continue;
        };
        gop.entry.frames += 1;
        let data = bytes.get(s.offset..s.offset + s.size).unwrap_or_default();
        if let Err(why) = hash_sample(
            data,
            track.length_size,
            track.codec,
            c,
            &mut gop.entry.nal_count,
        ) {
            gop.damage.get_or_insert(why);
        }
    }
    finish_gop(&mut gops, &mut ctx);
    let truncated = walk.truncated.or_else(|| {
        truncated_box.map(|t| {
            format!(
                "box `{}` ends at byte {} but the file has {}",
                t.kind, t.declared_end, t.available
            )
        })
    });
    let video = (
        track.codec,
        track.width,
        track.height,
        u64::from(walk.total),
        duration_ms,
    );
    Ok((video, gops, truncated))
}

fn finish_gop(gops: &mut [ScannedGop], ctx: &mut Option<Context>) {
    if let (Some(c), Some(g)) = (ctx.take(), gops.last_mut()) {
        g.entry.sha256 = Sha256Digest::from_ring(c.finish());
    }
}

/// Feeds one length-prefixed sample's VCL NAL units into `ctx`.
fn hash_sample(
    mut data: &[u8],
    length_size: u8,
    codec: Codec,
    ctx: &mut Context,
    nal_count: &mut u32,
) -> std::result::Result<(), String> {
    let ls = usize::from(length_size);
    while !data.is_empty() {
        let Some(prefix) = data.get(..ls) else {
            return Err(format!(
                "{} stray bytes after the last NAL unit of a sample",
                data.len()
            ));
        };
        let len = prefix
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        let Some(nal) = data.get(ls..ls + len) else {
            return Err(format!(
                "a NAL unit claims {len} bytes but only {} remain in its sample",
                data.len() - ls
            ));
        };
        data = &data[ls + len..];
        let Some(&header) = nal.first() else {
            continue; // Zero-length NAL units carry nothing; muxers differ on them.
        };
        if codec.is_vcl(header) {
            ctx.update(&(len as u32).to_be_bytes());
            ctx.update(nal);
            *nal_count += 1;
        }
    }
    Ok(())
}
