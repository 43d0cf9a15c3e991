//! Agent signing keys: ECDSA P-256 / SHA-256 via `ring`.
//!
//! The private key is a PKCS#8 document stored as PEM (`PRIVATE KEY`), created
//! with mode 0600 and never overwritten. The public key travels as SPKI PEM
//! (`PUBLIC KEY`); its `key_id` is the SHA-256 of the 91-byte SPKI DER, which
//! `openssl pkey -pubin -in pubkey.pem -outform DER | sha256sum` reproduces.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, UnparsedPublicKey};

use crate::digest::Sha256Digest;
use crate::error::{Error, Result};

/// The DER prefix of a P-256 SubjectPublicKeyInfo: SEQUENCE { SEQUENCE {
/// id-ecPublicKey, prime256v1 }, BIT STRING (0 unused bits) }. The 65-byte
/// uncompressed point follows.
const SPKI_P256_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
/// Upper bound on a key file we are willing to read.
const MAX_KEY_FILE: u64 = 64 * 1024;

/// An agent's private signing key.
pub struct SigningKey {
    pair: EcdsaKeyPair,
    rng: SystemRandom,
    public: PublicKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print private material.
        write!(f, "SigningKey(key_id={})", self.public.key_id())
    }
}

impl SigningKey {
    /// Generates a new key and writes it to `path` (mode 0600, `create_new`:
    /// an existing file is never overwritten). The file and its directory are
    /// fsynced before this returns.
    pub fn generate(path: &Path) -> Result<SigningKey> {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .map_err(|_| Error::KeyInvalid("the system random generator failed".into()))?;
        let pem = pem_encode("PRIVATE KEY", doc.as_ref());
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut file = opts.open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Error::KeyExists(path.to_path_buf())
            } else {
                Error::io(format!("cannot create key file {}", path.display()), e)
            }
        })?;
        file.write_all(pem.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| Error::io(format!("cannot write key file {}", path.display()), e))?;
        crate::fsutil::fsync_parent(path)?;
        Self::from_pkcs8(doc.as_ref())
    }

    /// Loads a key written by [`SigningKey::generate`] (or any PKCS#8 P-256 key
    /// `ring` accepts). Refuses a file readable by group or others.
    pub fn load(path: &Path) -> Result<SigningKey> {
        let meta = fs::metadata(path)
            .map_err(|e| Error::io(format!("cannot read key file {}", path.display()), e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(Error::KeyPermissions {
                    path: PathBuf::from(path),
                    mode,
                });
            }
        }
        if meta.len() > MAX_KEY_FILE {
            return Err(Error::KeyInvalid(format!(
                "{} is {} bytes, far too large for a key",
                path.display(),
                meta.len()
            )));
        }
        let text = fs::read(path)
            .map_err(|e| Error::io(format!("cannot read key file {}", path.display()), e))?;
        let der = match std::str::from_utf8(&text) {
            Ok(s) if s.contains("-----BEGIN") => {
                pem_decode("PRIVATE KEY", s).map_err(Error::KeyInvalid)?
            }
            _ => text,
        };
        Self::from_pkcs8(&der)
    }

    /// Builds a key from PKCS#8 DER bytes.
    pub fn from_pkcs8(der: &[u8]) -> Result<SigningKey> {
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, der, &rng)
            .map_err(|e| Error::KeyInvalid(format!("not a P-256 PKCS#8 key ({e})")))?;
        let public = PublicKey::from_point(pair.public_key().as_ref())?;
        Ok(SigningKey { pair, rng, public })
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        self.public.clone()
    }

    /// Shorthand for `public_key().key_id()`.
    pub fn key_id(&self) -> Sha256Digest {
        self.public.key_id()
    }

    /// Signs `message`, returning an ASN.1 DER ECDSA signature. Callers sign
    /// domain-separated messages (see `record::Record::DOMAIN`), never raw data.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        let sig = self
            .pair
            .sign(&self.rng, message)
            .map_err(|_| Error::KeyInvalid("signing failed".into()))?;
        Ok(sig.as_ref().to_vec())
    }
}

/// A P-256 public key (the uncompressed point, validated when parsed).
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    point: [u8; 65],
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey(key_id={})", self.key_id())
    }
}

impl PublicKey {
    fn from_point(point: &[u8]) -> Result<PublicKey> {
        let point: [u8; 65] = point.try_into().map_err(|_| {
            Error::PublicKeyInvalid(format!("point is {} bytes, expected 65", point.len()))
        })?;
        if point[0] != 0x04 {
            return Err(Error::PublicKeyInvalid(
                "point is not in uncompressed form (first byte is not 0x04)".into(),
            ));
        }
        Ok(PublicKey { point })
    }

    /// Parses the 91-byte SPKI DER of a P-256 key (strict: exact length and prefix).
    pub fn from_spki_der(der: &[u8]) -> Result<PublicKey> {
        if der.len() != SPKI_P256_PREFIX.len() + 65 {
            return Err(Error::PublicKeyInvalid(format!(
                "SPKI is {} bytes; a P-256 key is exactly 91",
                der.len()
            )));
        }
        let (prefix, point) = der.split_at(SPKI_P256_PREFIX.len());
        if prefix != SPKI_P256_PREFIX {
            return Err(Error::PublicKeyInvalid(
                "SPKI does not name id-ecPublicKey on prime256v1".into(),
            ));
        }
        Self::from_point(point)
    }

    /// The SPKI DER encoding (26-byte prefix + 65-byte point).
    pub fn to_spki_der(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(91);
        out.extend_from_slice(&SPKI_P256_PREFIX);
        out.extend_from_slice(&self.point);
        out
    }

    /// Parses a `-----BEGIN PUBLIC KEY-----` PEM block.
    pub fn from_pem(pem: &str) -> Result<PublicKey> {
        let der = pem_decode("PUBLIC KEY", pem).map_err(Error::PublicKeyInvalid)?;
        Self::from_spki_der(&der)
    }

    /// SPKI PEM, as written to `pubkey.pem`.
    pub fn to_pem(&self) -> String {
        pem_encode("PUBLIC KEY", &self.to_spki_der())
    }

    /// SHA-256 of the SPKI DER; names the key in manifests and bundles.
    pub fn key_id(&self) -> Sha256Digest {
        Sha256Digest::of(&self.to_spki_der())
    }

    /// Checks an ASN.1 DER ECDSA P-256/SHA-256 signature over `message`.
    pub fn verify(&self, message: &[u8], signature_der: &[u8]) -> bool {
        UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, &self.point)
            .verify(message, signature_der)
            .is_ok()
    }
}

/// Encodes `der` as a PEM block with 64-character lines.
fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = B64.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Decodes the single PEM block labelled `label`; text around it is ignored.
fn pem_decode(label: &str, text: &str) -> std::result::Result<Vec<u8>, String> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text
        .find(&begin)
        .ok_or_else(|| format!("no `{begin}` line found"))?
        + begin.len();
    let rest = text.get(start..).unwrap_or_default();
    let stop = rest
        .find(&end)
        .ok_or_else(|| format!("no `{end}` line found"))?;
    let body: String = rest
        .get(..stop)
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    if rest
        .get(stop + end.len()..)
        .unwrap_or_default()
        .contains("-----BEGIN")
    {
        return Err("more than one PEM block; give one key per file".into());
    }
    B64.decode(body.as_bytes())
        .map_err(|e| format!("PEM body is not valid base64 ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_load_sign_verify() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.key");
        let key = SigningKey::generate(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let loaded = SigningKey::load(&path).unwrap();
        assert_eq!(loaded.key_id(), key.key_id());
        let sig = loaded.sign(b"hello").unwrap();
        let pk = PublicKey::from_pem(&key.public_key().to_pem()).unwrap();
        assert!(pk.verify(b"hello", &sig));
        assert!(!pk.verify(b"hellO", &sig));
        assert_eq!(pk.to_spki_der().len(), 91);
    }

    #[test]
    fn refuses_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.key");
        SigningKey::generate(&path).unwrap();
        let before = fs::read(&path).unwrap();
        assert!(matches!(
            SigningKey::generate(&path),
            Err(Error::KeyExists(_))
        ));
        assert_eq!(fs::read(&path).unwrap(), before);
    }

    #[cfg(unix)]
    #[test]
    fn refuses_world_readable_key() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.key");
        SigningKey::generate(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = SigningKey::load(&path).unwrap_err();
        assert!(
            matches!(err, Error::KeyPermissions { mode: 0o644, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("chmod 600"));
    }

    #[test]
    fn rejects_bad_spki() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::generate(&dir.path().join("k")).unwrap();
        let mut der = key.public_key().to_spki_der();
        der[5] ^= 1;
        assert!(PublicKey::from_spki_der(&der).is_err());
        assert!(PublicKey::from_spki_der(&der[..90]).is_err());
        assert!(PublicKey::from_pem("garbage").is_err());
    }
}
