//! Chain store: continuity across restarts, signed resets, crash ordering.
mod common;

use std::fs;

use vigil_evidence::chain::{ChainRecord, ChainStore, ResetReason};
use vigil_evidence::keys::SigningKey;
use vigil_evidence::record::Signed;
use vigil_evidence::verify::{Status, Verdict};

#[test]
fn first_start_signs_a_new_store_reset_and_restart_continues() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = common::Agent::new(dir.path(), "agent-a", "cam-1");
    let reset = a.reset.clone().expect("a new store opens a segment");
    assert_eq!(reset.record().reason, ResetReason::NewStore);
    let bytes = fs::read(common::cut("vtest.mp4", 0, 4, dir.path(), "c.mp4")).unwrap();
    let m1 = a.record(&bytes, 0);
    assert_eq!(m1.record().seq, 1);
    assert_eq!(m1.record().prev_manifest_sha256, reset.sha256());
    // Restart: a fresh ChainStore on the same directory continues the chain.
    let mut store = ChainStore::open(&dir.path().join("agent-a-state")).unwrap();
    assert!(store
        .ensure_segment(&a.key, "agent-a", "test-1.0", "cam-1", common::t0())
        .unwrap()
        .is_none());
    let link = store.next_link("cam-1").unwrap();
    assert_eq!((link.seq, link.prev_manifest_sha256), (2, m1.sha256()));
    assert_eq!(
        store.segment_reset("cam-1").unwrap().sha256(),
        reset.sha256()
    );
    // A second camera in an existing store gets its own new_camera segment.
    let r2 = store
        .ensure_segment(&a.key, "agent-a", "test-1.0", "cam-2", common::t0())
        .unwrap()
        .unwrap();
    assert_eq!(r2.record().reason, ResetReason::NewCamera);
}

#[test]
fn corrupt_state_signs_a_reset_instead_of_restarting_silently() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = common::Agent::new(dir.path(), "agent-a", "cam-1");
    let bytes = fs::read(common::cut("vtest.mp4", 0, 4, dir.path(), "c.mp4")).unwrap();
    let m1 = a.record(&bytes, 0);
    let state_dir = dir.path().join("agent-a-state");
    let state = fs::read_dir(&state_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "state"))
        .unwrap();
    let mut text = fs::read(&state).unwrap();
    let i = text.len() / 2;
    text[i] ^= 0x01;
    fs::write(&state, text).unwrap();
    let mut store = ChainStore::open(&state_dir).unwrap();
    assert!(store.next_link("cam-1").is_err(), "no silent restart");
    let reset = store
        .ensure_segment(&a.key, "agent-a", "test-1.0", "cam-1", common::t0())
        .unwrap()
        .unwrap();
    assert_eq!(reset.record().reason, ResetReason::StateCorrupt);
    assert_ne!(reset.record().segment_id, m1.record().segment_id);
    assert!(fs::read_dir(&state_dir).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .contains(".corrupt-")));
    // A bundle spanning both segments verifies, and the reset is shown.
    a.store = store;
    let bytes2 = fs::read(common::cut("vtest.mp4", 8, 4, dir.path(), "c2.mp4")).unwrap();
    let m2 = a.record(&bytes2, 4);
    assert_eq!(
        (m2.record().seq, m2.record().prev_manifest_sha256),
        (1, reset.sha256())
    );
    let b = dir.path().join("bundle");
    let mut w = vigil_evidence::bundle::BundleWriter::create_dir(&b).unwrap();
    w.add_key(&a.key.public_key()).unwrap();
    w.add_clip(&bytes, &m1).unwrap();
    w.add_clip(&bytes2, &m2).unwrap();
    for r in [
        ChainRecord::Reset(a.reset.clone().unwrap()),
        ChainRecord::Manifest(m1),
        ChainRecord::Reset(reset),
        ChainRecord::Manifest(m2),
    ] {
        w.add_chain_record(&r).unwrap();
    }
    w.add_checkpoint(&a.checkpoint()).unwrap();
    w.finish().unwrap();
    let r = vigil_evidence::verify::verify_path(&b, &[a.key.public_key()]).unwrap();
    assert_eq!(r.verdict, Verdict::Ok, "{}", r.to_human());
    assert!(r.checks.iter().any(|c| c.id == "chain.reset"
        && c.status == Status::Warn
        && c.message.contains("state_corrupt")));
}

#[test]
fn key_change_links_to_the_previous_head() {
    let dir = tempfile::tempdir().unwrap();
    let a = common::Agent::new(dir.path(), "agent-a", "cam-1");
    let head = a.store.head("cam-1").unwrap();
    let new_key = SigningKey::generate(&dir.path().join("new.key")).unwrap();
    let mut store = ChainStore::open(&dir.path().join("agent-a-state")).unwrap();
    let reset = store
        .ensure_segment(&new_key, "agent-a", "test-1.0", "cam-1", common::t0())
        .unwrap()
        .unwrap();
    assert_eq!(reset.record().reason, ResetReason::KeyChanged);
    assert_eq!(reset.record().previous, Some(head));
}

#[test]
fn commit_refuses_anything_but_the_next_link() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = common::Agent::new(dir.path(), "agent-a", "cam-1");
    let bytes = fs::read(common::cut("vtest.mp4", 0, 4, dir.path(), "c.mp4")).unwrap();
    let link = a.store.next_link("cam-1").unwrap();
    let draft = a.draft(&bytes, 0);
    let m = Signed::sign(&draft.clone().into_manifest(a.key.key_id(), link), &a.key).unwrap();
    a.store.commit(&m).unwrap();
    // Committing the same seq again (a crash-retry with different content) is refused.
    let again = Signed::sign(
        &a.draft(&bytes, 1).into_manifest(a.key.key_id(), link),
        &a.key,
    )
    .unwrap();
    assert!(a.store.commit(&again).is_err());
    // A signed-but-never-committed manifest (crash before commit) is simply superseded.
    let uncommitted = Signed::sign(
        &draft.into_manifest(a.key.key_id(), a.store.next_link("cam-1").unwrap()),
        &a.key,
    )
    .unwrap();
    let reopened = ChainStore::open(&dir.path().join("agent-a-state")).unwrap();
    assert_eq!(
        reopened.next_link("cam-1").unwrap().seq,
        uncommitted.record().seq
    );
    assert_eq!(reopened.head("cam-1").unwrap().sha256, m.sha256());
}

#[test]
fn checkpoint_signature_is_domain_separated() {
    let dir = tempfile::tempdir().unwrap();
    let a = common::Agent::new(dir.path(), "agent-a", "cam-1");
    let cp = a.checkpoint();
    cp.verify(&a.key.public_key()).unwrap();
    // The same bytes and signature do not verify as another record type.
    let as_reset = vigil_evidence::chain::SignedChainReset::from_parts(
        cp.canonical_bytes().to_vec(),
        cp.signature().to_vec(),
    );
    assert!(as_reset.is_err());
    let msg_as_manifest =
        Signed::<vigil_evidence::manifest::Manifest>::message(cp.canonical_bytes());
    assert!(!a.key.public_key().verify(&msg_as_manifest, cp.signature()));
}
