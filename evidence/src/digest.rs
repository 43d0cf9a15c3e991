//! SHA-256 digests: a hex-serialised value type and a hashing `io::Write` wrapper.

use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;

use ring::digest::{Context, SHA256};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A SHA-256 digest. Serialises as exactly 64 lowercase hex digits (the only
/// spelling the canonical encoding accepts).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Sha256Digest(pub [u8; 32]);

impl Sha256Digest {
    /// Hashes `data` in one call.
    pub fn of(data: &[u8]) -> Self {
        Self::from_ring(ring::digest::digest(&SHA256, data))
    }

    /// Hashes the concatenation of `parts` (used for domain-separated messages).
    pub fn of_parts(parts: &[&[u8]]) -> Self {
        let mut ctx = Context::new(&SHA256);
        for p in parts {
            ctx.update(p);
        }
        Self::from_ring(ctx.finish())
    }

    pub(crate) fn from_ring(d: ring::digest::Digest) -> Self {
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        Sha256Digest(out)
    }

    /// Lowercase hex, 64 characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Digest({})", self.to_hex())
    }
}

/// Why a string is not a digest.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a SHA-256 digest (expected 64 lowercase hex digits)")]
pub struct ParseDigestError(String);

impl FromStr for Sha256Digest {
    type Err = ParseDigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        let mut out = [0u8; 32];
        if !ok || hex::decode_to_slice(s, &mut out).is_err() {
            let shown: String = s.chars().take(80).collect();
            return Err(ParseDigestError(shown));
        }
        Ok(Sha256Digest(out))
    }
}

impl Serialize for Sha256Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Sha256Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Wraps a writer and computes the size and SHA-256 of everything written
/// through it, so a clip can be hashed while it is being stored (no second read).
pub struct Sha256Writer<W> {
    inner: W,
    ctx: Context,
    len: u64,
}

impl<W: Write> Sha256Writer<W> {
    /// Starts hashing writes to `inner`.
    pub fn new(inner: W) -> Self {
        Sha256Writer {
            inner,
            ctx: Context::new(&SHA256),
            len: 0,
        }
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True if nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Returns the inner writer, the byte count and the digest.
    pub fn finish(self) -> (W, u64, Sha256Digest) {
        (
            self.inner,
            self.len,
            Sha256Digest::from_ring(self.ctx.finish()),
        )
    }
}

impl<W: Write> Write for Sha256Writer<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        // Hash only what the inner writer accepted, so the digest matches the file.
        let written = buf.get(..n).unwrap_or(buf);
        self.ctx.update(written);
        self.len += written.len() as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_matches_one_shot_digest() {
        let mut w = Sha256Writer::new(Vec::new());
        w.write_all(b"hello ").unwrap();
        w.write_all(b"world").unwrap();
        let (buf, len, d) = w.finish();
        assert_eq!(len, 11);
        assert_eq!(d, Sha256Digest::of(&buf));
        assert_eq!(
            d.to_hex(),
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
    }

    #[test]
    fn parse_is_strict() {
        let h = "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9";
        assert!(h.parse::<Sha256Digest>().is_ok());
        assert!(h.to_uppercase().parse::<Sha256Digest>().is_err());
        assert!(h[..62].parse::<Sha256Digest>().is_err());
        assert!(format!("{h}0").parse::<Sha256Digest>().is_err());
    }
}
