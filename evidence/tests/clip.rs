//! GOP hashing on real footage, checked against ffprobe and across remuxes.
mod common;

use vigil_evidence::clip::{scan, ClipDescription, Codec};
use vigil_evidence::digest::Sha256Digest;

#[test]
fn describes_baseline_clip_like_ffprobe() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::cut("vtest.mp4", 4, 6, dir.path(), "clip.mp4");
    let bytes = std::fs::read(&path).unwrap();
    let d = ClipDescription::from_mp4(&bytes).unwrap();
    let (keys, frames) = common::ffprobe_keyframes(&path);
    assert_eq!(d.file_size, bytes.len() as u64);
    assert_eq!(d.file_sha256, Sha256Digest::of(&bytes));
    assert_eq!(d.codec, Codec::H264);
    assert_eq!((d.width, d.height), (768, 576));
    assert_eq!(d.frame_count, frames);
    assert_eq!(d.gops.len(), keys.len());
    assert!(
        d.gops.len() >= 3,
        "a 6 s cut with 2 s GOPs has at least 3 GOPs"
    );
    for (g, k) in d.gops.iter().zip(&keys) {
        assert!(
            (g.pts_ms - k).abs() <= 1,
            "GOP {} pts {} vs ffprobe {}",
            g.index,
            g.pts_ms,
            k
        );
        assert!(
            g.nal_count >= g.frames,
            "every frame has at least one slice"
        );
    }
    assert_eq!(
        d.gops.iter().map(|g| u64::from(g.frames)).sum::<u64>(),
        frames
    );
    let distinct: std::collections::HashSet<_> = d.gops.iter().map(|g| g.sha256).collect();
    assert_eq!(distinct.len(), d.gops.len());
}

#[test]
fn bframe_clip_uses_presentation_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::cut("vtest_bframes.mp4", 0, 6, dir.path(), "clip.mp4");
    let d = ClipDescription::from_mp4(&std::fs::read(&path).unwrap()).unwrap();
    let (keys, frames) = common::ffprobe_keyframes(&path);
    assert_eq!(d.frame_count, frames);
    assert_eq!(d.gops.len(), keys.len());
    for (g, k) in d.gops.iter().zip(&keys) {
        assert!(
            (g.pts_ms - k).abs() <= 1,
            "GOP {} pts {} vs ffprobe {}",
            g.index,
            g.pts_ms,
            k
        );
    }
}

#[test]
fn gop_hashes_survive_remux_through_annexb() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::cut("vtest.mp4", 0, 6, dir.path(), "clip.mp4");
    let a = ClipDescription::from_mp4(&std::fs::read(&path).unwrap()).unwrap();
    let remuxed = common::remux_via_annexb(&path, dir.path());
    let b = ClipDescription::from_mp4(&std::fs::read(&remuxed).unwrap()).unwrap();
    assert_ne!(a.file_sha256, b.file_sha256, "the container changed");
    let ha: Vec<_> = a
        .gops
        .iter()
        .map(|g| (g.sha256, g.nal_count, g.frames))
        .collect();
    let hb: Vec<_> = b
        .gops
        .iter()
        .map(|g| (g.sha256, g.nal_count, g.frames))
        .collect();
    assert_eq!(ha, hb);
}

#[test]
fn gop_hashes_survive_gstreamer_avc3_remux() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::cut("vtest.mp4", 0, 6, dir.path(), "clip.mp4");
    let a = ClipDescription::from_mp4(&std::fs::read(&path).unwrap()).unwrap();
    let remuxed = common::remux_gst_avc3(&path, dir.path());
    let b = ClipDescription::from_mp4(&std::fs::read(&remuxed).unwrap()).unwrap();
    assert_ne!(a.file_sha256, b.file_sha256);
    let ha: Vec<_> = a.gops.iter().map(|g| g.sha256).collect();
    let hb: Vec<_> = b.gops.iter().map(|g| g.sha256).collect();
    assert_eq!(ha, hb);
}

#[test]
fn truncated_clip_is_rejected_strictly_and_scanned_leniently() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::cut("vtest.mp4", 0, 6, dir.path(), "clip.mp4");
    let bytes = std::fs::read(&path).unwrap();
    let full = ClipDescription::from_mp4(&bytes).unwrap();
    let cut = &bytes[..bytes.len() * 2 / 3];
    assert!(ClipDescription::from_mp4(cut).is_err());
    let s = scan(cut);
    assert!(s.truncated.is_some());
    assert!(s.gops.len() < full.gops.len());
    assert_eq!(s.gops[0].entry, full.gops[0]);
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    for input in [
        &b""[..],
        b"\0\0\0\x08moov",
        b"\0\0\0\x01moov\xff\xff\xff\xff\xff\xff\xff\xff",
        &[0xffu8; 64],
    ] {
        assert!(ClipDescription::from_mp4(input).is_err());
    }
}
