//! Per-clip checks: manifest, signature, file hash, GOP hashes.

use super::report::{Check, ClipSummary, Verdict};
use super::{gops, Ctx};
use crate::bundle::source::{MAX_CLIP_BYTES, MAX_TEXT_BYTES};
use crate::clip::scan;
use crate::clipdir::{CLIP_FILE, MANIFEST_FILE, SIGNATURE_FILE};
use crate::digest::Sha256Digest;
use crate::error::{Error, Result};
use crate::manifest::SignedManifest;
use crate::record::{utc_ms, Signed};

/// What the chain checks need to know about a clip.
#[derive(Debug, Clone)]
pub(super) struct ClipOutcome {
    /// The clip's directory ("" for a clip directory, "clips/0001/" in a bundle).
    pub(super) dir: String,
    /// The manifest, if its signature verified.
    pub(super) manifest: Option<SignedManifest>,
    /// SHA-256 of clip.mp4 as found.
    pub(super) file_sha256: Option<Sha256Digest>,
    /// Whether the clip file matched its manifest.
    pub(super) file_ok: bool,
    /// Summary for the report.
    pub(super) summary: Option<ClipSummary>,
}

/// Reads a file, turning an over-limit file into a failed check.
fn read_limited(ctx: &mut Ctx, path: &str, limit: u64) -> Result<Result<Option<Vec<u8>>, String>> {
    match ctx.read(path, limit) {
        Ok(d) => Ok(Ok(d)),
        Err(e @ Error::TooLarge { .. }) => Ok(Err(format!("{e}."))),
        Err(e) => Err(e),
    }
}

pub(super) fn verify_clip(ctx: &mut Ctx, dir: &str) -> Result<ClipOutcome> {
    let subject = if dir.is_empty() {
        ".".to_string()
    } else {
        dir.trim_end_matches('/').to_string()
    };
    let mut out = ClipOutcome {
        dir: dir.to_string(),
        manifest: None,
        file_sha256: None,
        file_ok: false,
        summary: None,
    };
    let manifest_path = format!("{dir}{MANIFEST_FILE}");
    let sig_path = format!("{dir}{SIGNATURE_FILE}");
    let manifest_bytes = match read_limited(ctx, &manifest_path, MAX_TEXT_BYTES)? {
        Ok(d) => d,
        Err(e) => {
            ctx.push(Check::fail("manifest.parse", &subject, Verdict::NotOk, e));
            return Ok(out);
        }
    };
    let sig_bytes = match read_limited(ctx, &sig_path, MAX_TEXT_BYTES)? {
        Ok(d) => d,
        Err(e) => {
            ctx.push(Check::fail(
                "manifest.signature",
                &subject,
                Verdict::NotOk,
                e,
            ));
            return Ok(out);
        }
    };
    let (Some(manifest_bytes), Some(sig_bytes)) = (manifest_bytes, sig_bytes) else {
        ctx.push(Check::fail("manifest.present", &subject, Verdict::NotSigned,
            format!("The clip has no {} and/or {}: it is not signed, so nothing about it can be verified.", MANIFEST_FILE, SIGNATURE_FILE)));
        return Ok(out);
    };
    let signed: SignedManifest = match Signed::from_files(manifest_bytes, &sig_bytes) {
        Ok(s) => s,
        Err(e) => {
            ctx.push(Check::fail(
                "manifest.parse",
                &subject,
                Verdict::NotOk,
                format!("{e}."),
            ));
            return Ok(out);
        }
    };
    ctx.push(Check::pass(
        "manifest.parse",
        &subject,
        "manifest.json is a well-formed canonical v1 manifest.",
    ));
    if !ctx.check_signature(&subject, &signed) {
        return Ok(out);
    }
    let m = signed.record().clone();
    let mut summary = ClipSummary {
        path: dir.to_string(),
        clip_id: m.clip_id.to_string(),
        camera_id: m.camera_id.clone(),
        segment_id: m.segment_id.to_string(),
        seq: m.seq,
        start: utc_ms::format(&m.start),
        end: utc_ms::format(&m.end),
        key_id: m.key_id.to_hex(),
        intact: false,
    };
    out.manifest = Some(signed);

    let clip_path = format!("{dir}{CLIP_FILE}");
    let bytes = match read_limited(ctx, &clip_path, MAX_CLIP_BYTES)? {
        Ok(Some(b)) => b,
        Ok(None) => {
            ctx.push(Check::fail("clip.file", &subject, Verdict::NotOk, format!("{CLIP_FILE} is missing; the manifest (seq {}) describes a clip that is not here.", m.seq)).seq(m.seq));
            out.summary = Some(summary);
            return Ok(out);
        }
        Err(e) => {
            ctx.push(Check::fail("clip.file", &subject, Verdict::NotOk, e).seq(m.seq));
            out.summary = Some(summary);
            return Ok(out);
        }
    };
    let found = scan(&bytes);
    out.file_sha256 = Some(found.file_sha256);
    let file_ok = found.file_sha256 == m.file.sha256 && found.file_size == m.file.size;
    let diff = gops::compare(&m.gops, &found);
    if file_ok {
        ctx.push(
            Check::pass(
                "clip.file_sha256",
                &subject,
                format!(
                    "clip.mp4 matches the manifest's size ({} bytes) and SHA-256.",
                    m.file.size
                ),
            )
            .seq(m.seq),
        );
    } else {
        let video = if diff.is_empty() {
            format!(
                "container altered, video data intact (all {} GOP hashes match)",
                m.gops.len()
            )
        } else {
            format!(
                "video data altered too ({} GOP problem(s) below)",
                diff.len()
            )
        };
        let size = if found.file_size == m.file.size {
            String::new()
        } else {
            format!(
                " Size is {} bytes, the manifest says {}.",
                found.file_size, m.file.size
            )
        };
        ctx.push(
            Check::fail(
                "clip.file_sha256",
                &subject,
                Verdict::NotOk,
                format!("clip.mp4 SHA-256 differs from the manifest: {video}.{size}"),
            )
            .seq(m.seq)
            .field("file.sha256"),
        );
    }
    if diff.is_empty() {
        ctx.push(
            Check::pass(
                "clip.gops",
                &subject,
                format!("All {} GOP hashes match the manifest.", m.gops.len()),
            )
            .seq(m.seq),
        );
    } else {
        for d in diff {
            let mut c = Check::fail("clip.gops", &subject, Verdict::NotOk, d.message)
                .seq(m.seq)
                .field("gops");
            if let Some(g) = d.gop {
                c = c.gop(g);
            }
            ctx.push(c);
        }
    }
    out.file_ok = file_ok;
    summary.intact = file_ok;
    out.summary = Some(summary);
    Ok(out)
}
