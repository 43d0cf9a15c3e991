//! [`ClipScheduler`]: which spans of one camera's video become clips, and when.
//!
//! Every event asks for `[start − pre_roll, end + post_roll]` (stream PTS, ms). The
//! invariants, each tested below:
//!
//! 1. Overlapping windows of one camera are one recording: no second of video is in
//!    two clips. (Cutting each event's window on its own gave a busy scene one full
//!    copy of the same video per person: 11 clips and 5× the bytes for 30 s of vtest
//!    at 1080p.) A window with no open event of the camera overlapping it is one clip
//!    listing every event in it.
//! 2. A window is cut once the ring's newest unit has passed its end (the post-roll
//!    has arrived), or at once when draining (shutdown). While an open event (started,
//!    not ended) overlaps it, what has arrived is cut anyway as a part of the recording
//!    (up to the closed events' post-roll once that is at least [`EARLY_PART_MS`] of
//!    video, or a whole `max_clip_seconds` part), and the rest follows in the next part:
//!    clips stay available seconds after their events, and a scene that never goes
//!    quiet never outgrows the pre-event ring.
//! 3. A recording of more than one clip links its parts: shared `recording_id`,
//!    indices 0, 1, ...; no part is longer than `max_clip_seconds`.
//! 4. A GOP belongs to the part where it starts: parts never share video, and the
//!    first part keeps the GOP its pre-roll starts in. An event whose start or end
//!    reaches the scheduler after a cut it overlaps (analysis lags the recording
//!    branch) only gets the video after that cut.
//! 5. A part lists the events whose windows overlap it.

use std::collections::{HashMap, VecDeque};

use uuid::Uuid;
use vigil_evidence::manifest::{EventRef, PartInfo};

use crate::detect::{EventMessage, EventPhase};

/// Shortest part cut while events are still open (unless `max_clip_seconds` is
/// shorter): a busy scene gives a clip every 10–20 s, not one per GOP as each
/// person's post-roll arrives.
const EARLY_PART_MS: u64 = 10_000;

/// One clip to cut now: GOPs of `[from_ms, to_ms)` as the flags say.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipCut {
    /// Window start, stream PTS ms.
    pub from_ms: u64,
    /// Window end (exclusive), stream PTS ms.
    pub to_ms: u64,
    /// Events whose windows overlap this clip.
    pub events: Vec<EventRef>,
    /// Set when the window was split into parts.
    pub part: Option<PartInfo>,
    /// Keep only GOPs that start at or after this: the end of the previous cut, whose
    /// clip holds every GOP that started before it (`None` before the first cut).
    pub gops_from_ms: Option<u64>,
    /// Keep only GOPs that start before `to_ms` (every part but the last).
    pub drop_gops_from_to: bool,
}

/// An event's window.
#[derive(Debug, Clone)]
struct EventWindow {
    event: EventRef,
    from_ms: u64,
    /// `None` while the event is open.
    to_ms: Option<u64>,
}

/// A window waiting for its post-roll (or for the open events that overlap it).
#[derive(Debug)]
struct Pending {
    from_ms: u64,
    to_ms: u64,
    events: Vec<EventWindow>,
    /// Set once a part was cut early: the recording and the next part's index.
    recording: Option<(Uuid, u32)>,
}

/// Per-camera clip windows (see the module invariants).
#[derive(Debug)]
pub struct ClipScheduler {
    pre_ms: u64,
    post_ms: u64,
    /// Longest clip; at least 1 ms.
    max_ms: u64,
    /// Started, not yet ended events by id (their windows are open-ended).
    open: HashMap<String, EventWindow>,
    /// Windows in time order, none overlapping the next.
    pending: VecDeque<Pending>,
    /// End of the last cut: video before it is in a clip already. An event's start or
    /// end can reach the scheduler after a cut it would have joined (analysis lags the
    /// recording branch), so later windows are clamped to start here.
    cut_until: Option<u64>,
}

impl ClipScheduler {
    /// Windows of `pre_roll` before an event to `post_roll` after it, at most `max_clip` long.
    pub fn new(pre_roll_seconds: f64, post_roll_seconds: f64, max_clip_seconds: f64) -> Self {
        let ms = |s: f64| (s.max(0.0) * 1000.0) as u64;
        ClipScheduler {
            pre_ms: ms(pre_roll_seconds),
            post_ms: ms(post_roll_seconds),
            max_ms: ms(max_clip_seconds).max(1),
            open: HashMap::new(),
            pending: VecDeque::new(),
            cut_until: None,
        }
    }

    /// Takes note of an event message (start opens a window, end closes it).
    pub fn on_event(&mut self, msg: &EventMessage) {
        let e = &msg.event;
        let id = e.id.to_string();
        let from_ms = e.start_pts_ms.saturating_sub(self.pre_ms);
        match msg.phase {
            EventPhase::Start => {
                self.open.insert(
                    id.clone(),
                    EventWindow {
                        event: EventRef {
                            id,
                            label: e.label.clone(),
                        },
                        from_ms,
                        to_ms: None,
                    },
                );
            }
            EventPhase::Update => {}
            EventPhase::End => {
                self.open.remove(&id);
                let to_ms = e.end_pts_ms.unwrap_or(e.start_pts_ms) + self.post_ms;
                let from_ms = from_ms.max(self.cut_until.unwrap_or(0));
                if to_ms <= from_ms {
                    // All of its video is in clips already cut.
                    return;
                }
                let window = EventWindow {
                    event: EventRef {
                        id,
                        label: e.label.clone(),
                    },
                    from_ms,
                    to_ms: Some(to_ms),
                };
                self.merge(Pending {
                    from_ms,
                    to_ms,
                    events: vec![window],
                    recording: None,
                });
            }
        }
    }

    /// Adds a closed window, merged with every pending window it overlaps (those are
    /// contiguous: pending windows are disjoint and in time order).
    fn merge(&mut self, mut window: Pending) {
        let mut keep = VecDeque::with_capacity(self.pending.len() + 1);
        for p in self.pending.drain(..) {
            if p.from_ms <= window.to_ms && window.from_ms <= p.to_ms {
                window = Pending {
                    // Parts already cut keep their video: the rest starts after them.
                    from_ms: match p.recording {
                        Some(_) => p.from_ms,
                        None => p.from_ms.min(window.from_ms),
                    },
                    to_ms: p.to_ms.max(window.to_ms),
                    events: p.events.into_iter().chain(window.events).collect(),
                    recording: p.recording.or(window.recording),
                };
            } else {
                keep.push_back(p);
            }
        }
        let at = keep
            .iter()
            .position(|p| p.from_ms > window.from_ms)
            .unwrap_or(keep.len());
        keep.insert(at, window);
        self.pending = keep;
    }

    /// The clips to cut now that the ring's newest unit is at `newest_ms` (every
    /// pending window when `drain`), oldest first.
    pub fn ready(&mut self, newest_ms: u64, drain: bool) -> Vec<ClipCut> {
        let mut cuts = Vec::new();
        if self.cut_until.is_some_and(|c| newest_ms < c) {
            // The stream's clock went back (camera reconnected): earlier cuts say
            // nothing about the new timeline.
            self.cut_until = None;
        }
        while let Some(p) = self.pending.front_mut() {
            let held = !drain && self.open.values().any(|o| o.from_ms <= p.to_ms);
            if held {
                // The open events' windows will merge into this one. Cut what has
                // arrived: up to the closed events' end (post-roll included), or a
                // whole `max_clip` part; the open events' video follows in the next part.
                loop {
                    let early = EARLY_PART_MS.min(self.max_ms);
                    let end = if newest_ms >= p.to_ms && p.to_ms >= p.from_ms + early {
                        p.to_ms.min(p.from_ms + self.max_ms)
                    } else if newest_ms >= p.from_ms + self.max_ms {
                        p.from_ms + self.max_ms
                    } else {
                        break;
                    };
                    let from = p.from_ms;
                    let (recording_id, index) = *p.recording.get_or_insert((Uuid::now_v7(), 0));
                    cuts.push(ClipCut {
                        from_ms: from,
                        to_ms: end,
                        events: overlapping(p.events.iter().chain(self.open.values()), from, end),
                        part: Some(PartInfo {
                            recording_id,
                            index,
                        }),
                        gops_from_ms: self.cut_until.replace(end),
                        drop_gops_from_to: true,
                    });
                    p.from_ms = end;
                    p.to_ms = p.to_ms.max(end);
                    p.recording = Some((recording_id, index + 1));
                }
                break;
            }
            if !drain && p.to_ms > newest_ms {
                break;
            }
            let Some(p) = self.pending.pop_front() else {
                break;
            };
            let spans: Vec<(u64, u64)> = (0..)
                .map(|i| p.from_ms + i * self.max_ms)
                .take_while(|s| *s < p.to_ms)
                .map(|s| (s, (s + self.max_ms).min(p.to_ms)))
                .collect();
            let (recording_id, first_index) = match p.recording {
                Some(r) => r,
                None => (Uuid::now_v7(), 0),
            };
            let split = p.recording.is_some() || spans.len() > 1;
            for (i, &(from, to)) in spans.iter().enumerate() {
                let index = first_index + i as u32;
                let gops_from_ms = self.cut_until.replace(to);
                cuts.push(ClipCut {
                    from_ms: from,
                    to_ms: to,
                    events: overlapping(p.events.iter(), from, to),
                    part: split.then_some(PartInfo {
                        recording_id,
                        index,
                    }),
                    gops_from_ms,
                    drop_gops_from_to: i + 1 < spans.len(),
                });
            }
        }
        cuts
    }
}

/// Events (in order, once each) whose windows overlap `[from, to)`; open events reach to the end.
fn overlapping<'a>(
    windows: impl Iterator<Item = &'a EventWindow>,
    from: u64,
    to: u64,
) -> Vec<EventRef> {
    let mut out: Vec<EventRef> = Vec::new();
    for w in windows {
        let overlaps = w.from_ms < to && w.to_ms.is_none_or(|end| end > from);
        if overlaps && !out.iter().any(|e| e.id == w.event.id) {
            out.push(w.event.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::geom::BBox;
    use crate::detect::DetectionEvent;

    /// Pre-roll 5 s, post-roll 3 s, clips of at most 60 s: the example config.
    fn scheduler() -> ClipScheduler {
        ClipScheduler::new(5.0, 3.0, 60.0)
    }

    fn event(n: u128, start_ms: u64) -> DetectionEvent {
        DetectionEvent {
            id: Uuid::from_u128(n),
            camera_id: "cam1".into(),
            label: "person".into(),
            top_score: 0.9,
            best_box: BBox {
                x1: 0.0,
                y1: 0.0,
                x2: 1.0,
                y2: 1.0,
            },
            zones: Vec::new(),
            start_utc: time::OffsetDateTime::UNIX_EPOCH,
            end_utc: None,
            start_pts_ms: start_ms,
            end_pts_ms: None,
            end_reason: None,
            previous_event_id: None,
            clip_id: None,
            snapshot: None,
        }
    }

    fn start(n: u128, start_ms: u64) -> EventMessage {
        EventMessage {
            phase: EventPhase::Start,
            event: event(n, start_ms),
        }
    }

    fn end(n: u128, start_ms: u64, end_ms: u64) -> EventMessage {
        let mut e = event(n, start_ms);
        e.end_pts_ms = Some(end_ms);
        EventMessage {
            phase: EventPhase::End,
            event: e,
        }
    }

    fn ids(cut: &ClipCut) -> Vec<u128> {
        cut.events
            .iter()
            .map(|e| Uuid::parse_str(&e.id).map(|u| u.as_u128()).unwrap_or(0))
            .collect()
    }

    #[test]
    fn a_lone_event_is_cut_once_its_post_roll_has_arrived() {
        let mut s = scheduler();
        s.on_event(&start(1, 10_000));
        s.on_event(&end(1, 10_000, 14_000));
        assert!(s.ready(16_999, false).is_empty(), "post-roll not there yet");
        let cuts = s.ready(17_000, false);
        assert_eq!(cuts.len(), 1);
        assert_eq!((cuts[0].from_ms, cuts[0].to_ms), (5_000, 17_000));
        assert_eq!(ids(&cuts[0]), vec![1]);
        assert_eq!(cuts[0].part, None);
        assert_eq!(cuts[0].gops_from_ms, None);
        assert!(!cuts[0].drop_gops_from_to);
        assert!(s.ready(60_000, false).is_empty(), "cut only once");
    }

    #[test]
    fn overlapping_events_share_one_recording_without_copies() {
        let mut s = scheduler();
        s.on_event(&start(1, 10_000));
        s.on_event(&start(2, 12_000));
        s.on_event(&end(1, 10_000, 14_000));
        assert!(s.ready(16_999, false).is_empty());
        // Event 1's post-roll is there; event 2 is still open: part 0 up to there.
        let cuts = s.ready(17_000, false);
        assert_eq!(cuts.len(), 1, "{cuts:?}");
        assert_eq!((cuts[0].from_ms, cuts[0].to_ms), (5_000, 17_000));
        assert_eq!(ids(&cuts[0]), vec![1, 2]);
        let recording = cuts[0].part.as_ref().map(|p| (p.recording_id, p.index));
        assert_eq!(recording.map(|r| r.1), Some(0));
        assert_eq!(cuts[0].gops_from_ms, None);
        assert!(cuts[0].drop_gops_from_to);
        assert!(s.ready(30_000, false).is_empty(), "event 2 still open");
        s.on_event(&end(2, 12_000, 31_000));
        assert!(s.ready(33_999, false).is_empty());
        let cuts = s.ready(34_000, false);
        assert_eq!(cuts.len(), 1, "{cuts:?}");
        // The next part starts where part 0 ended, not at event 2's pre-roll (7 s).
        assert_eq!((cuts[0].from_ms, cuts[0].to_ms), (17_000, 34_000));
        assert_eq!(ids(&cuts[0]), vec![2]);
        assert_eq!(
            cuts[0].part.as_ref().map(|p| (p.recording_id, p.index)),
            recording.map(|r| (r.0, 1))
        );
        assert_eq!(cuts[0].gops_from_ms, Some(17_000));
        assert!(!cuts[0].drop_gops_from_to);
    }

    #[test]
    fn no_part_shorter_than_ten_seconds_while_events_are_open() {
        let mut s = scheduler();
        s.on_event(&start(1, 10_000));
        s.on_event(&start(2, 10_500));
        s.on_event(&start(3, 11_000));
        s.on_event(&end(1, 10_000, 11_000)); // window 5..14 s: 9 s
        assert!(
            s.ready(14_000, false).is_empty(),
            "9 s part while 2 and 3 are open"
        );
        s.on_event(&end(3, 11_000, 13_000)); // extends it to 16 s
        let cuts = s.ready(16_000, false);
        assert_eq!(cuts.len(), 1, "{cuts:?}");
        assert_eq!((cuts[0].from_ms, cuts[0].to_ms), (5_000, 16_000));
        assert_eq!(ids(&cuts[0]), vec![1, 3, 2]);
    }

    #[test]
    fn events_that_end_before_the_cut_share_one_clip() {
        let mut s = scheduler();
        s.on_event(&start(1, 10_000));
        s.on_event(&start(2, 12_000));
        s.on_event(&end(1, 10_000, 14_000));
        s.on_event(&end(2, 12_000, 15_000));
        let cuts = s.ready(18_000, false);
        assert_eq!(cuts.len(), 1, "{cuts:?}");
        assert_eq!((cuts[0].from_ms, cuts[0].to_ms), (5_000, 18_000));
        assert_eq!(ids(&cuts[0]), vec![1, 2]);
        assert_eq!(cuts[0].part, None);
    }

    #[test]
    fn an_open_event_that_starts_later_does_not_hold_an_earlier_clip() {
        let mut s = scheduler();
        s.on_event(&start(1, 10_000));
        s.on_event(&end(1, 10_000, 14_000));
        // Event 2's window starts at 20 s, after event 1's ends at 17 s.
        s.on_event(&start(2, 25_000));
        let cuts = s.ready(26_000, false);
        assert_eq!(cuts.len(), 1);
        assert_eq!(ids(&cuts[0]), vec![1]);
        s.on_event(&end(2, 25_000, 27_000));
        let cuts = s.ready(30_000, false);
        assert_eq!(cuts.len(), 1);
        assert_eq!((cuts[0].from_ms, cuts[0].to_ms), (20_000, 30_000));
        assert_eq!(ids(&cuts[0]), vec![2]);
        // The GOP event 1's clip ended in may reach past 17 s: it stays there.
        assert_eq!(cuts[0].gops_from_ms, Some(17_000));
    }

    #[test]
    fn a_scene_that_never_goes_quiet_is_cut_in_parts_as_it_arrives() {
        let mut s = scheduler();
        // Person 1 from 10 s to 14 s; person 2 keeps the scene busy for minutes.
        s.on_event(&start(1, 10_000));
        s.on_event(&start(2, 12_000));
        s.on_event(&end(1, 10_000, 14_000));
        let first = s.ready(17_000, false);
        assert_eq!(first.len(), 1);
        assert_eq!((first[0].from_ms, first[0].to_ms), (5_000, 17_000));
        let recording = first[0].part.as_ref().map(|p| p.recording_id);
        assert!(
            s.ready(76_999, false).is_empty(),
            "next part not complete yet"
        );
        let cuts = s.ready(77_000, false);
        assert_eq!(cuts.len(), 1);
        assert_eq!((cuts[0].from_ms, cuts[0].to_ms), (17_000, 77_000));
        assert_eq!(ids(&cuts[0]), vec![2], "event 1 ended before this part");
        assert_eq!(cuts[0].part.as_ref().map(|p| p.index), Some(1));
        // Event 2 ends at 150 s: the rest (77..153 s) in parts of at most 60 s.
        s.on_event(&end(2, 12_000, 150_000));
        assert!(s.ready(152_999, false).is_empty());
        let cuts = s.ready(153_000, false);
        let spans: Vec<_> = cuts.iter().map(|c| (c.from_ms, c.to_ms)).collect();
        assert_eq!(spans, vec![(77_000, 137_000), (137_000, 153_000)]);
        let parts: Vec<_> = cuts
            .iter()
            .map(|c| c.part.as_ref().map(|p| (p.recording_id, p.index)))
            .collect();
        let r = recording.unwrap_or_default();
        assert_eq!(parts, vec![Some((r, 2)), Some((r, 3))]);
        assert_eq!(cuts[0].gops_from_ms, Some(77_000));
        assert_eq!(cuts[1].gops_from_ms, Some(137_000));
        assert!(cuts[0].drop_gops_from_to && !cuts[1].drop_gops_from_to);
        assert!(s.ready(400_000, false).is_empty());
    }

    #[test]
    fn a_long_window_without_open_events_is_split_when_cut() {
        let mut s = ClipScheduler::new(5.0, 3.0, 10.0);
        s.on_event(&start(1, 10_000));
        s.on_event(&end(1, 10_000, 22_000));
        let cuts = s.ready(25_000, false);
        let spans: Vec<_> = cuts.iter().map(|c| (c.from_ms, c.to_ms)).collect();
        assert_eq!(spans, vec![(5_000, 15_000), (15_000, 25_000)]);
        let parts: Vec<_> = cuts
            .iter()
            .map(|c| c.part.as_ref().map(|p| p.index))
            .collect();
        assert_eq!(parts, vec![Some(0), Some(1)]);
        assert_eq!(
            cuts[0].part.as_ref().map(|p| p.recording_id),
            cuts[1].part.as_ref().map(|p| p.recording_id)
        );
        assert_eq!(cuts[0].gops_from_ms, None);
        assert!(cuts[0].drop_gops_from_to);
        assert_eq!(cuts[1].gops_from_ms, Some(15_000));
        assert!(!cuts[1].drop_gops_from_to);
    }

    #[test]
    fn a_long_event_ending_last_merges_every_window_it_spans() {
        let mut s = scheduler();
        s.on_event(&start(1, 10_000));
        s.on_event(&start(2, 11_000));
        s.on_event(&end(1, 10_000, 12_000)); // window 5..15 s, held by event 2
        s.on_event(&start(3, 30_000));
        s.on_event(&end(3, 30_000, 31_000)); // window 25..34 s
        let cuts = s.ready(40_000, false);
        assert_eq!(cuts.len(), 1, "{cuts:?}");
        assert_eq!((cuts[0].from_ms, cuts[0].to_ms), (5_000, 15_000));
        assert_eq!(ids(&cuts[0]), vec![1, 2]);
        s.on_event(&end(2, 11_000, 40_000)); // window 6..43 s spans the rest
        let cuts = s.ready(43_000, false);
        assert_eq!(cuts.len(), 1, "{cuts:?}");
        assert_eq!((cuts[0].from_ms, cuts[0].to_ms), (15_000, 43_000));
        let mut got = ids(&cuts[0]);
        got.sort();
        assert_eq!(got, vec![2, 3]);
        assert_eq!(cuts[0].part.as_ref().map(|p| p.index), Some(1));
        assert!(s.ready(100_000, false).is_empty());
    }

    #[test]
    fn an_event_reported_after_a_cut_gets_only_the_video_after_it() {
        let mut s = scheduler();
        s.on_event(&start(1, 10_000));
        s.on_event(&end(1, 10_000, 14_000));
        let cuts = s.ready(17_000, false);
        assert_eq!((cuts[0].from_ms, cuts[0].to_ms), (5_000, 17_000));
        // Event 2 (window 10..20 s) is reported only now: it starts at the cut.
        s.on_event(&start(2, 15_000));
        s.on_event(&end(2, 15_000, 17_000));
        let cuts = s.ready(20_000, false);
        assert_eq!(cuts.len(), 1, "{cuts:?}");
        assert_eq!((cuts[0].from_ms, cuts[0].to_ms), (17_000, 20_000));
        assert_eq!(
            cuts[0].gops_from_ms,
            Some(17_000),
            "the GOP at 17 s is in the first clip"
        );
        // Event 3 ends before the last cut: nothing more to cut.
        s.on_event(&start(3, 12_000));
        s.on_event(&end(3, 12_000, 13_000));
        assert!(s.ready(30_000, false).is_empty());
    }

    #[test]
    fn a_stream_clock_that_restarts_forgets_the_last_cut() {
        let mut s = scheduler();
        s.on_event(&start(1, 50_000));
        s.on_event(&end(1, 50_000, 54_000));
        assert_eq!(s.ready(57_000, false).len(), 1);
        // The camera reconnected; its timestamps start again near 0.
        assert!(s.ready(1_000, false).is_empty());
        s.on_event(&start(2, 10_000));
        s.on_event(&end(2, 10_000, 14_000));
        let cuts = s.ready(17_000, false);
        assert_eq!(cuts.len(), 1, "{cuts:?}");
        assert_eq!((cuts[0].from_ms, cuts[0].to_ms), (5_000, 17_000));
        assert_eq!(cuts[0].gops_from_ms, None);
    }

    #[test]
    fn draining_cuts_every_window_at_once() {
        let mut s = scheduler();
        s.on_event(&start(1, 10_000));
        s.on_event(&start(2, 12_000));
        s.on_event(&end(1, 10_000, 14_000));
        let cuts = s.ready(15_000, true);
        assert_eq!(cuts.len(), 1);
        assert_eq!(ids(&cuts[0]), vec![1]);
        assert!(s.ready(15_000, true).is_empty());
    }
}
