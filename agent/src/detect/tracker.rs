//! A small multi-object tracker: greedy IoU association with a centroid
//! fallback, per label, with a short memory.
//!
//! Tracks age only on analysed frames. When the motion gate skips a frame the
//! scene did not change, so [`Tracker::carry`] keeps tracks that were seen on
//! the last analysed frame alive instead of letting them expire.

use std::time::Duration;

use super::geom::BBox;
use super::model::Detection;

/// IoU below which a moved box counts as "has moved" for stationary detection.
const STATIONARY_IOU: f32 = 0.8;
/// IoU above which a detection is associated with a track outright.
const MIN_ASSOC_IOU: f32 = 0.1;
/// Centroid fallback: max distance as a multiple of the track box's larger side.
const MAX_CENTROID_DIST: f32 = 0.75;

/// One tracked object.
#[derive(Debug, Clone)]
pub struct Track {
    /// Unique within the tracker.
    pub id: u64,
    /// Model class index.
    pub class_id: usize,
    /// Label.
    pub label: String,
    /// Latest box (source pixels).
    pub bbox: BBox,
    /// Latest score.
    pub score: f32,
    /// When first seen.
    pub first_seen: Duration,
    /// When last seen (or carried over a motion-skipped frame).
    pub last_seen: Duration,
    /// Hit history over analysed frames, newest in bit 0.
    pub hits: u64,
    /// True when matched on the latest analysed frame.
    pub matched: bool,
    /// Box the object had when it last moved; compared with new boxes to detect stillness.
    pub anchor: BBox,
    /// Since when the object has been still.
    pub still_since: Duration,
}

impl Track {
    /// Hits among the last `window` analysed frames.
    pub fn recent_hits(&self, window: u32) -> u32 {
        let mask = if window >= 64 {
            u64::MAX
        } else {
            (1u64 << window) - 1
        };
        (self.hits & mask).count_ones()
    }

    /// How long the object has not moved, at `now`.
    pub fn still_for(&self, now: Duration) -> Duration {
        now.saturating_sub(self.still_since)
    }
}

/// The tracker state of one camera.
#[derive(Debug)]
pub struct Tracker {
    tracks: Vec<Track>,
    next_id: u64,
    /// Tracks unseen for longer than this are dropped (the event machine's post-roll).
    max_age: Duration,
}

impl Tracker {
    /// A tracker that forgets objects unseen for `max_age`.
    pub fn new(max_age: Duration) -> Self {
        Tracker {
            tracks: Vec::new(),
            next_id: 1,
            max_age,
        }
    }

    /// Live tracks.
    pub fn tracks(&self) -> &[Track] {
        &self.tracks
    }

    /// Associates an analysed frame's detections; returns the tracks dropped for age.
    ///
    /// `allow_new` is false on refresh frames without motion: they keep known
    /// objects current but a still image never creates a track (and so never an event).
    pub fn update(&mut self, dets: &[Detection], now: Duration, allow_new: bool) -> Vec<Track> {
        // Candidate pairs (affinity, track index, detection index), best first.
        let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
        for (ti, t) in self.tracks.iter().enumerate() {
            let (tx, ty) = t.bbox.center();
            let limit = t.bbox.width().max(t.bbox.height()) * MAX_CENTROID_DIST;
            for (di, d) in dets.iter().enumerate() {
                if d.class_id != t.class_id {
                    continue;
                }
                let iou = t.bbox.iou(&d.bbox);
                let affinity = if iou >= MIN_ASSOC_IOU {
                    iou
                } else {
                    let (dx, dy) = d.bbox.center();
                    let dist = ((dx - tx).powi(2) + (dy - ty).powi(2)).sqrt();
                    if dist >= limit || limit <= 0.0 {
                        continue;
                    }
                    // Always ranks below any IoU match.
                    MIN_ASSOC_IOU * (1.0 - dist / limit)
                };
                pairs.push((affinity, ti, di));
            }
        }
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut track_used = vec![false; self.tracks.len()];
        let mut det_used = vec![false; dets.len()];
        for t in &mut self.tracks {
            t.hits <<= 1;
            t.matched = false;
        }
        for (_, ti, di) in pairs {
            if track_used[ti] || det_used[di] {
                continue;
            }
            track_used[ti] = true;
            det_used[di] = true;
            let (t, d) = (&mut self.tracks[ti], &dets[di]);
            t.bbox = d.bbox;
            t.score = d.score;
            t.last_seen = now;
            t.hits |= 1;
            t.matched = true;
            if t.anchor.iou(&d.bbox) < STATIONARY_IOU {
                t.anchor = d.bbox;
                t.still_since = now;
            }
        }
        for (di, d) in dets.iter().enumerate() {
            if det_used[di] || !allow_new {
                continue;
            }
            self.tracks.push(Track {
                id: self.next_id,
                class_id: d.class_id,
                label: d.label.clone(),
                bbox: d.bbox,
                score: d.score,
                first_seen: now,
                last_seen: now,
                hits: 1,
                matched: true,
                anchor: d.bbox,
                still_since: now,
            });
            self.next_id += 1;
        }
        self.expire(now)
    }

    /// A motion-skipped frame: tracks seen on the last analysed frame are still there.
    pub fn carry(&mut self, now: Duration) -> Vec<Track> {
        for t in &mut self.tracks {
            if t.matched {
                t.last_seen = now;
            }
        }
        self.expire(now)
    }

    /// Drops and returns every track (end of stream).
    pub fn drain(&mut self) -> Vec<Track> {
        std::mem::take(&mut self.tracks)
    }

    fn expire(&mut self, now: Duration) -> Vec<Track> {
        let max_age = self.max_age;
        let (gone, live): (Vec<Track>, Vec<Track>) = std::mem::take(&mut self.tracks)
            .into_iter()
            .partition(|t| now.saturating_sub(t.last_seen) > max_age);
        self.tracks = live;
        gone
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(x: f32) -> Detection {
        Detection {
            class_id: 0,
            label: "person".into(),
            score: 0.8,
            bbox: BBox::from([x, 100.0, x + 40.0, 200.0]),
        }
    }

    #[test]
    fn a_walking_person_keeps_one_track_and_expires_after_max_age() {
        let mut t = Tracker::new(Duration::from_secs(2));
        for i in 0..20u64 {
            let gone = t.update(
                &[person(10.0 + 8.0 * i as f32)],
                Duration::from_millis(100 * i),
                true,
            );
            assert!(gone.is_empty());
        }
        assert_eq!(t.tracks().len(), 1);
        assert_eq!(t.tracks()[0].id, 1);
        assert_eq!(t.tracks()[0].recent_hits(5), 5);
        assert!(t.update(&[], Duration::from_millis(4000), true).len() == 1);
        assert!(t.tracks().is_empty());
    }

    #[test]
    fn two_people_far_apart_get_two_tracks_and_carry_keeps_them() {
        let mut t = Tracker::new(Duration::from_secs(1));
        t.update(&[person(0.0), person(400.0)], Duration::ZERO, true);
        t.update(
            &[person(5.0), person(395.0)],
            Duration::from_millis(100),
            true,
        );
        assert_eq!(t.tracks().len(), 2);
        assert!(t.carry(Duration::from_secs(5)).is_empty());
        assert_eq!(t.tracks().len(), 2);
    }

    #[test]
    fn still_object_accumulates_still_time_until_it_moves() {
        let mut t = Tracker::new(Duration::from_secs(10));
        for i in 0..10u64 {
            t.update(&[person(100.0)], Duration::from_secs(i), true);
        }
        assert_eq!(
            t.tracks()[0].still_for(Duration::from_secs(9)),
            Duration::from_secs(9)
        );
        t.update(&[person(130.0)], Duration::from_secs(10), true);
        assert!(t
            .update(&[person(400.0)], Duration::from_secs(11), false)
            .is_empty());
        assert_eq!(t.tracks().len(), 1);
        assert_eq!(
            t.tracks()[0].still_for(Duration::from_secs(10)),
            Duration::ZERO
        );
    }
}
