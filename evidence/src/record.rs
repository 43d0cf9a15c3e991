//! Signed records: the machinery shared by manifests, chain resets and
//! checkpoints (canonical encoding, strict parsing, domain-separated signatures).
//!
//! Every record is a canonical JSON object carrying three envelope fields,
//! `"type"`, `"format_version": 1` and `"algorithm": "ECDSA_P256_SHA256"`, next
//! to its own fields. The signature is ASN.1 DER ECDSA P-256/SHA-256 over
//! `DOMAIN || canonical bytes`, where `DOMAIN` differs per record type, so a
//! signature can never be moved from one kind of record to another.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::canonical;
use crate::digest::Sha256Digest;
use crate::error::{Error, Result};
use crate::keys::{PublicKey, SigningKey};

/// The only format version this crate writes and reads.
pub const FORMAT_VERSION: u64 = 1;
/// The only signature algorithm this crate writes and reads.
pub const ALGORITHM: &str = "ECDSA_P256_SHA256";
/// Largest record (canonical bytes) accepted when parsing.
pub const MAX_RECORD_BYTES: usize = 16 * 1024 * 1024;
/// Largest signature file accepted when parsing.
pub const MAX_SIGNATURE_FILE: usize = 1024;

/// A record type that can be signed and chained.
pub trait Record: Serialize + DeserializeOwned + Clone {
    /// The value of the `"type"` field.
    const TYPE: &'static str;
    /// Signature domain-separation prefix, ending in a NUL byte.
    const DOMAIN: &'static [u8];
    /// Human name used in error messages.
    const WHAT: &'static str;
    /// Checks field-level invariants; returns a sentence naming the field.
    fn validate(&self) -> std::result::Result<(), String>;
    /// The key the record claims to be signed with.
    fn key_id(&self) -> Sha256Digest;
}

/// Canonical bytes of `record`, envelope fields included.
pub fn encode<R: Record>(record: &R) -> Result<Vec<u8>> {
    let mut value =
        serde_json::to_value(record).map_err(|e| Error::record(R::WHAT, e.to_string()))?;
    let Value::Object(map) = &mut value else {
        return Err(Error::record(R::WHAT, "does not serialise to an object"));
    };
    map.insert("type".into(), Value::from(R::TYPE));
    map.insert("format_version".into(), Value::from(FORMAT_VERSION));
    map.insert("algorithm".into(), Value::from(ALGORITHM));
    canonical::encode(&value).map_err(|e| Error::record(R::WHAT, e))
}

/// Parses canonical bytes strictly: known version and algorithm, the right
/// type, canonical form byte for byte, no unknown fields, valid field values.
pub fn decode<R: Record>(bytes: &[u8]) -> Result<R> {
    if bytes.len() > MAX_RECORD_BYTES {
        return Err(Error::TooLarge {
            what: format!("the {}", R::WHAT),
            limit: MAX_RECORD_BYTES as u64,
        });
    }
    let mut value: Value = serde_json::from_slice(bytes)
        .map_err(|e| Error::record(R::WHAT, format!("not valid JSON ({e})")))?;
    let Value::Object(map) = &mut value else {
        return Err(Error::record(R::WHAT, "is not a JSON object"));
    };
    match map.get("format_version") {
        Some(v) if v.as_u64() == Some(FORMAT_VERSION) => {}
        Some(v) => {
            return Err(Error::UnsupportedFormatVersion {
                what: R::WHAT,
                found: v.to_string().chars().take(40).collect(),
            })
        }
        None => return Err(Error::record(R::WHAT, "has no format_version field")),
    }
    match map.get("type").and_then(Value::as_str) {
        Some(t) if t == R::TYPE => {}
        Some(t) => {
            let t: String = t.chars().take(40).collect();
            return Err(Error::record(
                R::WHAT,
                format!("has type {t:?}, expected {:?}", R::TYPE),
            ));
        }
        None => return Err(Error::record(R::WHAT, "has no string type field")),
    }
    match map.get("algorithm") {
        Some(Value::String(a)) if a == ALGORITHM => {}
        Some(a) => {
            return Err(Error::UnsupportedAlgorithm {
                what: R::WHAT,
                found: a.to_string().chars().take(40).collect(),
            })
        }
        None => return Err(Error::record(R::WHAT, "has no algorithm field")),
    }
    if canonical::encode(&value).map_err(|e| Error::record(R::WHAT, e))? != bytes {
        return Err(Error::record(
            R::WHAT,
            "is not in canonical form (keys sorted, no whitespace, integers only); it was re-encoded or edited",
        ));
    }
    if let Value::Object(map) = &mut value {
        for k in ["type", "format_version", "algorithm"] {
            map.remove(k);
        }
    }
    let record: R =
        serde_json::from_value(value).map_err(|e| Error::record(R::WHAT, e.to_string()))?;
    // Field types with more than one spelling (UUIDs, times) must use the canonical one.
    if encode(&record)? != bytes {
        return Err(Error::record(
            R::WHAT,
            "has a field value that is not in canonical spelling",
        ));
    }
    record.validate().map_err(|e| Error::record(R::WHAT, e))?;
    Ok(record)
}

/// A record together with its exact canonical bytes and detached signature.
#[derive(Debug, Clone)]
pub struct Signed<R> {
    record: R,
    canonical: Vec<u8>,
    signature: Vec<u8>,
}

impl<R: Record> Signed<R> {
    /// Encodes and signs `record` with `key` (whose id must match `record.key_id()`).
    pub fn sign(record: &R, key: &SigningKey) -> Result<Self> {
        if record.key_id() != key.key_id() {
            return Err(Error::record(
                R::WHAT,
                format!(
                    "names key_id {} but is being signed with key {}",
                    record.key_id(),
                    key.key_id()
                ),
            ));
        }
        record.validate().map_err(|e| Error::record(R::WHAT, e))?;
        let canonical = encode(record)?;
        // Re-read so the in-memory record equals what the bytes say (e.g. times
        // truncated to milliseconds).
        let record = decode(&canonical)?;
        let signature = key.sign(&Self::message(&canonical))?;
        Ok(Signed {
            record,
            canonical,
            signature,
        })
    }

    /// Parses canonical bytes and a DER signature; does not check the signature.
    pub fn from_parts(canonical: Vec<u8>, signature: Vec<u8>) -> Result<Self> {
        let record = decode(&canonical)?;
        Ok(Signed {
            record,
            canonical,
            signature,
        })
    }

    /// Parses canonical bytes and the text of a `.sig` file (base64 of the DER signature).
    pub fn from_files(canonical: Vec<u8>, sig_file: &[u8]) -> Result<Self> {
        let signature = decode_signature_file(sig_file)?;
        Self::from_parts(canonical, signature)
    }

    /// The message that is signed: `DOMAIN || canonical`.
    pub fn message(canonical: &[u8]) -> Vec<u8> {
        let mut m = Vec::with_capacity(R::DOMAIN.len() + canonical.len());
        m.extend_from_slice(R::DOMAIN);
        m.extend_from_slice(canonical);
        m
    }

    /// Checks the signature under `key` and that `key` is the key the record names.
    pub fn verify(&self, key: &PublicKey) -> Result<()> {
        let bad = || Error::BadSignature {
            what: R::WHAT,
            key_id: key.key_id().to_hex(),
        };
        if key.key_id() != self.record.key_id() {
            return Err(bad());
        }
        if key.verify(&Self::message(&self.canonical), &self.signature) {
            Ok(())
        } else {
            Err(bad())
        }
    }

    /// The parsed record.
    pub fn record(&self) -> &R {
        &self.record
    }

    /// The exact canonical bytes (what `manifest.json` holds).
    pub fn canonical_bytes(&self) -> &[u8] {
        &self.canonical
    }

    /// The DER signature.
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }

    /// Contents of the `.sig` file: standard base64 of the DER signature and a newline.
    pub fn signature_file(&self) -> String {
        format!("{}\n", B64.encode(&self.signature))
    }

    /// SHA-256 of the canonical bytes: the hash the next record links to.
    pub fn sha256(&self) -> Sha256Digest {
        Sha256Digest::of(&self.canonical)
    }
}

/// Decodes a `.sig` file: standard padded base64, optionally followed by one newline.
pub fn decode_signature_file(text: &[u8]) -> Result<Vec<u8>> {
    if text.len() > MAX_SIGNATURE_FILE {
        return Err(Error::TooLarge {
            what: "the signature file".into(),
            limit: MAX_SIGNATURE_FILE as u64,
        });
    }
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    B64.decode(body)
        .map_err(|e| Error::record("signature", format!("is not base64 ({e})")))
}

/// Serde helpers for UTC times with millisecond precision: `2024-05-01T12:00:00.250Z`.
pub mod utc_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::macros::format_description;
    use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

    const FMT: &[time::format_description::BorrowedFormatItem<'static>] =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

    /// Formats a time (converted to UTC, truncated to ms).
    pub fn format(t: &OffsetDateTime) -> String {
        t.to_offset(UtcOffset::UTC)
            .format(FMT)
            .unwrap_or_else(|_| "invalid-time".into())
    }

    /// Milliseconds since the Unix epoch (the unit the hub's index stores times in).
    pub fn unix_ms(t: &OffsetDateTime) -> i64 {
        (t.unix_timestamp_nanos() / 1_000_000) as i64
    }

    /// Formats milliseconds since the Unix epoch like [`format`] (RFC 3339 too); a value
    /// outside the representable years is written as the number.
    pub fn format_unix_ms(ms: i64) -> String {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
            .map(|t| format(&t))
            .unwrap_or_else(|_| ms.to_string())
    }

    /// Parses the exact format `format` writes.
    pub fn parse(s: &str) -> Result<OffsetDateTime, String> {
        PrimitiveDateTime::parse(s, FMT)
            .map(|p| p.assume_utc())
            .map_err(|e| format!("{s:?} is not a UTC time like 2024-05-01T12:00:00.000Z ({e})"))
    }

    /// Serde serialiser.
    pub fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(t))
    }

    /// Serde deserialiser.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let s = String::deserialize(d)?;
        parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Checks an identifier field: 1..=128 bytes, no control characters.
pub(crate) fn check_id(field: &str, value: &str) -> std::result::Result<(), String> {
    if value.is_empty() || value.len() > 128 || value.chars().any(char::is_control) {
        return Err(format!(
            "{field} must be 1 to 128 bytes without control characters"
        ));
    }
    Ok(())
}

/// Checks that a UUID field is version 7 (time-ordered).
pub(crate) fn check_v7(field: &str, value: &uuid::Uuid) -> std::result::Result<(), String> {
    if value.get_version_num() != 7 {
        return Err(format!("{field} {value} is not a UUIDv7"));
    }
    Ok(())
}
