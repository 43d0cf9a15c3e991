//! The pre-event buffer: the last seconds of a camera's encoded access units, by GOP.
//!
//! Invariants:
//! 1. Every GOP in the ring starts with a key frame; units that arrive before the first
//!    key frame are dropped (a clip must start on a key frame).
//! 2. `bytes() <= max_bytes` after every [`GopRing::push`], except while the newest GOP
//!    alone is larger than the bound (it is then the only GOP kept).
//! 3. The span from the oldest kept GOP's start to the newest unit is at most
//!    `max_duration` plus one GOP (we only drop whole GOPs, and keep enough to cover it).

use std::collections::VecDeque;
use std::time::Duration;

use gstreamer as gst;
use time::OffsetDateTime;

/// One encoded access unit as the camera sent it (byte-stream H.264/H.265, one frame).
#[derive(Debug, Clone)]
pub struct AccessUnit {
    /// The camera's bytes, reference-counted (no copy from the appsink).
    pub buffer: gst::Buffer,
    /// Presentation time in the pipeline's running time.
    pub pts: Option<gst::ClockTime>,
    /// Decode time, when the depayloader/parser knows it.
    pub dts: Option<gst::ClockTime>,
    /// True for a key frame (a GOP starts here).
    pub keyframe: bool,
    /// UTC when the unit reached the agent.
    pub wall: OffsetDateTime,
}

impl AccessUnit {
    /// Best timestamp for ordering by arrival: DTS when known, else PTS.
    pub fn time(&self) -> Option<gst::ClockTime> {
        self.dts.or(self.pts)
    }
}

/// A group of pictures: a key frame and the delta frames up to the next key frame.
#[derive(Debug, Clone)]
pub struct Gop {
    /// Units in decode order; `units[0].keyframe` is true.
    pub units: Vec<AccessUnit>,
    /// Sum of the units' sizes.
    pub bytes: usize,
}

impl Gop {
    /// Wall-clock time the GOP's key frame arrived.
    pub fn start_wall(&self) -> OffsetDateTime {
        self.units[0].wall
    }
}

/// Bounded ring of recent GOPs for one camera.
#[derive(Debug)]
pub struct GopRing {
    gops: VecDeque<Gop>,
    bytes: usize,
    max_bytes: usize,
    max_duration: Duration,
    /// Units dropped because no key frame had been seen yet.
    pub dropped_before_keyframe: u64,
    /// Whole GOPs evicted to keep the bounds.
    pub evicted_gops: u64,
}

impl GopRing {
    /// A ring keeping at least `max_duration` of video, never more than `max_bytes`.
    pub fn new(max_duration: Duration, max_bytes: usize) -> Self {
        GopRing {
            gops: VecDeque::new(),
            bytes: 0,
            max_bytes,
            max_duration,
            dropped_before_keyframe: 0,
            evicted_gops: 0,
        }
    }

    /// Append one access unit (decode order) and evict old GOPs to keep the bounds.
    pub fn push(&mut self, unit: AccessUnit) {
        let size = unit.buffer.size();
        if unit.keyframe {
            self.gops.push_back(Gop {
                units: vec![unit],
                bytes: size,
            });
        } else if let Some(gop) = self.gops.back_mut() {
            gop.units.push(unit);
            gop.bytes += size;
        } else {
            self.dropped_before_keyframe += 1;
            return;
        }
        self.bytes += size;
        self.evict();
    }

    fn evict(&mut self) {
        while self.gops.len() > 1 {
            let over_bytes = self.bytes > self.max_bytes;
            // Drop the oldest GOP only if the remaining ones still cover max_duration.
            let over_time = match (
                self.gops.get(1).and_then(|g| g.units[0].time()),
                self.newest_time(),
            ) {
                (Some(second_start), Some(newest)) => {
                    newest.saturating_sub(second_start).nseconds() as u128
                        >= self.max_duration.as_nanos()
                }
                _ => false,
            };
            if !(over_bytes || over_time) {
                break;
            }
            if let Some(old) = self.gops.pop_front() {
                self.bytes -= old.bytes;
                self.evicted_gops += 1;
            }
        }
    }

    fn newest_time(&self) -> Option<gst::ClockTime> {
        self.gops
            .back()
            .and_then(|g| g.units.last())
            .and_then(|u| u.time())
    }

    /// Bytes of video held now.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The configured byte bound.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// Number of GOPs held.
    pub fn len(&self) -> usize {
        self.gops.len()
    }

    /// True when no key frame has arrived yet.
    pub fn is_empty(&self) -> bool {
        self.gops.is_empty()
    }

    /// Span of video held, from the oldest key frame to the newest unit.
    pub fn span(&self) -> Duration {
        match (
            self.gops.front().and_then(|g| g.units[0].time()),
            self.newest_time(),
        ) {
            (Some(a), Some(b)) => Duration::from_nanos(b.saturating_sub(a).nseconds()),
            _ => Duration::ZERO,
        }
    }

    /// GOPs whose time range overlaps `[from, to]` (running time), oldest first, cloned
    /// (buffers are reference-counted, so this copies no video bytes).
    pub fn gops_between(&self, from: gst::ClockTime, to: gst::ClockTime) -> Vec<Gop> {
        let mut out = Vec::new();
        for (i, gop) in self.gops.iter().enumerate() {
            let start = gop.units[0].time();
            let end = self
                .gops
                .get(i + 1)
                .and_then(|g| g.units[0].time())
                .or_else(|| gop.units.last().and_then(|u| u.time()));
            let (Some(start), Some(end)) = (start, end) else {
                continue;
            };
            if end >= from && start <= to {
                out.push(gop.clone());
            }
        }
        out
    }

    /// Every GOP held, oldest first.
    pub fn all(&self) -> Vec<Gop> {
        self.gops.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(ms: u64, key: bool, size: usize) -> AccessUnit {
        let mut buffer = gst::Buffer::with_size(size).expect("alloc");
        buffer
            .get_mut()
            .expect("unique")
            .set_pts(gst::ClockTime::from_mseconds(ms));
        AccessUnit {
            buffer,
            pts: Some(gst::ClockTime::from_mseconds(ms)),
            dts: None,
            keyframe: key,
            wall: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn drops_units_before_first_keyframe() {
        gst::init().expect("gst init");
        let mut ring = GopRing::new(Duration::from_secs(10), 1 << 20);
        ring.push(unit(0, false, 10));
        ring.push(unit(100, false, 10));
        assert!(ring.is_empty());
        assert_eq!(ring.dropped_before_keyframe, 2);
        ring.push(unit(200, true, 10));
        assert_eq!(ring.len(), 1);
        assert_eq!(ring.bytes(), 10);
    }

    #[test]
    fn keeps_duration_and_byte_bounds() {
        gst::init().expect("gst init");
        // 10 fps, GOP of 20 frames (2 s), keep 5 s, bound 100 kB, 1 kB a frame.
        let mut ring = GopRing::new(Duration::from_secs(5), 100_000);
        for i in 0..2000u64 {
            ring.push(unit(i * 100, i % 20 == 0, 1000));
            assert!(ring.bytes() <= 100_000);
            // Duration bound plus at most one GOP.
            assert!(
                ring.span() <= Duration::from_secs(7),
                "span {:?}",
                ring.span()
            );
        }
        assert!(ring.span() >= Duration::from_secs(5));
        // Byte bound binds when it is tighter than the duration.
        let mut small = GopRing::new(Duration::from_secs(60), 45_000);
        for i in 0..400u64 {
            small.push(unit(i * 100, i % 20 == 0, 1000));
            assert!(small.bytes() <= 45_000);
        }
        assert_eq!(small.len(), 2);
    }

    #[test]
    fn selects_overlapping_gops() {
        gst::init().expect("gst init");
        let mut ring = GopRing::new(Duration::from_secs(60), 1 << 30);
        for i in 0..100u64 {
            ring.push(unit(i * 100, i % 20 == 0, 10));
        }
        let gops = ring.gops_between(
            gst::ClockTime::from_mseconds(2500),
            gst::ClockTime::from_mseconds(4100),
        );
        let starts: Vec<_> = gops
            .iter()
            .map(|g| g.units[0].pts.map(|p| p.mseconds()))
            .collect();
        assert_eq!(starts, vec![Some(2000), Some(4000)]);
    }
}
