//! Test fixtures: short clips cut from the real sample footage with ffmpeg,
//! produced into temp dirs at test time. ffmpeg/ffprobe/gst-launch are test
//! oracles only; the crate never needs them.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Path of a sample under `target/samples/` (made by `scripts/setup.sh`).
pub fn sample(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/samples")
        .join(name);
    assert!(
        p.exists(),
        "sample footage {} is missing; run scripts/setup.sh",
        p.display()
    );
    p
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Cuts `dur` seconds starting at `start` (a key frame: multiples of 2 s in
/// the samples) out of `src` without re-encoding; faststart like the agent.
pub fn cut(src: &str, start: u32, dur: u32, dir: &Path, name: &str) -> PathBuf {
    let out = dir.join(name);
    run(Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-y", "-ss"])
        .arg(start.to_string())
        .arg("-t")
        .arg(dur.to_string())
        .arg("-i")
        .arg(sample(src))
        .args(["-an", "-c", "copy", "-movflags", "+faststart"])
        .arg(&out));
    out
}

/// Remuxes through an MPEG-TS (Annex-B) and back to MP4 with ffmpeg.
pub fn remux_via_annexb(src: &Path, dir: &Path) -> PathBuf {
    let ts = dir.join("remux.ts");
    let out = dir.join("remux.mp4");
    run(Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-y", "-i"])
        .arg(src)
        .args(["-c", "copy", "-bsf:v", "h264_mp4toannexb"])
        .arg(&ts));
    run(Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-y", "-i"])
        .arg(&ts)
        .args(["-c", "copy", "-movflags", "+faststart"])
        .arg(&out));
    out
}

/// Remuxes with GStreamer into `avc3` (SPS/PPS in band), as a different muxer would.
pub fn remux_gst_avc3(src: &Path, dir: &Path) -> PathBuf {
    let out = dir.join("remux_avc3.mp4");
    run(Command::new("gst-launch-1.0")
        .arg("-q")
        .arg("filesrc")
        .arg(format!("location={}", src.display()))
        .args(["!", "qtdemux", "!", "h264parse", "config-interval=-1", "!"])
        .arg("video/x-h264,stream-format=avc3,alignment=au")
        .args(["!", "mp4mux", "faststart=true", "!", "filesink"])
        .arg(format!("location={}", out.display())));
    out
}

/// Frame presentation times (ms) of key frames and the frame count, per ffprobe.
pub fn ffprobe_keyframes(path: &Path) -> (Vec<i64>, u64) {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pts_time,flags",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let mut keys = Vec::new();
    let mut n = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        n += 1;
        let mut parts = line.split(',');
        let pts: f64 = parts.next().unwrap().parse().unwrap();
        if parts.next().unwrap_or("").starts_with('K') {
            keys.push((pts * 1000.0).round() as i64);
        }
    }
    (keys, n)
}

use std::collections::BTreeMap;

use time::OffsetDateTime;
use vigil_evidence::bundle::{checksum_list, BundleWriter, CHECKSUM_FILE};
use vigil_evidence::chain::{ChainRecord, ChainStore, SignedChainReset, SignedCheckpoint};
use vigil_evidence::clip::ClipDescription;
use vigil_evidence::digest::Sha256Digest;
use vigil_evidence::keys::SigningKey;
use vigil_evidence::manifest::{ClockSync, EventRef, ManifestDraft, SignedManifest};
use vigil_evidence::verify::{verify_path, Report};

/// A simulated agent: key, chain store, one camera.
pub struct Agent {
    pub key: SigningKey,
    pub store: ChainStore,
    pub agent_id: String,
    pub camera: String,
    pub reset: Option<SignedChainReset>,
}

impl Agent {
    pub fn new(dir: &Path, name: &str, camera: &str) -> Agent {
        let key = SigningKey::generate(&dir.join(format!("{name}.key"))).unwrap();
        let mut store = ChainStore::open(&dir.join(format!("{name}-state"))).unwrap();
        let reset = store
            .ensure_segment(&key, name, "test-1.0", camera, t0())
            .unwrap();
        Agent {
            key,
            store,
            agent_id: name.to_string(),
            camera: camera.to_string(),
            reset,
        }
    }

    pub fn draft(&self, bytes: &[u8], offset_s: i64) -> ManifestDraft {
        let start = t0() + time::Duration::seconds(offset_s);
        ManifestDraft {
            agent_id: self.agent_id.clone(),
            agent_version: "test-1.0".into(),
            camera_id: self.camera.clone(),
            clip_id: uuid::Uuid::now_v7(),
            start,
            end: start + time::Duration::seconds(4),
            clock_sync: ClockSync::Synchronized,
            events: vec![EventRef {
                id: format!("ev-{offset_s}"),
                label: "person".into(),
            }],
            clip: ClipDescription::from_mp4(bytes).unwrap(),
            model: None,
            part: None,
            piece: None,
        }
    }

    pub fn record(&mut self, bytes: &[u8], offset_s: i64) -> SignedManifest {
        let d = self.draft(bytes, offset_s);
        self.store.sign_clip(&self.key, d).unwrap()
    }

    pub fn checkpoint(&self) -> SignedCheckpoint {
        self.store
            .checkpoint(&self.key, &self.camera, t0() + time::Duration::hours(1))
            .unwrap()
    }
}

pub fn t0() -> OffsetDateTime {
    time::macros::datetime!(2025-01-02 03:04:05.678 UTC)
}

/// A camera chain of `n` real 4 s clips with a checkpoint at its head.
pub struct Chain {
    pub agent: Agent,
    pub clips: Vec<(Vec<u8>, SignedManifest)>,
    pub checkpoint: SignedCheckpoint,
}

pub fn chain(dir: &Path, n: usize) -> Chain {
    let mut agent = Agent::new(dir, "agent-a", "cam-1");
    let mut clips = Vec::new();
    for i in 0..n {
        let p = cut("vtest.mp4", (i * 4) as u32, 4, dir, &format!("cut{i}.mp4"));
        let bytes = std::fs::read(p).unwrap();
        let m = agent.record(&bytes, (i * 4) as i64);
        clips.push((bytes, m));
    }
    let checkpoint = agent.checkpoint();
    Chain {
        agent,
        clips,
        checkpoint,
    }
}

/// Writes a bundle with the given clip indexes, the whole chain slice and the checkpoint.
pub fn bundle(ch: &Chain, path: &Path, clip_idx: &[usize], zip: bool) {
    let mut w = if zip {
        BundleWriter::create_zip(path).unwrap()
    } else {
        BundleWriter::create_dir(path).unwrap()
    };
    w.add_key(&ch.agent.key.public_key()).unwrap();
    for &i in clip_idx {
        let (bytes, m) = &ch.clips[i];
        w.add_clip(bytes, m).unwrap();
    }
    if let Some(r) = &ch.agent.reset {
        w.add_chain_record(&ChainRecord::Reset(r.clone())).unwrap();
    }
    for (_, m) in &ch.clips {
        w.add_chain_record(&ChainRecord::Manifest(m.clone()))
            .unwrap();
    }
    w.add_checkpoint(&ch.checkpoint).unwrap();
    w.add_custody_log(b"{\"by\":\"hub\",\"action\":\"export\"}\n")
        .unwrap();
    w.finish().unwrap();
}

/// Rewrites manifest-sha256.txt after tampering, as a careful forger would.
pub fn reseal(dir: &Path) {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Sha256Digest>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                out.insert(rel, Sha256Digest::of(&std::fs::read(&p).unwrap()));
            }
        }
    }
    let mut files = BTreeMap::new();
    walk(dir, dir, &mut files);
    files.remove(CHECKSUM_FILE);
    std::fs::write(dir.join(CHECKSUM_FILE), checksum_list(&files)).unwrap();
}

/// Verifies with the chain's agent key trusted.
pub fn verify_trusted(ch: &Chain, path: &Path) -> Report {
    verify_path(path, &[ch.agent.key.public_key()]).unwrap()
}

/// Paths of chain-slice files whose record has `seq` (manifests only).
pub fn chain_files_for_seq(bundle: &Path, seq: u64) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(bundle.join("chain")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "json") {
            let text = std::fs::read_to_string(&p).unwrap();
            if text.contains("\"type\":\"clip_manifest\"")
                && text.contains(&format!("\"seq\":{seq},"))
            {
                out.push(p.clone());
                out.push(p.with_extension("sig"));
            }
        }
    }
    out
}

/// (byte position, size, is key frame) of every video packet, per ffprobe.
pub fn ffprobe_packets(path: &Path) -> Vec<(usize, usize, bool)> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pos,size,flags",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                f[1].parse().unwrap(),
                f[0].parse().unwrap(),
                f[2].starts_with('K'),
            )
        })
        .collect()
}

/// Concatenates 2 s pieces of `src` (cut at the given start seconds) with ffmpeg's
/// concat demuxer: drops or reorders GOPs without re-encoding.
pub fn concat_gops(src: &Path, starts: &[u32], dir: &Path) -> Vec<u8> {
    let mut list = String::new();
    for (i, s) in starts.iter().enumerate() {
        let piece = dir.join(format!("piece{i}.mp4"));
        run(Command::new("ffmpeg")
            .args(["-nostdin", "-loglevel", "error", "-y", "-ss"])
            .arg(s.to_string())
            .args(["-t", "2", "-i"])
            .arg(src)
            .args(["-c", "copy"])
            .arg(&piece));
        list.push_str(&format!("file '{}'\n", piece.display()));
    }
    std::fs::write(dir.join("list.txt"), list).unwrap();
    let out = dir.join("concat.mp4");
    run(Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "concat",
            "-safe",
            "0",
            "-i",
        ])
        .arg(dir.join("list.txt"))
        .args(["-c", "copy", "-movflags", "+faststart"])
        .arg(&out));
    std::fs::read(out).unwrap()
}
