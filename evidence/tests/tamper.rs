//! The tamper suite: every attack from the evidence issue, on real clips.
mod common;

use std::fs;
use std::path::Path;

use base64::Engine;
use vigil_evidence::manifest::ChainLink;
use vigil_evidence::record::Signed;
use vigil_evidence::verify::{verify_path, Status, Verdict};

fn setup(n: usize, clips: &[usize]) -> (tempfile::TempDir, common::Chain, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let ch = common::chain(dir.path(), n);
    let b = dir.path().join("bundle");
    common::bundle(&ch, &b, clips, false);
    (dir, ch, b)
}

fn flip(path: &Path, at: usize) {
    let mut bytes = fs::read(path).unwrap();
    bytes[at] ^= 0x55;
    fs::write(path, bytes).unwrap();
}

#[test]
fn byte_flip_in_video_data_names_the_gop() {
    let (_d, ch, b) = setup(1, &[0]);
    let clip = b.join("clips/0001/clip.mp4");
    let key = common::ffprobe_packets(&clip)
        .into_iter()
        .filter(|p| p.2)
        .nth(1)
        .expect("two GOPs");
    flip(&clip, key.0 + key.1 / 2);
    common::reseal(&b);
    let r = common::verify_trusted(&ch, &b);
    assert_eq!(r.verdict, Verdict::NotOk);
    let gop_fails: Vec<_> = r.problems().filter(|c| c.id == "clip.gops").collect();
    assert_eq!(gop_fails.len(), 1, "{}", r.to_human());
    assert_eq!(gop_fails[0].gop, Some(1));
    assert!(gop_fails[0].message.contains("GOP 1"));
    assert!(r.mentions("video data altered"));
}

#[test]
fn byte_flip_in_container_metadata_keeps_video_intact() {
    let (_d, ch, b) = setup(1, &[0]);
    let clip = b.join("clips/0001/clip.mp4");
    let bytes = fs::read(&clip).unwrap();
    let at = bytes
        .windows(12)
        .position(|w| w == b"VideoHandler")
        .expect("ffmpeg names its handler");
    flip(&clip, at + 3);
    common::reseal(&b);
    let r = common::verify_trusted(&ch, &b);
    assert_eq!(r.verdict, Verdict::NotOk);
    assert!(
        r.mentions("container altered, video data intact"),
        "{}",
        r.to_human()
    );
    assert!(r
        .checks
        .iter()
        .any(|c| c.id == "clip.gops" && c.status == Status::Pass));
}

fn six_second_clip() -> (
    tempfile::TempDir,
    common::Agent,
    std::path::PathBuf,
    Vec<u8>,
    vigil_evidence::manifest::SignedManifest,
) {
    let dir = tempfile::tempdir().unwrap();
    let src = common::cut("vtest.mp4", 10, 6, dir.path(), "src.mp4");
    let bytes = fs::read(&src).unwrap();
    let mut agent = common::Agent::new(dir.path(), "agent-a", "cam-1");
    let m = agent.record(&bytes, 0);
    assert_eq!(m.record().gops.len(), 3);
    (dir, agent, src, bytes, m)
}

fn verify_replaced_clip(
    agent: &common::Agent,
    dir: &Path,
    m: &vigil_evidence::manifest::SignedManifest,
    forged: &[u8],
) -> vigil_evidence::verify::Report {
    let cd = dir.join("clipdir");
    vigil_evidence::clipdir::write_clip_dir(&cd, forged, m, &agent.key.public_key()).unwrap();
    verify_path(&cd, &[agent.key.public_key()]).unwrap()
}

#[test]
fn gop_dropped_and_remuxed_is_named() {
    let (dir, agent, src, _bytes, m) = six_second_clip();
    let forged = common::concat_gops(&src, &[0, 4], dir.path());
    let r = verify_replaced_clip(&agent, dir.path(), &m, &forged);
    assert_eq!(r.verdict, Verdict::NotOk);
    let fails: Vec<_> = r.problems().filter(|c| c.id == "clip.gops").collect();
    assert_eq!(fails.len(), 1, "{}", r.to_human());
    assert_eq!(fails[0].gop, Some(1));
    assert!(fails[0].message.contains("dropped"));
}

#[test]
fn gops_reordered_are_named() {
    let (dir, agent, src, _bytes, m) = six_second_clip();
    let forged = common::concat_gops(&src, &[2, 0, 4], dir.path());
    let r = verify_replaced_clip(&agent, dir.path(), &m, &forged);
    assert_eq!(r.verdict, Verdict::NotOk);
    assert!(
        r.problems()
            .any(|c| c.message.contains("reordered") && c.gop.is_some()),
        "{}",
        r.to_human()
    );
    assert!(!r.mentions("dropped"));
}

#[test]
fn two_clips_swapped_in_the_chain() {
    let (_d, ch, b) = setup(3, &[0, 1, 2]);
    let (p1, p2) = (b.join("clips/0001/clip.mp4"), b.join("clips/0002/clip.mp4"));
    let (c1, c2) = (fs::read(&p1).unwrap(), fs::read(&p2).unwrap());
    fs::write(&p1, c2).unwrap();
    fs::write(&p2, c1).unwrap();
    common::reseal(&b);
    let r = common::verify_trusted(&ch, &b);
    assert_eq!(r.verdict, Verdict::NotOk);
    let swaps: Vec<_> = r.problems().filter(|c| c.id == "chain.swap").collect();
    assert_eq!(swaps.len(), 2, "{}", r.to_human());
    assert!(swaps
        .iter()
        .any(|c| c.message.contains("is the clip of seq 2") && c.seq == Some(1)));
}

#[test]
fn clip_deleted_from_middle_of_chain_is_a_provable_gap() {
    let (_d, ch, b) = setup(3, &[0, 1, 2]);
    fs::remove_dir_all(b.join("clips/0002")).unwrap();
    for f in common::chain_files_for_seq(&b, 2) {
        fs::remove_file(f).unwrap();
    }
    common::reseal(&b);
    let r = common::verify_trusted(&ch, &b);
    assert_eq!(r.verdict, Verdict::OkWithMissing, "{}", r.to_human());
    let gap = r
        .problems()
        .find(|c| c.id == "chain.gap")
        .expect("gap reported");
    assert_eq!(gap.seq, Some(2));
}

#[test]
fn clip_missing_but_manifest_in_slice_is_reported() {
    let (_d, ch, b) = setup(3, &[0, 1, 2]);
    fs::remove_dir_all(b.join("clips/0002")).unwrap();
    common::reseal(&b);
    let r = common::verify_trusted(&ch, &b);
    assert_eq!(r.verdict, Verdict::OkWithMissing, "{}", r.to_human());
    assert!(r
        .problems()
        .any(|c| c.id == "chain.clip" && c.seq == Some(2)));
}

#[test]
fn deleted_tail_is_caught_by_the_checkpoint() {
    let (_d, ch, b) = setup(3, &[0, 1, 2]);
    fs::remove_dir_all(b.join("clips/0003")).unwrap();
    for f in common::chain_files_for_seq(&b, 3) {
        fs::remove_file(f).unwrap();
    }
    common::reseal(&b);
    let r = common::verify_trusted(&ch, &b);
    assert_eq!(r.verdict, Verdict::OkWithMissing, "{}", r.to_human());
    let c = r
        .problems()
        .find(|c| c.id == "chain.checkpoint")
        .expect("checkpoint catches the tail");
    assert_eq!(c.seq, Some(3));
    // Without the checkpoint the tail cannot be proven, and the report says so.
    for e in fs::read_dir(b.join("checkpoints")).unwrap() {
        fs::remove_file(e.unwrap().path()).unwrap();
    }
    common::reseal(&b);
    let r = common::verify_trusted(&ch, &b);
    assert!(r
        .checks
        .iter()
        .any(|c| c.id == "chain.checkpoint" && c.status == Status::Warn));
}

#[test]
fn same_clip_replayed_is_rejected() {
    let (_d, ch, b) = setup(2, &[0, 1]);
    fs::create_dir(b.join("clips/0003")).unwrap();
    for f in ["clip.mp4", "manifest.json", "manifest.sig"] {
        fs::copy(b.join("clips/0001").join(f), b.join("clips/0003").join(f)).unwrap();
    }
    common::reseal(&b);
    let r = common::verify_trusted(&ch, &b);
    assert_eq!(r.verdict, Verdict::NotOk);
    assert!(
        r.problems()
            .any(|c| c.id == "chain.replay" && c.subject == "clips/0003"),
        "{}",
        r.to_human()
    );
}

#[test]
fn different_clip_under_an_existing_seq_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let mut ch = common::chain(dir.path(), 2);
    // A second, validly signed manifest for seq 2 (what a seq reuse would produce).
    let other = fs::read(common::cut("vtest.mp4", 40, 4, dir.path(), "other.mp4")).unwrap();
    let link = ChainLink {
        segment_id: ch.clips[1].1.record().segment_id,
        seq: 2,
        prev_manifest_sha256: ch.clips[0].1.sha256(),
    };
    let forged = ch
        .agent
        .draft(&other, 4)
        .into_manifest(ch.agent.key.key_id(), link);
    let forged = Signed::sign(&forged, &ch.agent.key).unwrap();
    ch.clips.push((other, forged));
    let b = dir.path().join("bundle");
    common::bundle(&ch, &b, &[0, 1, 2], false);
    let r = common::verify_trusted(&ch, &b);
    assert_eq!(r.verdict, Verdict::NotOk);
    assert!(
        r.problems()
            .any(|c| c.id == "chain.seq" && c.seq == Some(2)),
        "{}",
        r.to_human()
    );
}

#[test]
fn signature_moved_to_another_manifest_fails() {
    let (_d, ch, b) = setup(2, &[0, 1]);
    fs::copy(
        b.join("clips/0002/manifest.sig"),
        b.join("clips/0001/manifest.sig"),
    )
    .unwrap();
    common::reseal(&b);
    let r = common::verify_trusted(&ch, &b);
    assert_eq!(r.verdict, Verdict::NotOk);
    assert!(
        r.problems()
            .any(|c| c.id == "signature" && c.subject == "clips/0001"),
        "{}",
        r.to_human()
    );
}

#[test]
fn edited_manifest_fields_break_the_signature() {
    let (_d, ch, b) = setup(1, &[0]);
    let path = b.join("clips/0001/manifest.json");
    let original = fs::read_to_string(&path).unwrap();
    let m = ch.clips[0].1.record();
    let edits = [
        (
            "\"start\":\"2025-01-02T03:04:05.678Z\"".to_string(),
            "\"start\":\"2025-01-02T03:04:06.678Z\"".to_string(),
        ),
        (
            "\"camera_id\":\"cam-1\"".to_string(),
            "\"camera_id\":\"cam-2\"".to_string(),
        ),
        (m.file.sha256.to_hex(), "0".repeat(64)),
    ];
    for (from, to) in edits {
        assert!(original.contains(&from), "{from} not in manifest");
        fs::write(&path, original.replacen(&from, &to, 1)).unwrap();
        common::reseal(&b);
        let r = common::verify_trusted(&ch, &b);
        assert_eq!(r.verdict, Verdict::NotOk, "edit {to}");
        assert!(
            r.problems()
                .any(|c| c.id == "signature" && c.subject == "clips/0001"),
            "{}",
            r.to_human()
        );
    }
}

#[test]
fn truncated_clip_is_reported_with_its_gops() {
    let (_d, ch, b) = setup(1, &[0]);
    let clip = b.join("clips/0001/clip.mp4");
    let bytes = fs::read(&clip).unwrap();
    fs::write(&clip, &bytes[..bytes.len() * 6 / 10]).unwrap();
    common::reseal(&b);
    let r = common::verify_trusted(&ch, &b);
    assert_eq!(r.verdict, Verdict::NotOk);
    assert!(
        r.problems()
            .any(|c| c.id == "clip.gops" && c.gop.is_some() && c.message.contains("truncated")),
        "{}",
        r.to_human()
    );
}

#[test]
fn truncated_or_garbled_manifest_fails_to_parse() {
    let (_d, ch, b) = setup(1, &[0]);
    let path = b.join("clips/0001/manifest.json");
    let original = fs::read(&path).unwrap();
    for bad in [
        original[..original.len() / 2].to_vec(),
        b"\x00garbage{{".to_vec(),
        original.iter().map(|b| b ^ 1).collect(),
    ] {
        fs::write(&path, bad).unwrap();
        common::reseal(&b);
        let r = common::verify_trusted(&ch, &b);
        assert_eq!(r.verdict, Verdict::NotOk);
        assert!(
            r.problems()
                .any(|c| c.id == "manifest.parse" && c.subject == "clips/0001"),
            "{}",
            r.to_human()
        );
    }
}

#[test]
fn clip_spliced_from_another_agents_chain() {
    let (d, ch, b) = setup(2, &[0, 1]);
    let mut other = common::Agent::new(d.path(), "agent-b", "cam-9");
    let bytes = fs::read(common::cut("vtest.mp4", 20, 4, d.path(), "b.mp4")).unwrap();
    let m = other.record(&bytes, 0);
    fs::create_dir(b.join("clips/0003")).unwrap();
    fs::write(b.join("clips/0003/clip.mp4"), &bytes).unwrap();
    fs::write(b.join("clips/0003/manifest.json"), m.canonical_bytes()).unwrap();
    fs::write(b.join("clips/0003/manifest.sig"), m.signature_file()).unwrap();
    // Without agent B's key the splice cannot even be checked.
    common::reseal(&b);
    let r = common::verify_trusted(&ch, &b);
    assert_eq!(r.verdict, Verdict::NotOk);
    assert!(r
        .problems()
        .any(|c| c.subject == "clips/0003" && c.message.contains("neither the input nor --trust")));
    // With B's key shipped in the bundle, B's signatures verify but B is not trusted.
    let pk = other.key.public_key();
    fs::write(b.join(format!("keys/{}.pem", pk.key_id())), pk.to_pem()).unwrap();
    common::reseal(&b);
    let r = common::verify_trusted(&ch, &b);
    assert_eq!(r.verdict, Verdict::KeyUntrusted, "{}", r.to_human());
    let f = r.problems().find(|c| c.id == "key.trust").unwrap();
    assert!(f.subject == pk.key_id().to_hex() && f.message.contains("clips/0003"));
}

#[test]
fn valid_signature_by_untrusted_key() {
    let (d, _ch, b) = setup(1, &[0]);
    let stranger =
        vigil_evidence::keys::SigningKey::generate(&d.path().join("stranger.key")).unwrap();
    let r = verify_path(&b, &[stranger.public_key()]).unwrap();
    assert_eq!(r.verdict, Verdict::KeyUntrusted, "{}", r.to_human());
    assert_eq!(r.verdict.exit_code(), 1);
}

fn resign(ch: &common::Chain, dir: &Path, json: &str) {
    let mut msg = b"vigil.manifest.v1\0".to_vec();
    msg.extend_from_slice(json.as_bytes());
    let sig = ch.agent.key.sign(&msg).unwrap();
    fs::write(dir.join("manifest.json"), json).unwrap();
    fs::write(
        dir.join("manifest.sig"),
        base64::engine::general_purpose::STANDARD.encode(sig) + "\n",
    )
    .unwrap();
}

#[test]
fn unknown_format_version_or_algorithm_is_rejected_clearly() {
    let (_d, ch, b) = setup(1, &[0]);
    let cd = b.join("clips/0001");
    let original = fs::read_to_string(cd.join("manifest.json")).unwrap();
    let cases = [
        (
            original.replace("\"format_version\":1", "\"format_version\":2"),
            "format_version 2",
        ),
        (
            original.replace("\"ECDSA_P256_SHA256\"", "\"ECDSA_P384_SHA384\""),
            "ECDSA_P384_SHA384",
        ),
    ];
    for (json, needle) in cases {
        assert_ne!(json, original);
        resign(&ch, &cd, &json);
        common::reseal(&b);
        let r = common::verify_trusted(&ch, &b);
        assert_eq!(r.verdict, Verdict::NotOk);
        let c = r
            .problems()
            .find(|c| c.id == "manifest.parse")
            .expect("parse failure");
        assert!(c.message.contains(needle), "{}", c.message);
    }
}

#[test]
fn unsigned_clip_is_not_signed() {
    let (d, ch, _b) = setup(1, &[0]);
    let cd = d.path().join("clipdir");
    vigil_evidence::clipdir::write_clip_dir(
        &cd,
        &ch.clips[0].0,
        &ch.clips[0].1,
        &ch.agent.key.public_key(),
    )
    .unwrap();
    fs::remove_file(cd.join("manifest.sig")).unwrap();
    let r = common::verify_trusted(&ch, &cd);
    assert_eq!(r.verdict, Verdict::NotSigned, "{}", r.to_human());
}

#[test]
fn file_added_or_changed_after_export_fails_checksums() {
    let (_d, ch, b) = setup(1, &[0]);
    fs::write(
        b.join("custody/custody.jsonl"),
        b"{\"by\":\"someone else\"}\n",
    )
    .unwrap();
    fs::write(b.join("extra.txt"), b"x").unwrap();
    let r = common::verify_trusted(&ch, &b);
    assert_eq!(r.verdict, Verdict::NotOk);
    let subjects: Vec<_> = r
        .problems()
        .filter(|c| c.id == "bundle.checksums")
        .map(|c| c.subject.clone())
        .collect();
    assert_eq!(subjects, ["custody/custody.jsonl", "extra.txt"]);
}

#[test]
fn chain_record_spliced_between_segments_does_not_link() {
    // A manifest re-signed with a wrong prev hash (agent bug or forgery with a stolen key).
    let dir = tempfile::tempdir().unwrap();
    let mut ch = common::chain(dir.path(), 2);
    let bytes = fs::read(common::cut("vtest.mp4", 30, 4, dir.path(), "x.mp4")).unwrap();
    let link = ChainLink {
        segment_id: ch.clips[1].1.record().segment_id,
        seq: 3,
        prev_manifest_sha256: ch.clips[0].1.sha256(),
    };
    let m = Signed::sign(
        &ch.agent
            .draft(&bytes, 8)
            .into_manifest(ch.agent.key.key_id(), link),
        &ch.agent.key,
    )
    .unwrap();
    ch.clips.push((bytes, m));
    let b = dir.path().join("bundle");
    common::bundle(&ch, &b, &[0, 1, 2], false);
    let r = common::verify_trusted(&ch, &b);
    assert_eq!(r.verdict, Verdict::NotOk);
    assert!(
        r.problems()
            .any(|c| c.id == "chain.link" && c.seq == Some(3)),
        "{}",
        r.to_human()
    );
}
