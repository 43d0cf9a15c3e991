//! Chain-slice checks for bundles: links, gaps, duplicates, resets,
//! checkpoints, replayed or swapped clips.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::clip::ClipOutcome;
use super::report::{Check, Verdict};
use super::Ctx;
use crate::bundle::source::MAX_TEXT_BYTES;
use crate::chain::{ChainRecord, Checkpoint, SignedCheckpoint};
use crate::digest::Sha256Digest;
use crate::error::Result;
use crate::record::Signed;

/// One record occupying a seq, wherever it was found.
struct Entry {
    source: String,
    seq: u64,
    sha: Sha256Digest,
    prev: Option<Sha256Digest>,
    key_id: Sha256Digest,
    agent_id: String,
    record: ChainRecord,
    /// Clip directory, for manifests that came with their clip.
    clip_dir: Option<String>,
}

/// Reads `<base>.json` + `<base>.sig` pairs under `dir`.
/// A record's base path with its `.json` and `.sig` contents, when readable.
type RecordFiles = (String, Option<Vec<u8>>, Option<Vec<u8>>);

fn pairs(ctx: &mut Ctx, dir: &str) -> Result<Vec<RecordFiles>> {
    let mut bases: Vec<String> = ctx
        .paths()
        .into_iter()
        .filter(|p| p.starts_with(dir))
        .filter_map(|p| {
            p.strip_suffix(".json")
                .or_else(|| p.strip_suffix(".sig"))
                .map(str::to_string)
        })
        .collect();
    bases.dedup();
    let mut out = Vec::new();
    for b in bases {
        let json = ctx.read(&format!("{b}.json"), MAX_TEXT_BYTES);
        let sig = ctx.read(&format!("{b}.sig"), MAX_TEXT_BYTES);
        let json = json.unwrap_or(None);
        let sig = sig.unwrap_or(None);
        out.push((b, json, sig));
    }
    Ok(out)
}

/// Checks the chain slice; returns every record whose signature verified (for the
/// window check).
pub(super) fn verify_chain(ctx: &mut Ctx, clips: &[ClipOutcome]) -> Result<Vec<ChainRecord>> {
    let mut verified = Vec::new();
    let mut entries: BTreeMap<(String, Uuid), Vec<Entry>> = BTreeMap::new();
    for (base, json, sig) in pairs(ctx, "chain/")? {
        let subject = format!("{base}.json");
        let (Some(json), Some(sig)) = (json, sig) else {
            ctx.push(Check::fail(
                "chain.record",
                &subject,
                Verdict::NotOk,
                "Chain record lacks its .json or .sig file (or it is too large).",
            ));
            continue;
        };
        let record = match ChainRecord::from_files(json, &sig) {
            Ok(r) => r,
            Err(e) => {
                ctx.push(Check::fail(
                    "chain.record",
                    &subject,
                    Verdict::NotOk,
                    format!("{e}."),
                ));
                continue;
            }
        };
        let ok = match &record {
            ChainRecord::Manifest(m) => ctx.check_signature(&subject, m),
            ChainRecord::Reset(r) => ctx.check_signature(&subject, r),
            ChainRecord::Deletion(d) => ctx.check_signature(&subject, d),
        };
        if ok {
            verified.push(record.clone());
            add(&mut entries, subject, record, None);
        }
    }
    for c in clips {
        if let Some(m) = &c.manifest {
            let subject = format!("{}manifest.json", c.dir);
            add(
                &mut entries,
                subject,
                ChainRecord::Manifest(m.clone()),
                Some(c.dir.clone()),
            );
        }
    }
    let mut checkpoints: Vec<(String, Checkpoint)> = Vec::new();
    for (base, json, sig) in pairs(ctx, "checkpoints/")? {
        let subject = format!("{base}.json");
        let (Some(json), Some(sig)) = (json, sig) else {
            ctx.push(Check::fail(
                "chain.checkpoint",
                &subject,
                Verdict::NotOk,
                "Checkpoint lacks its .json or .sig file.",
            ));
            continue;
        };
        match SignedCheckpoint::from_files(json, &sig) {
            Ok(cp) => {
                if ctx.check_signature(&subject, &cp) {
                    checkpoints.push((subject, cp.record().clone()));
                }
            }
            Err(e) => ctx.push(Check::fail(
                "chain.checkpoint",
                &subject,
                Verdict::NotOk,
                format!("{e}."),
            )),
        }
    }
    replays(ctx, clips);
    for ((camera, segment), group) in entries {
        let cps: Vec<&(String, Checkpoint)> = checkpoints
            .iter()
            .filter(|(_, c)| c.camera_id == camera && c.segment_id == segment)
            .collect();
        segment_checks(ctx, &camera, segment, group, &cps);
    }
    Ok(verified)
}

fn add(
    entries: &mut BTreeMap<(String, Uuid), Vec<Entry>>,
    source: String,
    record: ChainRecord,
    clip_dir: Option<String>,
) {
    let key = (record.camera_id().to_string(), record.segment_id());
    entries.entry(key).or_default().push(Entry {
        source,
        seq: record.seq(),
        sha: record.sha256(),
        prev: record.prev(),
        key_id: record.key_id(),
        agent_id: record.agent_id().to_string(),
        record,
        clip_dir,
    });
}

/// The same clip presented twice, or a clip file that belongs to another manifest.
fn replays(ctx: &mut Ctx, clips: &[ClipOutcome]) {
    let signed: Vec<(&ClipOutcome, &Signed<crate::manifest::Manifest>)> = clips
        .iter()
        .filter_map(|c| c.manifest.as_ref().map(|m| (c, m)))
        .collect();
    for (i, (a, ma)) in signed.iter().enumerate() {
        for (b, mb) in signed.iter().skip(i + 1) {
            let (ra, rb) = (ma.record(), mb.record());
            if ra.clip_id == rb.clip_id || ra.file.sha256 == rb.file.sha256 {
                ctx.push(Check::fail("chain.replay", b.dir.trim_end_matches('/'), Verdict::NotOk, format!(
                    "{} repeats the clip of {} (clip_id {}, seq {}): the same clip is presented twice.",
                    b.dir.trim_end_matches('/'), a.dir.trim_end_matches('/'), ra.clip_id, ra.seq
                )).seq(rb.seq));
            }
        }
        if !a.file_ok {
            if let Some(h) = a.file_sha256 {
                for (b, mb) in &signed {
                    if b.dir != a.dir && mb.record().file.sha256 == h {
                        ctx.push(Check::fail("chain.swap", a.dir.trim_end_matches('/'), Verdict::NotOk, format!(
                            "{}clip.mp4 is the clip of seq {} ({}), not of seq {}: clips were swapped or moved.",
                            a.dir, mb.record().seq, b.dir.trim_end_matches('/'), ma.record().seq
                        )).seq(ma.record().seq));
                    }
                }
            }
        }
    }
}

fn segment_checks(
    ctx: &mut Ctx,
    camera: &str,
    segment: Uuid,
    group: Vec<Entry>,
    cps: &[&(String, Checkpoint)],
) {
    let subject = format!("camera {camera} segment {segment}");
    let mut by_seq: BTreeMap<u64, Vec<Entry>> = BTreeMap::new();
    for e in group {
        by_seq.entry(e.seq).or_default().push(e);
    }
    let mut ok = true;
    // One record per seq (the same record may appear both in chain/ and clips/).
    for (seq, es) in &by_seq {
        if let Some(other) = es.iter().find(|e| e.sha != es[0].sha) {
            ok = false;
            ctx.push(Check::fail("chain.seq", &subject, Verdict::NotOk, format!(
                "Two different signed records claim seq {seq}: {} and {}. The agent reused a seq or a record was substituted.",
                es[0].source, other.source
            )).seq(*seq));
        }
    }
    let firsts: Vec<&Entry> = by_seq.values().map(|v| &v[0]).collect();
    let keys: std::collections::BTreeSet<_> = firsts
        .iter()
        .map(|e| (e.key_id, e.agent_id.as_str()))
        .collect();
    if keys.len() > 1 {
        ok = false;
        ctx.push(Check::fail("chain.keys", &subject, Verdict::NotOk, format!(
            "Records of one segment are signed by {} different agent/key pairs: records were spliced in from another chain.", keys.len()
        )));
    }
    for w in firsts.windows(2) {
        let (a, b) = (w[0], w[1]);
        if b.seq == a.seq + 1 && b.prev != Some(a.sha) {
            ok = false;
            ctx.push(Check::fail("chain.link", &subject, Verdict::NotOk, format!(
                "Seq {} ({}) does not link to seq {} ({}): its prev_manifest_sha256 is not that record's hash.",
                b.seq, b.source, a.seq, a.source
            )).seq(b.seq).field("prev_manifest_sha256"));
        } else if b.seq > a.seq + 1 {
            let (from, to) = (a.seq + 1, b.seq - 1);
            ctx.push(Check::missing("chain.gap", &subject, format!(
                "Seq {} missing from the chain slice (between {} and {}): records were deleted or not exported.",
                range(from, to), a.source, b.source
            )).seq(from));
        }
    }
    if let Some(first) = firsts.first() {
        if let ChainRecord::Reset(r) = &first.record {
            let r = r.record();
            let reason = serde_json::to_value(r.reason)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            ctx.push(Check::warn("chain.reset", &subject, format!(
                "Segment opened by a chain_reset at {} (reason {reason}: {}); records before it are not linked to this segment.",
                crate::record::utc_ms::format(&r.time), r.detail
            )).seq(0));
        }
    }
    // Clips between the first and last exported clip must all be present, per kind:
    // a window export carries recorded pieces, an event export event clips, and the
    // other kind's manifests in between are in the slice only to link the chain.
    // A piece named by a deletion record in the slice is explained, not missing.
    let deleted: BTreeMap<u64, (String, String)> = firsts
        .iter()
        .filter_map(|e| e.record.deletion().map(|d| (e, d)))
        .flat_map(|(e, d)| {
            let when = crate::record::utc_ms::format(&d.time);
            let why = format!(
                "{} at {when} by {} ({})",
                e.source,
                d.reason.as_str(),
                d.detail
            );
            d.pieces
                .iter()
                .filter(move |p| p.segment_id == segment)
                .map(move |p| (p.seq, (why.clone(), p.manifest_sha256.to_hex())))
        })
        .collect();
    let exported = |e: &Entry| by_seq[&e.seq].iter().any(|x| x.clip_dir.is_some());
    let clip_seqs: Vec<u64> = firsts
        .iter()
        .filter(|e| exported(e))
        .map(|e| e.seq)
        .collect();
    for piece in [false, true] {
        let of_kind = |e: &&&Entry| e.record.manifest().is_some_and(|m| m.is_piece() == piece);
        let seqs: Vec<u64> = firsts
            .iter()
            .filter(of_kind)
            .filter(|e| exported(e))
            .map(|e| e.seq)
            .collect();
        let (Some(&lo), Some(&hi)) = (seqs.first(), seqs.last()) else {
            continue;
        };
        for e in firsts
            .iter()
            .filter(of_kind)
            .filter(|e| e.seq > lo && e.seq < hi && !exported(e))
        {
            let what = if piece { "Recorded piece" } else { "Clip" };
            match deleted.get(&e.seq) {
                Some((why, sha)) if *sha == e.sha.to_hex() => ctx.push(Check::warn("chain.clip", &subject, format!(
                    "{what} of seq {} ({}) was deleted by policy: {why}.", e.seq, e.source
                )).seq(e.seq)),
                _ => ctx.push(Check::missing("chain.clip", &subject, format!(
                    "{what} of seq {} is not in the bundle, although its manifest ({}) is in the chain slice.", e.seq, e.source
                )).seq(e.seq)),
            }
        }
    }
    let last = firsts.last().map(|e| (e.seq, e.sha, e.source.clone()));
    let last_clip = clip_seqs.last().copied().unwrap_or(0);
    let next = cps
        .iter()
        .filter(|(_, c)| c.head_seq >= last_clip)
        .min_by_key(|(_, c)| c.head_seq);
    match (next, last) {
        (Some((cp_src, cp)), Some((last_seq, _, last_src))) => {
            if let Some(es) = by_seq.get(&cp.head_seq) {
                if es[0].sha == cp.head_sha256 {
                    ctx.push(Check::pass("chain.checkpoint", &subject, format!(
                        "Checkpoint {cp_src} anchors seq {} ({}); no tail was removed before it.", cp.head_seq, es[0].source
                    )).seq(cp.head_seq));
                } else {
                    ok = false;
                    ctx.push(Check::fail("chain.checkpoint", &subject, Verdict::NotOk, format!(
                        "Checkpoint {cp_src} says seq {} has hash {}, but {} has {}.", cp.head_seq, cp.head_sha256, es[0].source, es[0].sha
                    )).seq(cp.head_seq));
                }
            } else if cp.head_seq > last_seq {
                ctx.push(Check::missing("chain.checkpoint", &subject, format!(
                    "Checkpoint {cp_src} proves the segment reached seq {}, but the chain slice ends at seq {last_seq} ({last_src}): seq {} missing (tail deleted or not exported).",
                    cp.head_seq, range(last_seq + 1, cp.head_seq)
                )).seq(last_seq + 1));
            }
        }
        _ => ctx.push(Check::warn("chain.checkpoint", &subject, format!(
            "No checkpoint at or after seq {last_clip}: a deleted tail of this segment cannot be ruled out."
        ))),
    }
    if ok {
        let (lo, hi) = (
            firsts.first().map_or(0, |e| e.seq),
            firsts.last().map_or(0, |e| e.seq),
        );
        ctx.push(Check::pass("chain.link", &subject, format!(
            "Records seq {lo}..{hi} present in the slice link to each other and share one agent key."
        )));
    }
}

fn range(from: u64, to: u64) -> String {
    if from == to {
        from.to_string()
    } else {
        format!("{from}..{to}")
    }
}
