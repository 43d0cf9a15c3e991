//! Checks every recorded clip must pass: byte identity with the source, key-frame start,
//! span, timestamps, and independent readers (ffprobe, ffmpeg) accepting it.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};

use crate::h264::{access_units_of_track, align_from_first, AccessUnit, Alignment};
use crate::mp4::VideoTrack;
use crate::oracle::{ffmpeg_decode_errors, probe_packets, probe_video_stream};

/// The source a clip was recorded from.
pub struct Source {
    pub track: VideoTrack,
    pub aus: Vec<AccessUnit>,
}

impl Source {
    /// Demux a sample file.
    pub fn read(path: &Path) -> Result<Source> {
        let track = VideoTrack::read(path)?;
        let aus = access_units_of_track(&track)?;
        Ok(Source { track, aus })
    }

    /// PTS (seconds) of the `j`-th unit of the endlessly looping source.
    fn looped_pts(&self, j: usize) -> f64 {
        let s = &self.track.samples;
        let scale = f64::from(self.track.timescale);
        let loop_len = (s[s.len() - 1].dts - s[0].dts) as f64 / scale + self.track.frame_duration();
        s[j % s.len()].pts as f64 / scale + (j / s.len()) as f64 * loop_len
    }
}

/// What a clip check found (for further assertions).
#[derive(Debug)]
pub struct ClipReport {
    pub track: VideoTrack,
    pub alignment: Alignment,
    /// Presentation span in seconds (from the MP4 tables).
    pub duration: f64,
    /// Whatever `ffmpeg -v error` printed decoding the clip (empty when clean).
    pub decode_errors: String,
}

/// Check `clip` against `source`: every access unit byte-identical to consecutive
/// source units, first unit an IDR (and a sync sample), span ≥ `seconds` − one frame,
/// each unit's PTS offset equal to the source's (B-frame order kept), ffprobe opens it
/// with the source's codec and size. Decode errors are returned, not judged.
pub fn check_clip(clip: &Path, source: &Source, seconds: f64) -> Result<ClipReport> {
    let track = VideoTrack::read(clip)?;
    let aus = access_units_of_track(&track)?;
    ensure!(!aus.is_empty(), "clip has no access units");
    ensure!(
        aus[0].is_idr(),
        "clip does not start with an IDR access unit"
    );
    ensure!(
        track.samples[0].sync,
        "clip's first sample is not marked sync (stss)"
    );
    let alignment = align_from_first(&source.aus, &aus).context("clip vs source bytes")?;

    let frame = source.track.frame_duration();
    let duration = track.duration_secs();
    ensure!(
        duration >= seconds - frame - 1e-3,
        "clip spans {duration:.3} s, asked for {seconds} s"
    );

    // Presentation offsets equal the source's, unit by unit (decode order).
    let scale = f64::from(track.timescale);
    let clip_pts0 = track.samples[0].pts as f64 / scale;
    let src0 = source.looped_pts(alignment.source_start);
    for (k, s) in track.samples.iter().enumerate() {
        let got = s.pts as f64 / scale - clip_pts0;
        let want = source.looped_pts(alignment.source_start + k) - src0;
        if (got - want).abs() > 0.002 {
            bail!("clip unit {k}: PTS offset {got:.4} s, source has {want:.4} s");
        }
    }

    let path = clip.to_str().context("clip path is not UTF-8")?;
    let probe = probe_video_stream(path, Duration::from_secs(15))?;
    let stream = &probe["stream"];
    ensure!(
        stream["codec_name"] == "h264",
        "ffprobe: codec {}",
        stream["codec_name"]
    );
    ensure!(
        stream["width"] == source.track.width && stream["height"] == source.track.height,
        "ffprobe: {}x{}, source is {}x{}",
        stream["width"],
        stream["height"],
        source.track.width,
        source.track.height
    );

    // ffprobe's view of the timestamps: PTS unique, DTS strictly increasing, DTS <= PTS.
    let packets = probe_packets(path, &[], Duration::from_secs(15))?;
    ensure!(
        packets.len() == aus.len(),
        "ffprobe sees {} packets, clip has {}",
        packets.len(),
        aus.len()
    );
    let mut pts = Vec::new();
    for (i, p) in packets.iter().enumerate() {
        let (Some(pt), Some(dt)) = (p.pts, p.dts) else {
            bail!("packet {i} lacks pts or dts: {p:?}");
        };
        ensure!(dt <= pt + 1e-6, "packet {i}: dts {dt} > pts {pt}");
        if i > 0 {
            let prev = packets[i - 1].dts.unwrap_or(f64::MIN);
            ensure!(dt > prev, "packet {i}: dts {dt} not after {prev}");
        }
        pts.push(pt);
    }
    pts.sort_by(f64::total_cmp);
    for w in pts.windows(2) {
        ensure!(w[1] > w[0] + 1e-6, "duplicate presentation time {}", w[0]);
    }
    ensure!(packets[0].key, "ffprobe: first packet is not a key frame");

    let decode_errors = ffmpeg_decode_errors(clip, Duration::from_secs(20))?;
    Ok(ClipReport {
        track,
        alignment,
        duration,
        decode_errors,
    })
}
