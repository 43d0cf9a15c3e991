//! Vigil evidence format: signed clip manifests, per-camera hash chains,
//! evidence bundles and the offline verifier. Format spec: `docs/evidence.md`.
//!
//! # Modules and data flow
//!
//! Signing (agent), in this order:
//!
//! 1. [`keys`]: `SigningKey::generate`/`load` the agent's ECDSA P-256 key.
//! 2. [`clip`]: `ClipDescription::from_mp4(&bytes)` hashes the file and each
//!    GOP's VCL NAL units (via the bounds-checked box reader in `mp4`).
//! 3. [`chain`]: `ChainStore::ensure_segment` (publish any `chain_reset` it
//!    returns), then `ChainStore::sign_clip(key, ManifestDraft)` fills in
//!    segment/seq/prev hash, signs the [`manifest`] and persists the new head
//!    with fsync *before* returning it.
//! 4. [`clipdir`]: `write_clip_dir` releases clip + manifest + signature +
//!    public key atomically. `ChainStore::checkpoint` signs heads on the
//!    caller's schedule.
//!
//! Export (hub): [`bundle::BundleWriter`] writes clips, the chain slice,
//! checkpoints, keys, the custody log and `manifest-sha256.txt`.
//!
//! Verification (anyone, offline): [`verify::verify_path`] opens a clip
//! directory or bundle through the hostile-input reader
//! [`bundle::source::Source`], re-describes each clip with [`clip::scan`],
//! checks signatures ([`record`]), chain links, gaps and checkpoints, and
//! returns a [`verify::Report`]; `vigil-verify` prints it.
//!
//! Shared pieces: [`canonical`] (the deterministic JSON encoding),
//! [`record`] (envelope fields, strict parsing, domain-separated signatures),
//! [`digest`] (hex SHA-256 values and a hashing writer), [`error`].

pub mod bundle;
pub mod canonical;
pub mod chain;
pub mod clip;
pub mod clipdir;
pub mod digest;
pub mod error;
mod fsutil;
pub mod keys;
pub mod manifest;
mod mp4;
pub mod process;
pub mod record;
pub mod transfer;
pub mod verify;

pub use error::{Error, Result};
