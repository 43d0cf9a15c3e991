//! The event machine: turns tracks into calm start / update / end messages.
//!
//! Rules (all times are stream pts, so replays are deterministic):
//! 1. A track starts an event once seen in `confirm_hits` of the last
//!    `confirm_window` analysed frames, and (if configured) inside a required zone.
//! 2. An update is sent when the object's score beats the best by
//!    `update_min_gain`, at most every `update_min_interval_seconds`.
//! 3. The event ends when its track expires (unseen for `post_roll_seconds`);
//!    `end` is the last time the object was seen.
//! 4. An object still for `max_stationary_seconds` ends its event and cannot
//!    start another until it moves.
//! 5. An event longer than `max_clip_seconds` ends and a linked one starts.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::config::EventConfig;
use super::geom::BBox;
use super::snapshot::Snapshot;
use super::tracker::Track;

/// Which message of an event's life this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventPhase {
    /// Confirmed: the operator should see it now.
    Start,
    /// A better snapshot (or new zones).
    Update,
    /// Over.
    End,
}

impl EventPhase {
    /// The wire and file-name spelling: `start`, `update`, `end`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventPhase::Start => "start",
            EventPhase::Update => "update",
            EventPhase::End => "end",
        }
    }
}

/// Why an event ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// The object was unseen for the post-roll.
    Left,
    /// The object stayed still longer than `max_stationary_seconds`.
    Stationary,
    /// Split at `max_clip_seconds`; the next piece names this one in `previous_event_id`.
    Split,
    /// The stream stopped.
    StreamEnded,
}

/// One detection event as sent to the hub (MQTT topic `events`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectionEvent {
    /// UUIDv7; stable across start / update / end.
    pub id: Uuid,
    /// Camera.
    pub camera_id: String,
    /// Object label.
    pub label: String,
    /// Best score seen.
    pub top_score: f32,
    /// Box of the best-score frame, source pixels.
    pub best_box: BBox,
    /// Zones the object entered, sorted.
    pub zones: Vec<String>,
    /// UTC when the object was first seen.
    #[serde(with = "time::serde::rfc3339")]
    pub start_utc: OffsetDateTime,
    /// UTC when last seen (end messages only).
    #[serde(with = "time::serde::rfc3339::option")]
    pub end_utc: Option<OffsetDateTime>,
    /// Stream pts of the start, ms.
    pub start_pts_ms: u64,
    /// Stream pts of the end, ms (end messages only).
    pub end_pts_ms: Option<u64>,
    /// Why it ended (end messages only).
    pub end_reason: Option<EndReason>,
    /// The piece before this one when a long event was split.
    pub previous_event_id: Option<Uuid>,
    /// Clip holding the event, filled in by the clip cutter.
    pub clip_id: Option<Uuid>,
    /// Best snapshot; on start and on updates that improve it (not repeated on end).
    pub snapshot: Option<Snapshot>,
}

/// A message of the event stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventMessage {
    /// Start, update or end.
    pub phase: EventPhase,
    /// The event as of this message.
    pub event: DetectionEvent,
}

/// What the analyser hands the event machine about the current frame.
pub struct FrameContext<'a> {
    /// Stream pts.
    pub pts: Duration,
    /// UTC of this frame.
    pub wall: OffsetDateTime,
    /// Zones per live track id (bottom-centre inside), for tracks matched on this frame.
    pub zones: &'a HashMap<u64, Vec<String>>,
    /// Renders a snapshot of this frame for a box and score; `None` when it fails.
    pub snapshot: &'a mut dyn FnMut(&BBox, f32) -> Option<Snapshot>,
}

impl FrameContext<'_> {
    fn utc_at(&self, pts: Duration) -> OffsetDateTime {
        self.wall - self.pts.saturating_sub(pts)
    }
}

#[derive(Debug)]
struct OpenEvent {
    event: DetectionEvent,
    started_pts: Duration,
    last_update_pts: Duration,
    zones: BTreeSet<String>,
}

/// Per-camera event state.
#[derive(Debug)]
pub struct EventMachine {
    camera_id: String,
    config: EventConfig,
    /// Open events by track id.
    open: HashMap<u64, OpenEvent>,
    /// Tracks that ended for stillness and may not restart until they move, with the still-since they had.
    parked: HashMap<u64, Duration>,
    /// Tracks that have been inside a required zone.
    zone_ok: HashSet<u64>,
    /// End pts of a track's last stationary event: a new event for it starts no earlier.
    ended: HashMap<u64, Duration>,
    /// Events started so far (for stats).
    started: u64,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn secs(s: f32) -> Duration {
    Duration::from_secs_f32(s.max(0.0))
}

impl EventMachine {
    /// A machine for one camera.
    pub fn new(camera_id: impl Into<String>, config: EventConfig) -> Self {
        EventMachine {
            camera_id: camera_id.into(),
            config,
            open: HashMap::new(),
            parked: HashMap::new(),
            zone_ok: HashSet::new(),
            ended: HashMap::new(),
            started: 0,
        }
    }

    /// Number of open events.
    pub fn open_events(&self) -> usize {
        self.open.len()
    }

    /// Events started since creation.
    pub fn started(&self) -> u64 {
        self.started
    }

    /// Advances on a frame: `live` are the tracker's tracks, `gone` those it just dropped.
    pub fn step(
        &mut self,
        live: &[Track],
        gone: Vec<Track>,
        ctx: &mut FrameContext<'_>,
    ) -> Vec<EventMessage> {
        let mut out = Vec::new();
        for t in gone {
            self.parked.remove(&t.id);
            self.zone_ok.remove(&t.id);
            self.ended.remove(&t.id);
            if let Some(open) = self.open.remove(&t.id) {
                out.push(Self::end(open, t.last_seen, EndReason::Left, ctx));
            }
        }
        for t in live {
            let zones = ctx.zones.get(&t.id).cloned().unwrap_or_default();
            if self.config.required_zones.iter().any(|r| zones.contains(r)) {
                self.zone_ok.insert(t.id);
            }
            if let Some(still_since) = self.parked.get(&t.id) {
                if t.still_since == *still_since {
                    continue;
                }
                self.parked.remove(&t.id);
            }
            if self.open.contains_key(&t.id) {
                self.advance(t, zones, ctx, &mut out);
            } else if t.matched && self.may_start(t) {
                let start = match self.ended.remove(&t.id) {
                    Some(ended) => t.first_seen.max(ended),
                    None => t.first_seen,
                };
                let open = self.open_event(t, zones, None, start, ctx);
                out.push(EventMessage {
                    phase: EventPhase::Start,
                    event: open.event.clone(),
                });
                self.open.insert(t.id, open);
            }
        }
        out
    }

    /// Ends every open event (stream stopped).
    pub fn finish(&mut self, tracks: Vec<Track>, ctx: &mut FrameContext<'_>) -> Vec<EventMessage> {
        let mut out = Vec::new();
        for t in tracks {
            if let Some(open) = self.open.remove(&t.id) {
                out.push(Self::end(open, t.last_seen, EndReason::StreamEnded, ctx));
            }
        }
        self.parked.clear();
        self.zone_ok.clear();
        self.ended.clear();
        out
    }

    fn may_start(&self, t: &Track) -> bool {
        t.recent_hits(self.config.confirm_window) >= self.config.confirm_hits
            && (self.config.required_zones.is_empty() || self.zone_ok.contains(&t.id))
    }

    fn advance(
        &mut self,
        t: &Track,
        zones: Vec<String>,
        ctx: &mut FrameContext<'_>,
        out: &mut Vec<EventMessage>,
    ) {
        let Some(started_pts) = self.open.get(&t.id).map(|o| o.started_pts) else {
            return;
        };
        let now = ctx.pts;
        if t.matched && t.still_for(now) >= secs(self.config.max_stationary_seconds) {
            if let Some(open) = self.open.remove(&t.id) {
                out.push(Self::end(open, now, EndReason::Stationary, ctx));
            }
            self.parked.insert(t.id, t.still_since);
            self.ended.insert(t.id, now);
            return;
        }
        if now.saturating_sub(started_pts) >= secs(self.config.max_clip_seconds) {
            if let Some(old) = self.open.remove(&t.id) {
                let prev = old.event.id;
                out.push(Self::end(old, now, EndReason::Split, ctx));
                let next = self.open_event(t, zones, Some(prev), now, ctx);
                out.push(EventMessage {
                    phase: EventPhase::Start,
                    event: next.event.clone(),
                });
                self.open.insert(t.id, next);
            }
            return;
        }
        let cfg = &self.config;
        let Some(open) = self.open.get_mut(&t.id) else {
            return;
        };
        if !t.matched {
            return;
        }
        open.zones.extend(zones);
        // Zones entered since the last message; kept pending while updates are rate-limited.
        let new_zone = open.zones.len() > open.event.zones.len();
        let better = t.score >= open.event.top_score + cfg.update_min_gain;
        let due = now.saturating_sub(open.last_update_pts) >= secs(cfg.update_min_interval_seconds);
        if (better || new_zone) && due {
            open.event.zones = open.zones.iter().cloned().collect();
            if better {
                open.event.top_score = t.score;
                open.event.best_box = t.bbox;
                open.event.snapshot = (ctx.snapshot)(&t.bbox, t.score);
            } else {
                open.event.snapshot = None;
            }
            open.last_update_pts = now;
            out.push(EventMessage {
                phase: EventPhase::Update,
                event: open.event.clone(),
            });
        }
    }

    fn open_event(
        &mut self,
        t: &Track,
        zones: Vec<String>,
        previous: Option<Uuid>,
        start: Duration,
        ctx: &mut FrameContext<'_>,
    ) -> OpenEvent {
        self.started += 1;
        let zones: BTreeSet<String> = zones.into_iter().collect();
        OpenEvent {
            event: DetectionEvent {
                id: Uuid::now_v7(),
                camera_id: self.camera_id.clone(),
                label: t.label.clone(),
                top_score: t.score,
                best_box: t.bbox,
                zones: zones.iter().cloned().collect(),
                start_utc: ctx.utc_at(start),
                end_utc: None,
                start_pts_ms: ms(start),
                end_pts_ms: None,
                end_reason: None,
                previous_event_id: previous,
                clip_id: None,
                snapshot: (ctx.snapshot)(&t.bbox, t.score),
            },
            started_pts: ctx.pts,
            last_update_pts: ctx.pts,
            zones,
        }
    }

    fn end(
        open: OpenEvent,
        at: Duration,
        reason: EndReason,
        ctx: &FrameContext<'_>,
    ) -> EventMessage {
        let mut event = open.event;
        event.zones = open.zones.into_iter().collect();
        event.end_utc = Some(ctx.utc_at(at));
        event.end_pts_ms = Some(ms(at));
        event.end_reason = Some(reason);
        event.snapshot = None;
        EventMessage {
            phase: EventPhase::End,
            event,
        }
    }
}
