//! The window check of a bundle exported for a time window (`window.json`): the
//! recorded pieces cover the window, and every second they do not is named with
//! the reason the chain gives (deleted by policy, not recorded, missing).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::clip::ClipOutcome;
use super::report::{Check, Verdict};
use super::Ctx;
use crate::bundle::source::MAX_TEXT_BYTES;
use crate::chain::ChainRecord;
use crate::error::Result;
use crate::manifest::PieceStart;
use crate::record::utc_ms;

/// Name of the window file in a bundle.
pub const WINDOW_FILE: &str = "window.json";
/// `schema` value of the window file.
pub const WINDOW_SCHEMA: &str = "vigil.window.v1";
/// Two pieces whose times are this close meet: the clocks of consecutive frames.
const MEET_MS: i64 = 1000;

/// What a window bundle was exported for (unsigned: it states the question, the
/// signed pieces and chain records answer it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    /// Always [`WINDOW_SCHEMA`].
    pub schema: String,
    /// Camera.
    pub camera_id: String,
    /// Start of the window (UTC).
    #[serde(with = "utc_ms")]
    pub from: OffsetDateTime,
    /// End of the window (UTC).
    #[serde(with = "utc_ms")]
    pub to: OffsetDateTime,
}

impl Window {
    /// A window for `camera_id` from `from` to `to`.
    pub fn new(camera_id: &str, from: OffsetDateTime, to: OffsetDateTime) -> Window {
        Window {
            schema: WINDOW_SCHEMA.into(),
            camera_id: camera_id.into(),
            from,
            to,
        }
    }
}

pub(super) fn read_window(ctx: &mut Ctx) -> Result<Option<Window>> {
    let Some(bytes) = ctx.read(WINDOW_FILE, MAX_TEXT_BYTES)? else {
        return Ok(None);
    };
    match serde_json::from_slice::<Window>(&bytes) {
        Ok(w) if w.schema == WINDOW_SCHEMA && w.to > w.from => Ok(Some(w)),
        Ok(_) => {
            ctx.push(Check::fail(
                "window.file",
                WINDOW_FILE,
                Verdict::NotOk,
                format!(
                    "{WINDOW_FILE} must have schema {WINDOW_SCHEMA} and a `to` after its `from`."
                ),
            ));
            Ok(None)
        }
        Err(e) => {
            ctx.push(Check::fail(
                "window.file",
                WINDOW_FILE,
                Verdict::NotOk,
                format!("{WINDOW_FILE} does not parse: {e}."),
            ));
            Ok(None)
        }
    }
}

fn ms(t: OffsetDateTime) -> i64 {
    utc_ms::unix_ms(&t)
}

pub(super) fn verify_window(
    ctx: &mut Ctx,
    w: &Window,
    clips: &[ClipOutcome],
    records: &[ChainRecord],
) {
    let subject = format!(
        "window {} {}..{}",
        w.camera_id,
        utc_ms::format(&w.from),
        utc_ms::format(&w.to)
    );
    // Intact pieces of the camera, by start.
    let mut pieces: Vec<(i64, i64, u64, PieceStart)> = clips
        .iter()
        .filter(|c| c.file_ok)
        .filter_map(|c| c.manifest.as_ref())
        .map(|m| m.record())
        .filter(|m| m.camera_id == w.camera_id)
        .filter_map(|m| {
            m.piece
                .map(|p| (ms(m.start), ms(m.end), m.seq, p.start_reason))
        })
        .collect();
    pieces.sort_by_key(|p| p.0);
    let (from, to) = (ms(w.from), ms(w.to));
    let mut gaps: Vec<(i64, i64, String)> = Vec::new();
    let mut covered_to = from;
    for &(start, end, _, reason) in &pieces {
        if end <= covered_to || start >= to {
            continue;
        }
        if start > covered_to + MEET_MS {
            gaps.push((covered_to, start, before_piece(reason)));
        }
        covered_to = covered_to.max(end);
    }
    if covered_to + MEET_MS < to {
        gaps.push((covered_to, to, "no piece after it is in the bundle".into()));
    }
    let used: Vec<u64> = pieces
        .iter()
        .filter(|p| p.1 > from && p.0 < to)
        .map(|p| p.2)
        .collect();
    if gaps.is_empty() {
        ctx.push(Check::pass(
            "window.coverage",
            &subject,
            format!(
                "The window is covered without a gap by {} intact recorded piece(s){}.",
                used.len(),
                match (used.iter().min(), used.iter().max()) {
                    (Some(a), Some(b)) => format!(" (seq {a}..{b})"),
                    _ => String::new(),
                }
            ),
        ));
        return;
    }
    for (a, b, default_why) in gaps {
        let why = explain(records, &w.camera_id, a, b).unwrap_or(default_why);
        ctx.push(Check::missing(
            "window.coverage",
            &subject,
            format!(
                "{:.1} s of the window are not in the bundle ({} to {}): {why}.",
                (b - a) as f64 / 1000.0,
                utc_ms::format_unix_ms(a),
                utc_ms::format_unix_ms(b)
            ),
        ));
    }
}

/// The chain's reason for a gap: a deletion record naming a piece in it, or a
/// piece manifest in the slice whose video is not in the bundle.
fn explain(records: &[ChainRecord], camera: &str, a: i64, b: i64) -> Option<String> {
    for r in records.iter().filter(|r| r.camera_id() == camera) {
        if let Some(d) = r.deletion() {
            if d.pieces.iter().any(|p| ms(p.start) < b && ms(p.end) > a) {
                return Some(format!(
                    "deleted on the box by policy {} at {} (signed deletion record, seq {}: {})",
                    d.reason.as_str(),
                    utc_ms::format(&d.time),
                    d.seq,
                    d.detail
                ));
            }
        }
    }
    let absent: Vec<String> = records
        .iter()
        .filter(|r| r.camera_id() == camera)
        .filter_map(ChainRecord::manifest)
        .filter(|m| m.is_piece() && ms(m.start) < b && ms(m.end) > a)
        .map(|m| format!("seq {} ({})", m.seq, m.clip_id))
        .collect();
    if absent.is_empty() {
        return None;
    }
    Some(format!(
        "the recorded piece(s) {} are in the chain, but their video is not in the bundle or is not intact",
        absent.join(", ")
    ))
}

fn before_piece(reason: PieceStart) -> String {
    match reason {
        PieceStart::AgentStart => {
            "not recorded: the agent was not running (the next piece is the first after an agent start)".into()
        }
        PieceStart::StreamRestart => {
            "not recorded: the camera's stream was lost (the next piece starts after a reconnect)".into()
        }
        PieceStart::Continues => {
            "unexplained: the next piece says it continues the stream, and no deletion record covers the gap".into()
        }
    }
}
