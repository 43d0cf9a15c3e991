//! [`DetectService`]: one inference thread shared by every camera, fed by a
//! bounded queue that keeps only the newest frame per camera.
//!
//! The operator wants now, not a backlog: when inference falls behind, a
//! camera's waiting frame is replaced by its newer one (and counted as
//! dropped) instead of queueing. Cameras are served round-robin so a busy one
//! cannot starve the others.

use std::collections::{HashMap, VecDeque};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use super::analyzer::{CameraAnalyzer, CameraStats};
use super::events::EventMessage;
use super::frame::AnalysisFrame;

/// What happened to a submitted frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submitted {
    /// Waiting for the inference thread.
    Queued,
    /// Waiting, and it replaced an older frame of the same camera (which is dropped).
    ReplacedOlder,
    /// No analyser for this camera; dropped.
    UnknownCamera,
    /// The service is shutting down; dropped.
    ShuttingDown,
}

/// Newest-frame-per-camera queue with round-robin order; bounded by the number of cameras.
#[derive(Debug, Default)]
pub struct FrameQueue {
    latest: HashMap<String, AnalysisFrame>,
    /// Cameras with a waiting frame, oldest request first; each appears at most once.
    order: VecDeque<String>,
}

impl FrameQueue {
    /// Adds a frame; returns true when it replaced an older waiting frame of its camera.
    pub fn push(&mut self, frame: AnalysisFrame) -> bool {
        let camera = frame.camera_id.clone();
        let replaced = self.latest.insert(camera.clone(), frame).is_some();
        if !replaced {
            self.order.push_back(camera);
        }
        replaced
    }

    /// Takes the next camera's frame in round-robin order.
    pub fn pop(&mut self) -> Option<AnalysisFrame> {
        while let Some(camera) = self.order.pop_front() {
            if let Some(f) = self.latest.remove(&camera) {
                return Some(f);
            }
        }
        None
    }

    /// Frames waiting.
    pub fn len(&self) -> usize {
        self.latest.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.latest.is_empty()
    }
}

#[derive(Debug, Default)]
struct State {
    queue: FrameQueue,
    /// Frames replaced before analysis, per camera, not yet folded into the analyser's stats.
    dropped: HashMap<String, u64>,
    /// Latest stats per camera, published by the worker after each frame.
    stats: HashMap<String, CameraStats>,
    /// Last analysed frame per camera, privacy-masked, for live snapshots.
    latest: HashMap<String, Arc<AnalysisFrame>>,
    shutdown: bool,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Runs every camera's analyser on one thread; frames in, event messages out.
#[derive(Debug)]
pub struct DetectService {
    shared: Arc<Shared>,
    cameras: Vec<String>,
    /// Joined once by whoever closes the service first.
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl DetectService {
    /// Starts the inference thread. Event messages go to `events`; when the
    /// receiver is gone they are discarded.
    pub fn spawn(
        analyzers: Vec<CameraAnalyzer>,
        events: Sender<EventMessage>,
    ) -> std::io::Result<Self> {
        let shared = Arc::new(Shared::default());
        let cameras: Vec<String> = analyzers
            .iter()
            .map(|a| a.camera_id().to_string())
            .collect();
        {
            let mut st = shared.lock();
            for a in &analyzers {
                st.stats
                    .insert(a.camera_id().to_string(), a.stats().clone());
            }
        }
        let worker_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("vigil-detect".into())
            .spawn(move || run(worker_shared, analyzers, events))?;
        Ok(DetectService {
            shared,
            cameras,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Hands a frame to the inference thread without blocking.
    pub fn submit(&self, frame: AnalysisFrame) -> Submitted {
        if !self.cameras.contains(&frame.camera_id) {
            return Submitted::UnknownCamera;
        }
        let mut st = self.shared.lock();
        if st.shutdown {
            return Submitted::ShuttingDown;
        }
        let camera = frame.camera_id.clone();
        let replaced = st.queue.push(frame);
        if replaced {
            *st.dropped.entry(camera).or_default() += 1;
        }
        drop(st);
        self.shared.wake.notify_one();
        if replaced {
            Submitted::ReplacedOlder
        } else {
            Submitted::Queued
        }
    }

    /// Latest per-camera stats (as of the last analysed frame).
    pub fn stats(&self) -> HashMap<String, CameraStats> {
        self.shared.lock().stats.clone()
    }

    /// The last analysed frame of `camera`, with its privacy masks applied
    /// (the analyser masks before anything else sees the frame).
    pub fn latest_frame(&self, camera: &str) -> Option<Arc<AnalysisFrame>> {
        self.shared.lock().latest.get(camera).cloned()
    }

    /// Stops after the frames already waiting, ends open events and joins the thread.
    pub fn shutdown(self) {
        self.close();
    }

    /// Like [`DetectService::shutdown`] through a shared reference (the service
    /// is shared with cameras and health reporting); idempotent.
    pub fn close(&self) {
        self.shared.lock().shutdown = true;
        self.shared.wake.notify_all();
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = thread {
            if t.join().is_err() {
                tracing::error!("The detection thread panicked.");
            }
        }
    }
}

impl Drop for DetectService {
    fn drop(&mut self) {
        self.close();
    }
}

fn run(shared: Arc<Shared>, analyzers: Vec<CameraAnalyzer>, events: Sender<EventMessage>) {
    let mut analyzers: HashMap<String, CameraAnalyzer> = analyzers
        .into_iter()
        .map(|a| (a.camera_id().to_string(), a))
        .collect();
    loop {
        let (frame, dropped) = {
            let mut st = shared.lock();
            loop {
                if let Some(f) = st.queue.pop() {
                    let d = st.dropped.remove(&f.camera_id).unwrap_or(0);
                    break (f, d);
                }
                if st.shutdown {
                    drop(st);
                    for a in analyzers.values_mut() {
                        for m in a.finish() {
                            let _ = events.send(m);
                        }
                    }
                    return;
                }
                st = shared.wake.wait(st).unwrap_or_else(|p| p.into_inner());
            }
        };
        let Some(a) = analyzers.get_mut(&frame.camera_id) else {
            continue;
        };
        for _ in 0..dropped {
            a.record_dropped();
        }
        let camera = frame.camera_id.clone();
        match a.process(frame) {
            Ok(msgs) => {
                for m in msgs {
                    let _ = events.send(m);
                }
            }
            Err(e) => tracing::warn!(camera = %camera, error = %e, "Could not analyse a frame."),
        }
        let last = a.take_last_frame().map(Arc::new);
        let mut st = shared.lock();
        st.stats.insert(camera.clone(), a.stats().clone());
        if let Some(f) = last {
            st.latest.insert(camera, f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn f(camera: &str, ms: u64) -> AnalysisFrame {
        AnalysisFrame {
            camera_id: camera.into(),
            pts: Duration::from_millis(ms),
            wall: time::OffsetDateTime::UNIX_EPOCH,
            width: 1,
            height: 1,
            format: crate::detect::frame::PixelFormat::Rgb24,
            data: vec![0; 3],
        }
    }

    #[test]
    fn queue_keeps_newest_frame_per_camera_round_robin() {
        let mut q = FrameQueue::default();
        assert!(!q.push(f("a", 0)));
        assert!(!q.push(f("b", 0)));
        assert!(q.push(f("a", 100)));
        assert!(q.push(f("a", 200)));
        assert_eq!(q.len(), 2);
        let first = q.pop().map(|x| (x.camera_id, x.pts));
        assert_eq!(first, Some(("a".into(), Duration::from_millis(200))));
        assert_eq!(q.pop().map(|x| x.camera_id), Some("b".into()));
        assert!(q.pop().is_none() && q.is_empty());
    }
}
