//! The canonical JSON encoding every signed record uses.
//!
//! Rules (see docs/evidence.md, "Canonical encoding"):
//! - UTF-8, no whitespace outside strings, no trailing newline;
//! - object keys sorted by their UTF-8 bytes, each key once;
//! - numbers are integers only (`-?[1-9][0-9]*|0`, within i64/u64), no floats;
//! - strings escape `"` and `\` with a backslash, U+0008/09/0A/0C/0D as
//!   `\b \t \n \f \r`, other U+0000..U+001F as `\u00xx` (lowercase hex);
//!   everything else, including `/`, DEL and non-ASCII, is written as is.
//!
//! These are the string and key rules of RFC 8785 (JCS) restricted to
//! integers; for the ASCII keys used here the key orders agree.

use serde_json::Value;

/// Encodes `value` canonically; fails on floats.
pub fn encode(value: &Value) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(1024);
    write(value, &mut out)?;
    Ok(out)
}

fn write(value: &Value, out: &mut Vec<u8>) -> Result<(), String> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                out.extend_from_slice(u.to_string().as_bytes());
            } else if let Some(i) = n.as_i64() {
                out.extend_from_slice(i.to_string().as_bytes());
            } else {
                return Err(format!(
                    "number {n} is not an integer; the canonical form has integers only"
                ));
            }
        }
        Value::String(s) => write_str(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            // Sort explicitly: serde_json's map order depends on crate features.
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(k, out);
                out.push(b':');
                write(v, out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn write_str(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for &b in s.as_bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x09 => out.extend_from_slice(b"\\t"),
            0x0a => out.extend_from_slice(b"\\n"),
            0x0c => out.extend_from_slice(b"\\f"),
            0x0d => out.extend_from_slice(b"\\r"),
            0x00..=0x1f => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sorts_keys_and_escapes_deterministically() {
        let v = json!({"b": 1, "a": [true, null, -3], "c": "q\"\\\n\u{1}é/"});
        let out = encode(&v).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"a":[true,null,-3],"b":1,"c":"q\"\\\n\u0001é/"}"#
        );
    }

    #[test]
    fn rejects_floats() {
        assert!(encode(&json!({"x": 1.5})).is_err());
        assert!(encode(&json!(u64::MAX)).is_ok());
    }
}
