//! Clip transfers: a signed manifest opens a transfer in `DATA/incoming/`, chunks
//! land as `<n>.part`, the last one triggers verification, the chain check, the
//! durable store and the index row.

use std::fs;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::Deserialize;
use uuid::Uuid;
use vigil_evidence::clip::ClipDescription;
use vigil_evidence::keys::PublicKey;
use vigil_evidence::manifest::{Manifest, SignedManifest};

use super::{internal, Ack, AckStatus, Ingest, Rejection, CHUNK_SIZE, MAX_MANIFEST_MESSAGE};
use crate::files::{self, missing_parts, part_name, pending_count, write_atomic};
use crate::index::{AlertKind, ClipRow};
use crate::topic::{shorten, valid_id};

const MANIFEST_FILE: &str = "manifest.json";
const SIGNATURE_FILE: &str = "manifest.sig";

/// The manifest message of contract v1.
#[derive(Deserialize)]
struct ManifestMessage {
    manifest_b64: String,
    signature: String,
    size: u64,
    chunk_size: u64,
    chunks: u64,
}

fn chunks_for(size: u64) -> u64 {
    size.div_ceil(CHUNK_SIZE)
}

impl Ingest {
    /// Handles `clips/{clip}/manifest`: returns the ack to send.
    pub fn manifest(&mut self, agent: &str, clip: &Uuid, payload: &[u8]) -> Result<Ack, Rejection> {
        if payload.len() > MAX_MANIFEST_MESSAGE {
            return Err(Rejection::new(
                "too_large",
                format!(
                    "manifest message is {} bytes; the limit is {MAX_MANIFEST_MESSAGE}",
                    payload.len()
                ),
            ));
        }
        let key = self.agent_key(agent)?;
        let msg: ManifestMessage = serde_json::from_slice(payload)
            .map_err(|e| Rejection::new("bad_json", format!("manifest message: {e}")))?;
        let canonical = B64.decode(msg.manifest_b64.as_bytes()).map_err(|e| {
            Rejection::new("bad_manifest", format!("manifest_b64 is not base64: {e}"))
        })?;
        let signed = SignedManifest::from_files(canonical, msg.signature.as_bytes())
            .map_err(|e| Rejection::new("bad_manifest", e.to_string()))?;
        signed
            .verify(&key)
            .map_err(|e| Rejection::new("bad_signature", e.to_string()))?;
        let m = signed.record();
        if m.agent_id != agent {
            return Err(Rejection::new(
                "wrong_agent",
                format!(
                    "manifest names agent {:?} but came on {agent:?}'s topic",
                    shorten(&m.agent_id)
                ),
            ));
        }
        if m.clip_id != *clip {
            return Err(Rejection::new(
                "wrong_clip",
                format!(
                    "manifest names clip {} but came on clip {clip}'s topic",
                    m.clip_id
                ),
            ));
        }
        if !valid_id(&m.camera_id) {
            return Err(Rejection::new(
                "bad_camera_id",
                format!(
                    "camera id {:?} is not 1-64 of [A-Za-z0-9_-]",
                    shorten(&m.camera_id)
                ),
            ));
        }
        let size = m.file.size;
        let max = self.limits.max_clip_bytes;
        if size == 0 || size > max {
            return Err(Rejection::new(
                "bad_size",
                format!("clip size {size} is outside 1..={max} (ingest.max_clip_bytes)"),
            ));
        }
        if msg.size != size {
            return Err(Rejection::new(
                "bad_size",
                format!(
                    "message says size {} but the manifest says {size}",
                    msg.size
                ),
            ));
        }
        if msg.chunk_size != CHUNK_SIZE {
            return Err(Rejection::new(
                "bad_chunk_size",
                format!(
                    "chunk_size is {}; contract v1 requires {CHUNK_SIZE}",
                    msg.chunk_size
                ),
            ));
        }
        if msg.chunks != chunks_for(size) {
            return Err(Rejection::new(
                "bad_chunks",
                format!(
                    "chunks is {} but a {size}-byte clip has {}",
                    msg.chunks,
                    chunks_for(size)
                ),
            ));
        }
        let manifest_sha = signed.sha256().to_hex();
        if let Some(ack) = self.already_stored(agent, clip, &manifest_sha)? {
            return Ok(ack);
        }
        // Refuse early a clip that conflicts with the stored chain (saves the transfer).
        if let Err(r) = self.chain_check(m, &manifest_sha, false) {
            self.raise(AlertKind::Tamper, agent, &m.camera_id, &r.reason);
            return Err(r);
        }
        let dir = self.layout.incoming(agent, clip);
        let prior = fs::read(dir.join(MANIFEST_FILE)).ok();
        if prior.as_deref() != Some(signed.canonical_bytes()) {
            let max = self.limits.max_pending_per_agent;
            let agent_dir = self.layout.incoming_agent(agent);
            if prior.is_none() && pending_count(&agent_dir) >= max {
                // Make room by dropping transfers nobody touched for transfer_timeout.
                let dropped = files::remove_stale(&agent_dir, self.limits.transfer_timeout);
                if dropped > 0 {
                    tracing::warn!(agent, dropped, "Discarded stale half-received clips");
                }
                if pending_count(&agent_dir) >= max {
                    return Err(Rejection::new(
                        "too_many_pending",
                        format!("agent already has {max} clips in transfer (ingest.max_pending_per_agent); finish those first"),
                    ));
                }
            }
            // A different signed manifest for the same clip id: start over.
            if prior.is_some() {
                let _ = fs::remove_dir_all(&dir);
            }
            write_atomic(
                &dir.join(SIGNATURE_FILE),
                signed.signature_file().as_bytes(),
            )
            .map_err(|e| internal("cannot write the pending signature", e))?;
            // manifest.json last: its presence marks a complete pending transfer.
            write_atomic(&dir.join(MANIFEST_FILE), signed.canonical_bytes())
                .map_err(|e| internal("cannot write the pending manifest", e))?;
        }
        let missing = missing_parts(&dir, chunks_for(size));
        if missing.is_empty() {
            // Every chunk is already here (e.g. the hub died before finishing): finish now.
            return self.finish(agent, clip, &dir, &signed);
        }
        Ok(Ack {
            clip_id: clip.hyphenated().to_string(),
            status: AckStatus::Missing,
            missing,
            reason: None,
        })
    }

    fn already_stored(
        &self,
        agent: &str,
        clip: &Uuid,
        manifest_sha: &str,
    ) -> Result<Option<Ack>, Rejection> {
        match self
            .index
            .clip(&clip.hyphenated().to_string())
            .map_err(|e| internal("cannot read the clips table", e))?
        {
            Some((a, sha)) if a == agent && sha == manifest_sha => Ok(Some(Ack::stored(clip))),
            Some(_) => Err(Rejection::new(
                "clip_id_conflict",
                format!("clip {clip} is already stored with a different manifest"),
            )),
            None => Ok(None),
        }
    }

    fn load_pending(&self, dir: &Path) -> Option<SignedManifest> {
        let canonical = fs::read(dir.join(MANIFEST_FILE)).ok()?;
        let sig = fs::read(dir.join(SIGNATURE_FILE)).ok()?;
        SignedManifest::from_files(canonical, &sig).ok()
    }

    /// Handles `clips/{clip}/chunk/{n}`; returns an ack when the clip completed.
    pub fn chunk(
        &mut self,
        agent: &str,
        clip: &Uuid,
        n: u64,
        payload: &[u8],
    ) -> Result<Option<Ack>, Rejection> {
        // Only agents that are enrolled can have a pending transfer, but check
        // first so an unknown agent never touches the disk.
        self.agent_key(agent)?;
        let dir = self.layout.incoming(agent, clip);
        let Some(signed) = self.load_pending(&dir) else {
            if self
                .index
                .clip(&clip.hyphenated().to_string())
                .map_err(|e| internal("cannot read the clips table", e))?
                .is_some()
            {
                return Ok(None); // A late duplicate of a clip already stored.
            }
            return Err(Rejection::new(
                "no_manifest",
                format!("chunk {n} of clip {clip} arrived without a manifest; publish the manifest first"),
            ));
        };
        let size = signed.record().file.size;
        let chunks = chunks_for(size);
        if n >= chunks {
            return Err(Rejection::new(
                "chunk_out_of_range",
                format!("chunk {n} of clip {clip} is out of range; the clip has {chunks} chunks"),
            ));
        }
        let expected = if n + 1 < chunks {
            CHUNK_SIZE
        } else {
            size - CHUNK_SIZE * (chunks - 1)
        };
        if payload.len() as u64 != expected {
            return Err(Rejection::new(
                "bad_chunk_length",
                format!(
                    "chunk {n} of clip {clip} has {} bytes; expected {expected}",
                    payload.len()
                ),
            ));
        }
        let part = dir.join(part_name(n));
        if !part.is_file() {
            write_atomic(&part, payload).map_err(|e| internal("cannot write a chunk", e))?;
        }
        if !missing_parts(&dir, chunks).is_empty() {
            return Ok(None);
        }
        self.finish(agent, clip, &dir, &signed).map(Some)
    }

    /// All chunks are present: verify, chain-check, store, index, clean up.
    fn finish(
        &mut self,
        agent: &str,
        clip: &Uuid,
        dir: &Path,
        signed: &SignedManifest,
    ) -> Result<Ack, Rejection> {
        let key = self.agent_key(agent)?;
        let m = signed.record();
        let result = self.verify_and_store(agent, clip, dir, signed, &key);
        match &result {
            Ok(_) => {
                let _ = fs::remove_dir_all(dir);
                let _ = files::fsync_dir_of(dir);
            }
            Err(r) if r.code == "internal_error" => {} // Keep the chunks; a retry may succeed.
            Err(r) => {
                let kind = if r.code == "tamper" {
                    AlertKind::Tamper
                } else {
                    AlertKind::Rejected
                };
                self.raise(
                    kind,
                    agent,
                    &m.camera_id,
                    &format!("clip {clip}: {}", r.reason),
                );
                let _ = fs::remove_dir_all(dir);
            }
        }
        result
    }

    fn verify_and_store(
        &mut self,
        agent: &str,
        clip: &Uuid,
        dir: &Path,
        signed: &SignedManifest,
        key: &PublicKey,
    ) -> Result<Ack, Rejection> {
        let m = signed.record();
        let manifest_sha = signed.sha256().to_hex();
        if let Some(ack) = self.already_stored(agent, clip, &manifest_sha)? {
            return Ok(ack);
        }
        signed
            .verify(key)
            .map_err(|e| Rejection::new("verification_failed", e.to_string()))?;
        let size = m.file.size;
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        for n in 0..chunks_for(size) {
            let part =
                fs::read(dir.join(part_name(n))).map_err(|e| internal("cannot read a chunk", e))?;
            bytes.extend_from_slice(&part);
        }
        verify_clip(m, &bytes)?;
        let gap = self.chain_check(m, &manifest_sha, true)?;
        let sha_hex = m.file.sha256.to_hex();
        let path = self.layout.clip_path(&sha_hex);
        let present = fs::metadata(&path)
            .map(|md| md.len() == size)
            .unwrap_or(false);
        if !present {
            write_atomic(&path, &bytes).map_err(|e| internal("cannot store the clip", e))?;
        }
        let rel = path
            .strip_prefix(self.layout.root())
            .map(Path::to_path_buf)
            .unwrap_or_else(|_| PathBuf::from(&path));
        let clip_s = clip.hyphenated().to_string();
        let seg = m.segment_id.hyphenated().to_string();
        self.index
            .insert_clip(&ClipRow {
                clip_id: &clip_s,
                agent_id: agent,
                camera_id: &m.camera_id,
                segment_id: &seg,
                seq: m.seq,
                manifest: signed.canonical_bytes(),
                manifest_sha256: &manifest_sha,
                prev_manifest_sha256: &m.prev_manifest_sha256.to_hex(),
                signature: signed.signature_file().trim_end(),
                sha256: &sha_hex,
                size,
                path: &rel.to_string_lossy(),
            })
            .map_err(|e| internal("cannot index the clip", e))?;
        if let Some(detail) = gap {
            self.raise(AlertKind::MissingClip, agent, &m.camera_id, &detail);
        }
        tracing::info!(agent, camera = %m.camera_id, clip = %clip_s, seq = m.seq, size, "Stored a verified clip");
        Ok(Ack::stored(clip))
    }
}

/// Compares the received bytes with the signed manifest: size, file SHA-256
/// and every GOP hash (through `vigil-evidence`'s own MP4 reader).
pub fn verify_clip(m: &Manifest, bytes: &[u8]) -> Result<(), Rejection> {
    let fail = |s: String| Rejection::new("verification_failed", s);
    if bytes.len() as u64 != m.file.size {
        return Err(fail(format!(
            "clip has {} bytes; the manifest says {}",
            bytes.len(),
            m.file.size
        )));
    }
    let d = ClipDescription::from_mp4(bytes).map_err(|e| fail(e.to_string()))?;
    if d.file_sha256 != m.file.sha256 {
        return Err(fail(format!(
            "file SHA-256 is {}; the manifest says {}",
            d.file_sha256, m.file.sha256
        )));
    }
    if d.gops.len() != m.gops.len() {
        return Err(fail(format!(
            "clip has {} GOPs; the manifest lists {}",
            d.gops.len(),
            m.gops.len()
        )));
    }
    for (got, want) in d.gops.iter().zip(&m.gops) {
        if got != want {
            return Err(fail(format!(
                "GOP {} does not match the manifest",
                want.index
            )));
        }
    }
    Ok(())
}
