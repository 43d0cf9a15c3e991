//! Capture: every access unit of a recorded camera goes into the current piece's
//! journal as it arrives (on the camera's streaming thread, one `write` each), and a
//! piece is handed to the sealer when a key frame arrives after `piece_seconds`, when
//! the stream restarts, or at shutdown.

use std::fs::File;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gstreamer as gst;
use uuid::Uuid;
use vigil_evidence::manifest::PieceStart;

use super::journal::{JournalHeader, JournalWriter};
use crate::ingest::camera::CameraStats;
use crate::ingest::ring::AccessUnit;

/// A wall-clock gap this long between two units means the stream was lost.
const STREAM_GAP: Duration = Duration::from_secs(5);

/// A finished piece, ready to be sealed by the run loop.
pub struct PieceDone {
    /// Camera.
    pub camera_id: String,
    /// Piece id (becomes the clip id).
    pub piece_id: Uuid,
    /// Units in decode order, the first a key frame (shared with the ring, not copied).
    pub units: Vec<AccessUnit>,
    /// Stream caps.
    pub caps: gst::Caps,
    /// What came before the piece.
    pub start_reason: PieceStart,
    /// Rebuilt from a journal at startup.
    pub recovered: bool,
}

struct Current {
    piece_id: Uuid,
    units: Vec<AccessUnit>,
    caps: gst::Caps,
    start_reason: PieceStart,
    journal: Option<JournalWriter>,
    sync: Option<Arc<File>>,
}

struct State {
    current: Option<Current>,
    /// Reason the next piece starts (agent start until the first piece).
    next_reason: PieceStart,
    last_pts: Option<gst::ClockTime>,
    last_wall: Option<time::OffsetDateTime>,
    journal_failing: bool,
}

/// One camera's capture into pieces.
pub struct Recorder {
    camera_id: String,
    journal_dir: std::path::PathBuf,
    piece: Duration,
    camera: Arc<CameraStats>,
    done: Sender<PieceDone>,
    state: Mutex<State>,
}

impl Recorder {
    /// A recorder writing journals under `journal_dir` and handing pieces to `done`.
    pub fn new(
        camera_id: &str,
        journal_dir: std::path::PathBuf,
        piece: Duration,
        camera: Arc<CameraStats>,
        done: Sender<PieceDone>,
    ) -> Recorder {
        Recorder {
            camera_id: camera_id.to_string(),
            journal_dir,
            piece,
            camera,
            done,
            state: Mutex::new(State {
                current: None,
                next_reason: PieceStart::AgentStart,
                last_pts: None,
                last_wall: None,
                journal_failing: false,
            }),
        }
    }

    /// Takes one access unit (decode order).
    pub fn push(&self, u: &AccessUnit) {
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        // A stream restart (new pipeline: time starts again) or a long silence ends the piece.
        let restarted = match (s.last_pts, u.time()) {
            (Some(last), Some(now)) => now + gst::ClockTime::from_seconds(1) < last,
            _ => false,
        } || s.last_wall.is_some_and(|w| {
            (u.wall - w) > time::Duration::try_from(STREAM_GAP).unwrap_or_default()
        });
        if restarted && s.current.is_some() {
            self.finish_locked(&mut s);
            s.next_reason = PieceStart::StreamRestart;
        }
        s.last_pts = u.time();
        s.last_wall = Some(u.wall);
        let long_enough = s.current.as_ref().is_some_and(|c| {
            let first = c.units.first().and_then(AccessUnit::time);
            matches!((first, u.time()), (Some(a), Some(b)) if b.saturating_sub(a).nseconds() as u128 >= self.piece.as_nanos())
        });
        if u.keyframe && long_enough {
            self.finish_locked(&mut s);
            s.next_reason = PieceStart::Continues;
        }
        if s.current.is_none() {
            if !u.keyframe {
                return;
            }
            let Some(caps) = self.camera.caps.lock().ok().and_then(|c| c.clone()) else {
                return;
            };
            let start_reason = s.next_reason;
            let piece_id = Uuid::now_v7();
            let journal = self.open_journal(&mut s, piece_id, &caps, start_reason);
            let sync = journal
                .as_ref()
                .and_then(|j| j.sync_handle().ok())
                .map(Arc::new);
            s.current = Some(Current {
                piece_id,
                units: Vec::new(),
                caps,
                start_reason,
                journal,
                sync,
            });
        }
        let failing = s.journal_failing;
        let Some(c) = s.current.as_mut() else {
            return;
        };
        let failed = c.journal.as_mut().and_then(|j| {
            match u.buffer.map_readable() {
                Ok(b) => j.append(
                    b.as_slice(),
                    u.pts.map(gst::ClockTime::nseconds),
                    u.dts.map(gst::ClockTime::nseconds),
                    u.keyframe,
                    u.wall.unix_timestamp_nanos() as i64,
                ),
                Err(_) => Err(std::io::Error::other("buffer not readable")),
            }
            .err()
        });
        c.units.push(u.clone());
        if let Some(e) = failed {
            // The piece stays in memory and is still sealed; only crash protection is lost.
            c.journal = None;
            c.sync = None;
            if !failing {
                tracing::error!(camera = %self.camera_id, error = %e, "Cannot write the capture journal; this piece is kept in memory only until it is sealed (a crash now would lose it)");
            }
            s.journal_failing = true;
        }
    }

    fn open_journal(
        &self,
        s: &mut State,
        piece_id: Uuid,
        caps: &gst::Caps,
        start_reason: PieceStart,
    ) -> Option<JournalWriter> {
        let header = JournalHeader {
            camera_id: self.camera_id.clone(),
            piece_id,
            caps: caps.to_string(),
            start_reason,
        };
        let path = self.journal_dir.join(format!("{piece_id}.vjl"));
        let r = std::fs::create_dir_all(&self.journal_dir)
            .and_then(|()| JournalWriter::create(&path, &header));
        match r {
            Ok(j) => {
                if s.journal_failing {
                    tracing::info!(camera = %self.camera_id, "Capture journal writable again");
                }
                s.journal_failing = false;
                Some(j)
            }
            Err(e) => {
                if !s.journal_failing {
                    tracing::error!(camera = %self.camera_id, path = %path.display(), error = %e, "Cannot create the capture journal; pieces are kept in memory only until sealed");
                }
                s.journal_failing = true;
                None
            }
        }
    }

    fn finish_locked(&self, s: &mut State) {
        if let Some(c) = s.current.take() {
            if c.units.is_empty() {
                return;
            }
            let _ = self.done.send(PieceDone {
                camera_id: self.camera_id.clone(),
                piece_id: c.piece_id,
                units: c.units,
                caps: c.caps,
                start_reason: c.start_reason,
                recovered: false,
            });
        }
    }

    /// Hands the piece in progress to the sealer (shutdown).
    pub fn finish(&self) {
        if let Ok(mut s) = self.state.lock() {
            self.finish_locked(&mut s);
        }
    }

    /// `fdatasync` of the journal being written (called by the sync thread).
    pub fn sync(&self) {
        let handle = self
            .state
            .lock()
            .ok()
            .and_then(|s| s.current.as_ref().and_then(|c| c.sync.clone()));
        if let Some(f) = handle {
            if let Err(e) = f.sync_data() {
                tracing::warn!(camera = %self.camera_id, error = %e, "Capture journal fdatasync failed");
            }
        }
    }
}
