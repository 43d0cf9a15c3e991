//! The byte bound, in process, on a temp dir.

use super::*;

fn outbox(limit: u64) -> (tempfile::TempDir, Outbox) {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    };
    let ob = match Outbox::open(dir.path(), limit) {
        Ok(o) => o,
        Err(e) => panic!("{e}"),
    };
    (dir, ob)
}

/// A fake clip directory of `bytes` clip bytes with a manifest naming camera and seq.
fn clip(ob: &Outbox, camera: &str, seq: u64, bytes: usize) -> uuid::Uuid {
    let id = uuid::Uuid::now_v7();
    let dir = ob.clip_dir(id);
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("clip.mp4"), vec![0u8; bytes])?;
        std::fs::write(
            dir.join("manifest.json"),
            format!("{{\"camera_id\":\"{camera}\",\"seq\":{seq}}}"),
        )
    };
    if let Err(e) = write() {
        panic!("{e}");
    }
    id
}

fn drops(ob: &Outbox) -> Vec<DropReport> {
    let mut files = list(&ob.dir().join("drops"));
    files.sort();
    files
        .iter()
        .filter_map(|p| std::fs::read(p).ok())
        .filter_map(|b| serde_json::from_slice(&b).ok())
        .collect()
}

#[test]
fn counts_entries_and_bytes() {
    let (_d, ob) = outbox(10 << 20);
    clip(&ob, "cam1", 1, 1000);
    let s = ob.stats();
    assert_eq!(s.entries, 1);
    assert!(s.bytes >= 1000 && s.bytes < 1100, "{s:?}");
    assert_eq!((s.limit_bytes, s.dropped_entries), (10 << 20, 0));
}

#[test]
fn under_the_bound_nothing_is_dropped() {
    let (_d, ob) = outbox(1 << 20);
    clip(&ob, "cam1", 1, 300_000);
    let (_g, dropped) = match ob.make_room(300_000) {
        Ok(x) => x,
        Err(e) => panic!("{e}"),
    };
    assert!(dropped.is_empty());
    assert!(drops(&ob).is_empty());
}

#[test]
fn drops_oldest_clips_first_until_the_new_entry_fits_and_reports_each() {
    let (_d, ob) = outbox(1 << 20);
    let a = clip(&ob, "cam1", 1, 400_000);
    let b = clip(&ob, "cam2", 7, 400_000);
    let c = clip(&ob, "cam1", 2, 100_000);
    // 900 kB spooled + 500 kB incoming > 1 MiB: dropping `a` leaves 500 kB + 500 kB (fits).
    let (_g, dropped) = match ob.make_room(500_000) {
        Ok(x) => x,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(dropped.len(), 1, "{dropped:?}");
    assert_eq!(dropped[0].clip_id, Some(a));
    assert_eq!(
        (dropped[0].camera_id.as_str(), dropped[0].seq),
        ("cam1", Some(1))
    );
    assert!(dropped[0].bytes >= 400_000);
    assert!(
        dropped[0].reason.contains("max_bytes"),
        "{}",
        dropped[0].reason
    );
    assert!(!ob.clip_dir(a).exists());
    assert!(ob.clip_dir(b).exists() && ob.clip_dir(c).exists());
    // The report is a durable outbox entry, and health counts the drop.
    assert_eq!(drops(&ob), dropped);
    let s = ob.stats();
    assert_eq!(s.dropped_entries, 1);
    assert_eq!(s.dropped_bytes, dropped[0].bytes);
    assert_eq!(s.entries, 3, "two clips and one drop report");
    assert!(s.bytes + 500_000 <= 1 << 20, "{s:?}");
}

#[test]
fn an_entry_larger_than_the_bound_is_still_written_after_dropping_every_clip() {
    let (_d, ob) = outbox(1 << 20);
    clip(&ob, "cam1", 1, 200_000);
    clip(&ob, "cam1", 2, 200_000);
    let (_g, dropped) = match ob.make_room(2 << 20) {
        Ok(x) => x,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(dropped.len(), 2);
    assert_eq!(list(&ob.dir().join("clips")).len(), 0);
    // Events and drop reports are never dropped by the bound.
    assert_eq!(drops(&ob).len(), 2);
}

#[test]
fn leftover_temp_entries_are_discarded_and_reported_and_deletions_finished() {
    let (_d, ob) = outbox(1 << 20);
    let events = ob.dir().join("events");
    let id = uuid::Uuid::now_v7();
    let tmp_event = events.join(format!(".123-cam-2-{id}-start.json.tmp"));
    let delivered = ob.dir().join("clips").join(format!("{id}.delivered.tmp"));
    let write = || -> std::io::Result<()> {
        std::fs::write(&tmp_event, b"{\"partial")?;
        std::fs::create_dir_all(&delivered)?;
        std::fs::write(delivered.join("clip.mp4"), b"x")
    };
    if let Err(e) = write() {
        panic!("{e}");
    }
    let left = ob.leftovers();
    assert!(
        !delivered.exists(),
        "a delivered clip's interrupted deletion is finished"
    );
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].kind, "events");
    if let Err(e) = ob.discard_leftover(&left[0], None, None, None) {
        panic!("{e}");
    }
    assert!(!tmp_event.exists());
    let d = drops(&ob);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].camera_id, "cam-2");
    assert_eq!((d[0].clip_id, d[0].seq, d[0].bytes), (None, None, 9));
    assert!(d[0].reason.contains("incomplete"), "{}", d[0].reason);
    assert_eq!(ob.stats().dropped_entries, 1);
}

#[test]
fn records_are_spooled_signature_first_and_count_as_one_entry() {
    let (_d, ob) = outbox(1 << 20);
    if let Err(e) = ob.put_record("cam1", "chain_reset", b"{}", "c2ln\n") {
        panic!("{e}");
    }
    let names: Vec<String> = list(&ob.dir().join("records"))
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().to_string()))
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert_eq!(ob.stats().entries, 1);
    assert_eq!(ob.stats().bytes, 2 + 5);
}
