//! The crate's error type: one enum whose messages are sentences naming what
//! went wrong and, where possible, what to do about it.

use std::path::PathBuf;

/// Everything that can go wrong in `vigil-evidence`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file system operation failed; `context` says which one and on what path.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing, e.g. "cannot read /x/clip.mp4".
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// `SigningKey::generate` found an existing file and refuses to overwrite it.
    #[error("key file {0} already exists; refusing to overwrite a signing key (move it away first if you really mean to replace it)")]
    KeyExists(PathBuf),
    /// A private key file is readable by group or others.
    #[error("key file {path} has mode {mode:03o} and is readable by group or others; run `chmod 600 {path}` and make sure nobody else has copied it")]
    KeyPermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A private key could not be parsed or used.
    #[error("the signing key is not usable: {0}")]
    KeyInvalid(String),
    /// A public key (PEM/SPKI) could not be parsed.
    #[error("the public key is not a valid P-256 SPKI key: {0}")]
    PublicKeyInvalid(String),
    /// The MP4 is malformed (bad box sizes, offsets outside the file, ...).
    #[error("the MP4 is malformed: {0}")]
    Mp4(String),
    /// The MP4 is well formed but uses something this crate does not handle.
    #[error("the MP4 is not supported: {0}")]
    Mp4Unsupported(String),
    /// A signed record (manifest, chain reset, checkpoint) is malformed.
    #[error("the {what} is invalid: {reason}")]
    RecordInvalid {
        /// Which record type, e.g. "manifest".
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The record declares a format version this build does not know.
    #[error("the {what} has format_version {found}; this verifier only understands version 1 (upgrade vigil-verify)")]
    UnsupportedFormatVersion {
        /// Which record type.
        what: &'static str,
        /// The version found.
        found: String,
    },
    /// The record names a signature algorithm other than ECDSA_P256_SHA256.
    #[error("the {what} uses algorithm {found:?}; only \"ECDSA_P256_SHA256\" is accepted")]
    UnsupportedAlgorithm {
        /// Which record type.
        what: &'static str,
        /// The algorithm found.
        found: String,
    },
    /// A signature did not verify under the given public key.
    #[error("the signature on the {what} does not verify under key {key_id}")]
    BadSignature {
        /// Which record type.
        what: &'static str,
        /// The key that was tried.
        key_id: String,
    },
    /// The chain store refused an operation or found inconsistent state.
    #[error("chain: {0}")]
    Chain(String),
    /// A bundle or clip directory is malformed or unsafe.
    #[error("bundle: {0}")]
    Bundle(String),
    /// An input exceeded a safety limit.
    #[error("{what} is larger than the limit of {limit} bytes")]
    TooLarge {
        /// What was too large.
        what: String,
        /// The limit in bytes.
        limit: u64,
    },
}

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error with a sentence saying what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn record(what: &'static str, reason: impl Into<String>) -> Self {
        Error::RecordInvalid {
            what,
            reason: reason.into(),
        }
    }
}
