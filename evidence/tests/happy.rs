//! Untampered evidence verifies, in every container and with every trust setting.
mod common;

use vigil_evidence::clipdir::{read_clip_dir, write_clip_dir};
use vigil_evidence::verify::{verify_path, InputKind, Status, Verdict};

#[test]
fn bundle_dir_verifies_ok_and_is_sha256sum_compatible() {
    let dir = tempfile::tempdir().unwrap();
    let ch = common::chain(dir.path(), 3);
    let b = dir.path().join("bundle");
    common::bundle(&ch, &b, &[0, 1, 2], false);
    let r = common::verify_trusted(&ch, &b);
    assert_eq!(r.verdict, Verdict::Ok, "{}", r.to_human());
    assert_eq!(r.kind, InputKind::BundleDir);
    assert_eq!(r.clips.len(), 3);
    assert!(r
        .checks
        .iter()
        .any(|c| c.id == "chain.checkpoint" && c.status == Status::Pass));
    let out = std::process::Command::new("sha256sum")
        .args(["--quiet", "-c", "manifest-sha256.txt"])
        .current_dir(&b)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn bundle_zip_verifies_ok() {
    let dir = tempfile::tempdir().unwrap();
    let ch = common::chain(dir.path(), 2);
    let b = dir.path().join("bundle.zip");
    common::bundle(&ch, &b, &[0, 1], true);
    let r = common::verify_trusted(&ch, &b);
    assert_eq!(r.kind, InputKind::BundleZip);
    assert_eq!(r.verdict, Verdict::Ok, "{}", r.to_human());
}

#[test]
fn without_trust_the_verdict_is_key_untrusted() {
    let dir = tempfile::tempdir().unwrap();
    let ch = common::chain(dir.path(), 2);
    let b = dir.path().join("bundle");
    common::bundle(&ch, &b, &[0, 1], false);
    let r = verify_path(&b, &[]).unwrap();
    assert_eq!(r.verdict, Verdict::KeyUntrusted, "{}", r.to_human());
    assert!(r.problems().all(|c| c.id == "key.trust"));
}

#[test]
fn clip_dir_roundtrip_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let ch = common::chain(dir.path(), 1);
    let (bytes, m) = &ch.clips[0];
    let cd = dir.path().join("clip-1");
    write_clip_dir(&cd, bytes, m, &ch.agent.key.public_key()).unwrap();
    assert!(
        write_clip_dir(&cd, bytes, m, &ch.agent.key.public_key()).is_err(),
        "never overwrite"
    );
    let back = read_clip_dir(&cd).unwrap();
    assert_eq!(back.manifest.canonical_bytes(), m.canonical_bytes());
    back.manifest.verify(&back.pubkey).unwrap();
    let r = common::verify_trusted(&ch, &cd);
    assert_eq!(r.kind, InputKind::ClipDir);
    assert_eq!(r.verdict, Verdict::Ok, "{}", r.to_human());
}

#[test]
fn signature_verifies_with_openssl() {
    // An independent implementation must accept the documented message format.
    if std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_err()
    {
        eprintln!("openssl not installed; skipping");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ch = common::chain(dir.path(), 1);
    let m = &ch.clips[0].1;
    let msg = dir.path().join("msg");
    let mut data = b"vigil.manifest.v1\0".to_vec();
    data.extend_from_slice(m.canonical_bytes());
    std::fs::write(&msg, data).unwrap();
    std::fs::write(dir.path().join("sig.der"), m.signature()).unwrap();
    std::fs::write(
        dir.path().join("pub.pem"),
        ch.agent.key.public_key().to_pem(),
    )
    .unwrap();
    let out = std::process::Command::new("openssl")
        .args([
            "dgst",
            "-sha256",
            "-verify",
            "pub.pem",
            "-signature",
            "sig.der",
            "msg",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
