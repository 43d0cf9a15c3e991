//! Framing of clip transfer messages on the fixed clip topics (docs/mqtt.md).
//!
//! The agent publishes every chunk of every clip on one topic per agent,
//! `vigil/v1/{agent}/clips/chunk`, so the broker sees a bounded set of topics (the
//! embedded broker keeps an entry for every topic ever published). Which clip and
//! which chunk a message carries is therefore in its payload: one ASCII header line,
//! `{clip_id} {n}\n` (the clip id as a lowercase hyphenated UUID, `n` the 0-based chunk
//! number in decimal), then the chunk's bytes.

use uuid::Uuid;

/// The longest header [`split_chunk`] looks for: 36 (UUID) + 1 + 10 digits + 1.
pub const MAX_CHUNK_HEADER: usize = 48;

/// The header line for chunk `n` of the clip `clip_id` (lowercase hyphenated UUID).
pub fn chunk_header(clip_id: &str, n: u64) -> String {
    format!("{clip_id} {n}\n")
}

/// Splits a chunk message into its clip id, chunk number and bytes; the error is a
/// sentence saying what is wrong with the header.
pub fn split_chunk(payload: &[u8]) -> Result<(Uuid, u64, &[u8]), String> {
    let head = &payload[..payload.len().min(MAX_CHUNK_HEADER)];
    let Some(end) = head.iter().position(|&b| b == b'\n') else {
        return Err(format!(
            "chunk message does not start with a \"{{clip_id}} {{n}}\\n\" header line within {MAX_CHUNK_HEADER} bytes"
        ));
    };
    let line = std::str::from_utf8(&head[..end])
        .map_err(|_| "chunk header line is not ASCII".to_string())?;
    let Some((clip, n)) = line.split_once(' ') else {
        return Err(format!(
            "chunk header {line:?} is not \"{{clip_id}} {{n}}\""
        ));
    };
    let clip = parse_clip_id(clip)?;
    let n = parse_chunk_number(n)?;
    Ok((clip, n, &payload[end + 1..]))
}

/// Parses a clip id; only the canonical lowercase hyphenated spelling is accepted.
pub fn parse_clip_id(s: &str) -> Result<Uuid, String> {
    match Uuid::parse_str(s) {
        Ok(u) if u.hyphenated().to_string() == s => Ok(u),
        _ => Err(format!(
            "clip id {:?} is not a lowercase hyphenated UUID",
            first_80(s)
        )),
    }
}

/// Parses a chunk number: 1-10 decimal digits.
pub fn parse_chunk_number(s: &str) -> Result<u64, String> {
    let digits = !s.is_empty() && s.len() <= 10 && s.bytes().all(|b| b.is_ascii_digit());
    match s.parse::<u64>() {
        Ok(n) if digits => Ok(n),
        _ => Err(format!(
            "chunk number {:?} is not a decimal integer",
            first_80(s)
        )),
    }
}

/// Outbox kinds spooled one message per file, whose messages carry their outbox entry
/// (`"entry": "{kind}/{file name}"`) for the hub's end-to-end ack (docs/mqtt.md).
pub const ENTRY_KINDS: [&str; 3] = ["events", "records", "drops"];

/// Longest entry name.
pub const MAX_ENTRY: usize = 200;

/// Splits an entry name into (kind, file name): at most [`MAX_ENTRY`] bytes, the kind
/// one of [`ENTRY_KINDS`], the file name one path segment of `[A-Za-z0-9._-]` that is
/// not hidden. The one rule for the agent (which maps acks to its files) and the hub
/// (which refuses other names); `None` for anything else.
pub fn parse_entry(entry: &str) -> Option<(&str, &str)> {
    let (kind, name) = entry.split_once('/')?;
    let plain = entry.len() <= MAX_ENTRY
        && !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    (ENTRY_KINDS.contains(&kind) && plain).then_some((kind, name))
}

/// The first 80 characters of untrusted text, for error messages.
fn first_80(s: &str) -> String {
    s.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names_are_a_kind_and_one_plain_file_name() {
        assert_eq!(
            parse_entry("events/1-cam1-e1-start.json"),
            Some(("events", "1-cam1-e1-start.json"))
        );
        assert_eq!(parse_entry("records/x"), Some(("records", "x")));
        let long = format!("drops/{}", "a".repeat(MAX_ENTRY - 6));
        assert!(parse_entry(&long).is_some());
        for bad in [
            "clips/x.json",
            "events/../../etc/passwd",
            "events/a/b.json",
            "events/.1.json.tmp",
            "events/",
            "events",
            "events/a b.json",
            "",
            &format!("{long}a"),
        ] {
            assert_eq!(parse_entry(bad), None, "{bad}");
        }
    }

    #[test]
    fn header_round_trips_and_keeps_the_bytes() {
        let clip = Uuid::now_v7();
        let mut msg = chunk_header(&clip.to_string(), 4_294_967_295).into_bytes();
        assert!(msg.len() <= MAX_CHUNK_HEADER);
        msg.extend_from_slice(b"\n\x00 binary \xff");
        let (c, n, bytes) = split_chunk(&msg).expect("a valid header");
        assert_eq!(
            (c, n, bytes),
            (clip, 4_294_967_295, &b"\n\x00 binary \xff"[..])
        );
        let empty = chunk_header(&clip.to_string(), 0).into_bytes();
        assert_eq!(split_chunk(&empty).expect("valid").2, b"");
    }

    #[test]
    fn bad_headers_say_what_is_wrong() {
        let clip = Uuid::now_v7();
        let upper = clip.hyphenated().to_string().to_uppercase();
        for (payload, needle) in [
            (b"raw chunk bytes without a header".to_vec(), "header line"),
            (format!("{clip}\n").into_bytes(), "is not \"{clip_id} {n}\""),
            (format!("{upper} 1\n").into_bytes(), "lowercase hyphenated"),
            (format!("{clip} -1\n").into_bytes(), "not a decimal integer"),
            (
                format!("{clip} 12a\n").into_bytes(),
                "not a decimal integer",
            ),
            (
                format!("{clip} 12345678901\n").into_bytes(),
                "within 48 bytes",
            ),
            (format!("{clip} 1 \n").into_bytes(), "not a decimal integer"),
            (b"\xff\xfe 1\n".to_vec(), "not ASCII"),
            (Vec::new(), "header line"),
        ] {
            let err = split_chunk(&payload).expect_err("must be refused");
            assert!(err.contains(needle), "{err:?} should contain {needle:?}");
        }
    }
}
