//! The verification report: verdict, checks and their stable JSON schema.

use serde::Serialize;

/// Schema id written into every JSON report.
pub const REPORT_SCHEMA: &str = "vigil.verify.report.v1";

/// Overall verdict, ordered from best to worst; the report's verdict is the
/// worst `impact` of its checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Verdict {
    /// Everything verifies under trusted keys and nothing is missing.
    Ok,
    /// What is present verifies, but the chain proves something is missing.
    OkWithMissing,
    /// Signatures verify, but under a key not given with `--trust`.
    KeyUntrusted,
    /// A clip has no manifest or signature at all.
    NotSigned,
    /// Something was altered, forged, malformed or contradicts the chain.
    NotOk,
}

impl Verdict {
    /// The spelling used in output: `OK`, `OK_WITH_MISSING`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "OK",
            Verdict::OkWithMissing => "OK_WITH_MISSING",
            Verdict::KeyUntrusted => "KEY_UNTRUSTED",
            Verdict::NotSigned => "NOT_SIGNED",
            Verdict::NotOk => "NOT_OK",
        }
    }

    /// `vigil-verify` exit code: 0 OK, 3 OK_WITH_MISSING, 1 otherwise.
    pub fn exit_code(self) -> i32 {
        match self {
            Verdict::Ok => 0,
            Verdict::OkWithMissing => 3,
            _ => 1,
        }
    }
}

/// Outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    /// The check passed.
    Pass,
    /// The check failed; `impact` says how bad.
    Fail,
    /// The chain proves something is absent (impact OK_WITH_MISSING).
    Missing,
    /// Worth knowing, does not change the verdict.
    Warn,
}

/// One check with its result and the coordinates of what it is about.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Stable check id, e.g. `clip.file_sha256`, `chain.link`.
    pub id: String,
    /// What was checked: a path in the bundle or `camera <id> segment <uuid>`.
    pub subject: String,
    /// PASS, FAIL, MISSING or WARN.
    pub status: Status,
    /// The verdict this check alone would give.
    pub impact: Verdict,
    /// A sentence saying what was found.
    pub message: String,
    /// GOP index (manifest numbering) the check is about, if any.
    pub gop: Option<u32>,
    /// Chain seq the check is about, if any.
    pub seq: Option<u64>,
    /// Manifest field the check is about, if any.
    pub field: Option<String>,
}

impl Check {
    fn new(id: &str, subject: &str, status: Status, impact: Verdict, message: String) -> Check {
        Check {
            id: id.to_string(),
            subject: subject.to_string(),
            status,
            impact,
            message,
            gop: None,
            seq: None,
            field: None,
        }
    }

    /// A passing check.
    pub fn pass(id: &str, subject: &str, message: impl Into<String>) -> Check {
        Self::new(id, subject, Status::Pass, Verdict::Ok, message.into())
    }

    /// A failing check with the given impact.
    pub fn fail(id: &str, subject: &str, impact: Verdict, message: impl Into<String>) -> Check {
        Self::new(id, subject, Status::Fail, impact, message.into())
    }

    /// A provable gap.
    pub fn missing(id: &str, subject: &str, message: impl Into<String>) -> Check {
        Self::new(
            id,
            subject,
            Status::Missing,
            Verdict::OkWithMissing,
            message.into(),
        )
    }

    /// A warning.
    pub fn warn(id: &str, subject: &str, message: impl Into<String>) -> Check {
        Self::new(id, subject, Status::Warn, Verdict::Ok, message.into())
    }

    /// Sets the GOP index.
    pub fn gop(mut self, gop: u32) -> Check {
        self.gop = Some(gop);
        self
    }

    /// Sets the seq.
    pub fn seq(mut self, seq: u64) -> Check {
        self.seq = Some(seq);
        self
    }

    /// Sets the field name.
    pub fn field(mut self, field: &str) -> Check {
        self.field = Some(field.to_string());
        self
    }
}

/// What kind of input was verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InputKind {
    /// A single clip directory.
    ClipDir,
    /// A bundle directory.
    BundleDir,
    /// A bundle zip.
    BundleZip,
}

/// One clip whose manifest signature verified.
#[derive(Debug, Clone, Serialize)]
pub struct ClipSummary {
    /// Directory of the clip inside the input ("" for a clip directory).
    pub path: String,
    /// Clip id.
    pub clip_id: String,
    /// Camera id.
    pub camera_id: String,
    /// Segment id.
    pub segment_id: String,
    /// Seq in the segment.
    pub seq: u64,
    /// Start time (UTC).
    pub start: String,
    /// End time (UTC).
    pub end: String,
    /// Signing key id.
    pub key_id: String,
    /// Whether the clip's own checks (signature, file, GOPs) all passed.
    pub intact: bool,
}

/// The full result of verifying a path.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Always [`REPORT_SCHEMA`].
    pub schema: &'static str,
    /// The path verified, as given.
    pub path: String,
    /// Clip directory or bundle.
    pub kind: InputKind,
    /// The overall verdict.
    pub verdict: Verdict,
    /// Key ids passed with `--trust`.
    pub trusted_keys: Vec<String>,
    /// Every check in the order performed.
    pub checks: Vec<Check>,
    /// Clips found with a verifying manifest signature.
    pub clips: Vec<ClipSummary>,
}

impl Report {
    /// The failing (non-PASS, non-WARN) checks.
    pub fn problems(&self) -> impl Iterator<Item = &Check> {
        self.checks
            .iter()
            .filter(|c| matches!(c.status, Status::Fail | Status::Missing))
    }

    /// True if any check's message contains `needle` (handy in tests).
    pub fn mentions(&self, needle: &str) -> bool {
        self.checks.iter().any(|c| c.message.contains(needle))
    }

    /// Human-readable rendering: one line per check, verdict last.
    pub fn to_human(&self) -> String {
        let mut out = format!("vigil-verify: {} ({:?})\n", self.path, self.kind);
        for c in &self.checks {
            let status = match c.status {
                Status::Pass => "PASS",
                Status::Fail => "FAIL",
                Status::Missing => "MISSING",
                Status::Warn => "WARN",
            };
            out.push_str(&format!(
                "  {status:<7} {:<22} {:<28} {}\n",
                c.id, c.subject, c.message
            ));
        }
        let count = |s: Status| self.checks.iter().filter(|c| c.status == s).count();
        out.push_str(&format!(
            "{} passed, {} failed, {} missing, {} warnings\nverdict: {}\n",
            count(Status::Pass),
            count(Status::Fail),
            count(Status::Missing),
            count(Status::Warn),
            self.verdict.as_str()
        ));
        out.push_str(match self.verdict {
            Verdict::Ok => "All signatures verify under trusted keys, every file and GOP matches, and the chain is complete.\n",
            Verdict::OkWithMissing => "What is present is intact, but the chain proves that records or clips are missing (see MISSING).\n",
            Verdict::KeyUntrusted => "Signatures verify, but under a key that was not given with --trust; obtain the agent's public key independently and pass --trust.\n",
            Verdict::NotSigned => "At least one clip carries no manifest or signature.\n",
            Verdict::NotOk => "Evidence was altered, forged, damaged or contradicts its chain (see FAIL).\n",
        });
        out
    }
}
