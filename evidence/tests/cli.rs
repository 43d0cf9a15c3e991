//! `vigil-verify` exit codes and JSON schema.
mod common;

use std::process::Command;

fn run(args: &[&std::ffi::OsStr]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vigil-verify"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn exit_codes_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let ch = common::chain(dir.path(), 3);
    let b = dir.path().join("bundle.zip");
    common::bundle(&ch, &b, &[0, 1, 2], true);
    let pem = dir.path().join("trusted.pem");
    std::fs::write(&pem, ch.agent.key.public_key().to_pem()).unwrap();

    let (code, out) = run(&[b.as_os_str(), "--trust".as_ref(), pem.as_os_str()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("verdict: OK"));

    let (code, out) = run(&[b.as_os_str()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("KEY_UNTRUSTED"));

    let (code, out) = run(&[
        b.as_os_str(),
        "--trust".as_ref(),
        pem.as_os_str(),
        "--json".as_ref(),
    ]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["schema"], "vigil.verify.report.v1");
    assert_eq!(v["verdict"], "OK");
    assert_eq!(v["kind"], "bundle_zip");
    assert_eq!(v["clips"].as_array().unwrap().len(), 3);
    let c = &v["checks"][0];
    for k in [
        "id", "subject", "status", "impact", "message", "gop", "seq", "field",
    ] {
        assert!(c.get(k).is_some(), "check lacks {k}");
    }

    // Missing middle record -> 3.
    let bd = dir.path().join("bundle-dir");
    common::bundle(&ch, &bd, &[0, 2], false);
    for f in common::chain_files_for_seq(&bd, 2) {
        std::fs::remove_file(f).unwrap();
    }
    common::reseal(&bd);
    let (code, out) = run(&[bd.as_os_str(), "--trust".as_ref(), pem.as_os_str()]);
    assert_eq!(code, 3, "{out}");

    // Unreadable input and bad usage -> 2.
    let (code, _) = run(&[dir.path().join("nope").as_os_str()]);
    assert_eq!(code, 2);
    let junk = dir.path().join("junk.zip");
    std::fs::write(&junk, b"PK\x03\x04 not really").unwrap();
    let (code, out) = run(&[junk.as_os_str(), "--json".as_ref()]);
    assert_eq!(code, 2);
    assert!(serde_json::from_str::<serde_json::Value>(&out).unwrap()["error"].is_string());
    let (code, _) = run(&["--bogus".as_ref()]);
    assert_eq!(code, 2);
    let (code, _) = run(&[b.as_os_str(), "--trust".as_ref(), junk.as_os_str()]);
    assert_eq!(code, 2);
}
