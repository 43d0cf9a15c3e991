//! The offline verifier behind `vigil-verify`: checks a clip directory or a
//! bundle (directory or zip) and produces a [`Report`].
//!
//! Order of work: open the input as a hostile [`Source`]; load the bundle's
//! keys; verify each clip (manifest parse, signature, file hash, GOP hashes);
//! for bundles, verify the chain slice and checkpoints and the chain's
//! continuity, then `manifest-sha256.txt`; finally one trust check per key.

mod chain;
mod clip;
mod gops;
pub mod report;
pub mod window;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use crate::bundle::source::{Source, MAX_TEXT_BYTES};
use crate::bundle::{parse_checksum_list, CHECKSUM_FILE};
use crate::clipdir::{CLIP_FILE, MANIFEST_FILE, PUBKEY_FILE, SIGNATURE_FILE};
use crate::digest::Sha256Digest;
use crate::error::{Error, Result};
use crate::keys::PublicKey;
use crate::record::{Record, Signed};

pub use report::{Check, ClipSummary, InputKind, Report, Status, Verdict, REPORT_SCHEMA};

/// Verification state shared by the steps.
struct Ctx {
    source: Source,
    /// Prefix of every path (a zip that wraps the bundle in one folder).
    root: String,
    trusted: HashMap<Sha256Digest, PublicKey>,
    /// Keys shipped in the input (`keys/*.pem`, `pubkey.pem`), untrusted.
    shipped: HashMap<Sha256Digest, PublicKey>,
    /// Key id -> subjects whose signatures verified under it.
    used_keys: BTreeMap<Sha256Digest, Vec<String>>,
    /// Path -> SHA-256 of every file read so far (for manifest-sha256.txt).
    hashed: BTreeMap<String, Sha256Digest>,
    checks: Vec<Check>,
}

impl Ctx {
    fn push(&mut self, c: Check) {
        self.checks.push(c);
    }

    /// Reads a file relative to the bundle root and remembers its hash.
    fn read(&mut self, path: &str, limit: u64) -> Result<Option<Vec<u8>>> {
        let full = format!("{}{path}", self.root);
        let data = self.source.read(&full, limit)?;
        if let Some(d) = &data {
            self.hashed.insert(path.to_string(), Sha256Digest::of(d));
        }
        Ok(data)
    }

    fn paths(&self) -> Vec<String> {
        self.source
            .paths()
            .into_iter()
            .filter_map(|p| p.strip_prefix(&self.root).map(str::to_string))
            .collect()
    }

    fn key(&self, id: &Sha256Digest) -> Option<PublicKey> {
        self.trusted
            .get(id)
            .or_else(|| self.shipped.get(id))
            .cloned()
    }

    /// Checks a record's signature; records a check and returns whether it verified.
    fn check_signature<R: Record>(&mut self, subject: &str, signed: &Signed<R>) -> bool {
        let id = signed.record().key_id();
        let Some(key) = self.key(&id) else {
            self.push(Check::fail("signature", subject, Verdict::NotOk, format!(
                "The {} names key {id}, but neither the input nor --trust holds that public key.", R::WHAT
            )).field("key_id"));
            return false;
        };
        match signed.verify(&key) {
            Ok(()) => {
                self.used_keys
                    .entry(id)
                    .or_default()
                    .push(subject.to_string());
                self.push(Check::pass(
                    "signature",
                    subject,
                    format!("The {} signature verifies under key {id}.", R::WHAT),
                ));
                true
            }
            Err(_) => {
                self.push(Check::fail("signature", subject, Verdict::NotOk, format!(
                    "The {} signature does not verify under key {id}: the {} or its signature was altered, or the signature belongs to another record.",
                    R::WHAT, R::WHAT
                )));
                false
            }
        }
    }
}

/// Verifies a clip directory or bundle at `path` against `trusted` keys.
/// `Err` means the input could not be read at all (exit code 2); every
/// problem inside a readable input is a check in the report instead.
pub fn verify_path(path: &Path, trusted: &[PublicKey]) -> Result<Report> {
    let source = Source::open(path)?;
    let is_zip = matches!(source, Source::Zip { .. });
    let paths = source.paths();
    let root = wrapping_folder(&paths);
    let rel: Vec<&str> = paths.iter().filter_map(|p| p.strip_prefix(&root)).collect();
    let is_bundle = rel
        .iter()
        .any(|p| *p == CHECKSUM_FILE || p.starts_with("clips/"));
    let is_clip_dir = rel
        .iter()
        .any(|p| [CLIP_FILE, MANIFEST_FILE, SIGNATURE_FILE].contains(p));
    let kind = match (is_zip, is_bundle, is_clip_dir) {
        (true, _, _) => InputKind::BundleZip,
        (false, true, _) => InputKind::BundleDir,
        (false, false, true) => InputKind::ClipDir,
        _ => {
            return Err(Error::Bundle(format!(
                "{} is neither a clip directory (clip.mp4, manifest.json, manifest.sig) nor an evidence bundle (manifest-sha256.txt, clips/)",
                path.display()
            )))
        }
    };
    let mut ctx = Ctx {
        source,
        root,
        trusted: trusted.iter().map(|k| (k.key_id(), k.clone())).collect(),
        shipped: HashMap::new(),
        used_keys: BTreeMap::new(),
        hashed: BTreeMap::new(),
        checks: Vec::new(),
    };
    let mut clips = Vec::new();
    if kind == InputKind::ClipDir {
        load_key_file(&mut ctx, PUBKEY_FILE)?;
        let outcome = clip::verify_clip(&mut ctx, "")?;
        clips.extend(outcome.summary.clone());
        ctx.push(Check::warn("chain", "", "A single clip directory carries no chain slice: continuity with other clips is not checked. Verify an evidence bundle for that."));
    } else {
        let key_files: Vec<String> = ctx
            .paths()
            .into_iter()
            .filter(|p| p.starts_with("keys/") && p.ends_with(".pem"))
            .collect();
        for k in key_files {
            load_key_file(&mut ctx, &k)?;
        }
        let dirs: BTreeSet<String> = ctx
            .paths()
            .iter()
            .filter_map(|p| {
                p.strip_prefix("clips/")
                    .and_then(|r| r.split_once('/'))
                    .map(|(d, _)| format!("clips/{d}/"))
            })
            .collect();
        let window = window::read_window(&mut ctx)?;
        if dirs.is_empty() && window.is_none() {
            ctx.push(Check::fail(
                "bundle.clips",
                "clips/",
                Verdict::NotOk,
                "The bundle holds no clips.",
            ));
        }
        let mut outcomes = Vec::new();
        for d in dirs {
            let o = clip::verify_clip(&mut ctx, &d)?;
            clips.extend(o.summary.clone());
            outcomes.push(o);
        }
        let records = chain::verify_chain(&mut ctx, &outcomes)?;
        if let Some(w) = window {
            window::verify_window(&mut ctx, &w, &outcomes, &records);
        }
        verify_checksums(&mut ctx)?;
    }
    trust_checks(&mut ctx);
    let verdict = ctx
        .checks
        .iter()
        .map(|c| c.impact)
        .max()
        .unwrap_or(Verdict::NotOk);
    let mut trusted_keys: Vec<String> = ctx.trusted.keys().map(Sha256Digest::to_hex).collect();
    trusted_keys.sort();
    Ok(Report {
        schema: REPORT_SCHEMA,
        path: path.display().to_string(),
        kind,
        verdict,
        trusted_keys,
        checks: ctx.checks,
        clips,
    })
}

/// If every path sits under one folder that holds the bundle, returns "folder/".
fn wrapping_folder(paths: &[String]) -> String {
    let Some(first) = paths
        .first()
        .and_then(|p| p.split_once('/'))
        .map(|(d, _)| d)
    else {
        return String::new();
    };
    let prefix = format!("{first}/");
    let all_under = paths.iter().all(|p| p.starts_with(&prefix));
    let looks_wrapped = paths.iter().any(|p| {
        p.strip_prefix(&prefix)
            .is_some_and(|r| r == CHECKSUM_FILE || r == MANIFEST_FILE || r == CLIP_FILE)
    });
    if all_under && looks_wrapped {
        prefix
    } else {
        String::new()
    }
}

fn load_key_file(ctx: &mut Ctx, path: &str) -> Result<()> {
    let Some(bytes) = ctx.read(path, MAX_TEXT_BYTES)? else {
        return Ok(());
    };
    match std::str::from_utf8(&bytes)
        .map_err(|_| Error::PublicKeyInvalid("not UTF-8".into()))
        .and_then(PublicKey::from_pem)
    {
        Ok(k) => {
            let id = k.key_id();
            let named = path
                .strip_prefix("keys/")
                .and_then(|n| n.strip_suffix(".pem"));
            if named.is_some_and(|n| n != id.to_hex()) {
                ctx.push(Check::warn(
                    "key.file",
                    path,
                    format!("Key file name does not match its key id {id}."),
                ));
            }
            ctx.shipped.insert(id, k);
        }
        Err(e) => ctx.push(Check::fail(
            "key.file",
            path,
            Verdict::NotOk,
            format!("Not a usable public key: {e}."),
        )),
    }
    Ok(())
}

/// Compares `manifest-sha256.txt` with every other file in the bundle.
fn verify_checksums(ctx: &mut Ctx) -> Result<()> {
    let Some(list) = ctx.read(CHECKSUM_FILE, MAX_TEXT_BYTES)? else {
        ctx.push(Check::fail(
            "bundle.checksums",
            CHECKSUM_FILE,
            Verdict::NotOk,
            "The bundle has no manifest-sha256.txt.",
        ));
        return Ok(());
    };
    let listed = match parse_checksum_list(&list) {
        Ok(l) => l,
        Err(e) => {
            ctx.push(Check::fail(
                "bundle.checksums",
                CHECKSUM_FILE,
                Verdict::NotOk,
                format!("{e}."),
            ));
            return Ok(());
        }
    };
    let present: Vec<String> = ctx
        .paths()
        .into_iter()
        .filter(|p| p != CHECKSUM_FILE)
        .collect();
    let mut bad = 0;
    for p in &present {
        if !ctx.hashed.contains_key(p) {
            ctx.read(p, crate::bundle::source::MAX_CLIP_BYTES)?;
        }
        let actual = ctx.hashed.get(p).copied();
        match listed.get(p) {
            None => {
                bad += 1;
                ctx.push(Check::fail(
                    "bundle.checksums",
                    p,
                    Verdict::NotOk,
                    "File is not listed in manifest-sha256.txt (added after export).",
                ));
            }
            Some(want) if Some(*want) != actual => {
                bad += 1;
                ctx.push(Check::fail(
                    "bundle.checksums",
                    p,
                    Verdict::NotOk,
                    "File differs from its manifest-sha256.txt entry.",
                ));
            }
            Some(_) => {}
        }
    }
    for p in listed.keys().filter(|p| !present.contains(p)) {
        bad += 1;
        ctx.push(Check::fail(
            "bundle.checksums",
            p,
            Verdict::NotOk,
            "File is listed in manifest-sha256.txt but absent from the bundle.",
        ));
    }
    if bad == 0 {
        ctx.push(Check::pass(
            "bundle.checksums",
            CHECKSUM_FILE,
            format!("All {} files match manifest-sha256.txt.", present.len()),
        ));
    }
    Ok(())
}

/// One check per key whose signatures verified: trusted or not.
fn trust_checks(ctx: &mut Ctx) {
    let used = std::mem::take(&mut ctx.used_keys);
    for (id, subjects) in used {
        let n = subjects.len();
        if ctx.trusted.contains_key(&id) {
            ctx.push(Check::pass(
                "key.trust",
                &id.to_hex(),
                format!("Key {id} is trusted (--trust); it signed {n} verified record(s)."),
            ));
        } else {
            let first: Vec<&str> = subjects.iter().take(3).map(String::as_str).collect();
            ctx.push(
                Check::fail("key.trust", &id.to_hex(), Verdict::KeyUntrusted, format!(
                    "{n} record(s) ({}{}) carry valid signatures by key {id}, but that key was not given with --trust; only the input itself vouches for it.",
                    first.join(", "), if n > 3 { ", ..." } else { "" }
                ))
                .field("key_id"),
            );
        }
    }
}
