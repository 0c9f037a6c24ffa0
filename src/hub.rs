//! The hub: the newest frame of a source plus its counters. Ingest publishes
//! into it; every viewer reads from it. It keeps exactly one frame (a
//! `tokio::sync::watch` slot), so a slow viewer skips to the newest frame and
//! nothing ever queues per viewer. Frames are `Bytes`: handing one to a viewer
//! is a reference-count increment, never a copy.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use serde::Serialize;
use tokio::sync::watch;

/// One JPEG as the camera sent it.
#[derive(Debug, Clone)]
pub struct Frame {
    /// 1 for the first frame of the source, then +1 per frame.
    pub seq: u64,
    /// The JPEG bytes, untouched.
    pub jpeg: Bytes,
    /// When the relay received the frame.
    pub received: Instant,
}

/// What the upstream connection is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceState {
    /// Opening the connection.
    Connecting,
    /// Frames are arriving.
    Streaming,
    /// The connection failed or ended; waiting to retry.
    Reconnecting,
    /// The camera refused the credentials; waiting to retry.
    Unauthorized,
    /// Not connected and not trying (on-demand with no viewers, or shut down).
    Idle,
}

impl SourceState {
    /// The lower-case name used in status pages and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceState::Connecting => "connecting",
            SourceState::Streaming => "streaming",
            SourceState::Reconnecting => "reconnecting",
            SourceState::Unauthorized => "unauthorized",
            SourceState::Idle => "idle",
        }
    }
}

/// Counters, all monotonic except the viewer gauges.
#[derive(Debug)]
pub struct Counters {
    /// Frames received from the source.
    pub frames_in: AtomicU64,
    /// JPEG bytes received from the source.
    pub bytes_in: AtomicU64,
    /// Frames written to viewers (summed over viewers).
    pub frames_out: AtomicU64,
    /// Bytes written to viewers, framing included.
    pub bytes_out: AtomicU64,
    /// Viewers connected now.
    pub viewers: AtomicU64,
    /// Viewer sessions ever started.
    pub viewer_sessions: AtomicU64,
    /// Frames a viewer never got because a newer one replaced them first.
    pub frames_skipped: AtomicU64,
    /// Parts the parser dropped (not JPEG, too large, unreadable).
    pub parts_dropped: AtomicU64,
    /// Upstream connection attempts after the first.
    pub reconnects: AtomicU64,
    /// Viewers connected now, per [`Endpoint`].
    pub by_endpoint: [AtomicU64; 2],
    /// Viewer sessions ever started, per [`Endpoint`].
    pub sessions_by_endpoint: [AtomicU64; 2],
    /// Upstream failures by kind (`unreachable`, `stalled`, …).
    pub upstream_errors: Mutex<std::collections::BTreeMap<&'static str, u64>>,
    /// Sizes of received frames.
    pub frame_sizes: Histogram,
    /// Seconds from a viewer's request to its first frame.
    pub time_to_first_frame: Histogram,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            frames_in: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            frames_out: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            viewers: AtomicU64::new(0),
            viewer_sessions: AtomicU64::new(0),
            frames_skipped: AtomicU64::new(0),
            parts_dropped: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            by_endpoint: Default::default(),
            sessions_by_endpoint: Default::default(),
            upstream_errors: Mutex::default(),
            // 4 KiB … 8 MiB.
            frame_sizes: Histogram::new(exponential_buckets(4096.0, 2.0, 12)),
            // 1 ms … 16 s.
            time_to_first_frame: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
        }
    }
}

#[derive(Debug)]
struct Health {
    state: SourceState,
    since: SystemTime,
    last_error: Option<String>,
    /// Arrival times of recent frames, for the fps figure.
    recent: VecDeque<Instant>,
    /// When the newest camera frame (not a placeholder) arrived.
    last_real: Option<Instant>,
}

/// The newest frame of one source, and everything counted about it.
#[derive(Debug)]
pub struct Hub {
    name: String,
    display: String,
    slot: watch::Sender<Option<Frame>>,
    /// Sequence number of the newest frame (camera or placeholder).
    seq: AtomicU64,
    /// Viewers plus snapshot requests waiting for a frame: what on-demand
    /// ingest watches.
    demand: watch::Sender<u64>,
    /// Counters read by status pages and metrics.
    pub counters: Counters,
    health: Mutex<Health>,
    started: Instant,
}

/// Window over which fps is measured.
const FPS_WINDOW: Duration = Duration::from_secs(2);

impl Hub {
    /// A hub for the source called `name`, shown as `display` (a redacted URL).
    pub fn new(name: impl Into<String>, display: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            display: display.into(),
            slot: watch::Sender::new(None),
            seq: AtomicU64::new(0),
            demand: watch::Sender::new(0),
            counters: Counters::default(),
            health: Mutex::new(Health {
                state: SourceState::Connecting,
                since: SystemTime::now(),
                last_error: None,
                recent: VecDeque::with_capacity(128),
                last_real: None,
            }),
            started: Instant::now(),
        }
    }

    /// The source's name (`default` for a single camera).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The source as shown to people (no secrets).
    pub fn display(&self) -> &str {
        &self.display
    }

    /// Replaces the newest frame and wakes every viewer.
    pub fn publish(&self, jpeg: Bytes) {
        let now = Instant::now();
        let len = jpeg.len() as u64;
        self.counters.frames_in.fetch_add(1, Ordering::Relaxed);
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        self.counters.bytes_in.fetch_add(len, Ordering::Relaxed);
        self.counters.frame_sizes.observe(len as f64);
        {
            let mut health = self.lock();
            health.last_real = Some(now);
            health.recent.push_back(now);
            while health
                .recent
                .front()
                .is_some_and(|t| now.duration_since(*t) > FPS_WINDOW)
            {
                health.recent.pop_front();
            }
            if health.state != SourceState::Streaming {
                health.state = SourceState::Streaming;
                health.since = SystemTime::now();
                health.last_error = None;
            }
        }
        self.slot.send_replace(Some(Frame {
            seq,
            jpeg,
            received: now,
        }));
    }

    /// Shows viewers a generated picture (the feed-lost card) without
    /// counting it as a camera frame or changing the source state.
    pub fn publish_placeholder(&self, jpeg: Bytes) {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        self.slot.send_replace(Some(Frame {
            seq,
            jpeg,
            received: Instant::now(),
        }));
    }

    /// Time since the newest camera frame (placeholders do not count).
    pub fn last_frame_age(&self) -> Option<Duration> {
        self.lock().last_real.map(|t| t.elapsed())
    }

    /// Watches the demand for frames (viewers + waiting snapshot requests).
    pub fn demand(&self) -> watch::Receiver<u64> {
        self.demand.subscribe()
    }

    /// Counts as demand until dropped (a snapshot request waiting for a
    /// fresh frame from an on-demand camera).
    pub fn want_frame(self: &Arc<Self>) -> DemandGuard {
        self.demand.send_modify(|d| *d += 1);
        DemandGuard { hub: self.clone() }
    }

    /// Whether the camera has ever sent a frame.
    pub fn has_real_frame(&self) -> bool {
        self.counters.frames_in.load(Ordering::Relaxed) > 0
    }

    /// A receiver of frames; it sees the current frame (if any) as new.
    pub fn subscribe(&self) -> watch::Receiver<Option<Frame>> {
        let mut rx = self.slot.subscribe();
        if rx.borrow().is_some() {
            rx.mark_changed();
        }
        rx
    }

    /// The newest frame, if any has arrived.
    pub fn latest(&self) -> Option<Frame> {
        self.slot.borrow().clone()
    }

    /// Records a state change of the upstream connection.
    pub fn set_state(&self, state: SourceState, error: Option<String>) {
        let mut health = self.lock();
        if health.state != state {
            health.state = state;
            health.since = SystemTime::now();
        }
        if error.is_some() {
            health.last_error = error;
        }
    }

    /// Counts one more viewer until the guard is dropped.
    pub fn viewer(self: &Arc<Self>, endpoint: Endpoint) -> ViewerGuard {
        self.counters.viewers.fetch_add(1, Ordering::Relaxed);
        self.counters.viewer_sessions.fetch_add(1, Ordering::Relaxed);
        self.counters.by_endpoint[endpoint as usize].fetch_add(1, Ordering::Relaxed);
        self.counters.sessions_by_endpoint[endpoint as usize].fetch_add(1, Ordering::Relaxed);
        self.demand.send_modify(|d| *d += 1);
        // One span per viewer session (never per frame), closed on drop.
        let span = tracing::info_span!(
            parent: None,
            "viewer.session",
            endpoint = endpoint.as_str(),
            frames = tracing::field::Empty,
            bytes = tracing::field::Empty,
            duration_s = tracing::field::Empty,
            close_reason = tracing::field::Empty,
            trace_id = tracing::field::Empty,
        );
        crate::telemetry::record_trace_id(&span);
        ViewerGuard {
            hub: self.clone(),
            endpoint,
            started: Instant::now(),
            first_frame: false,
            frames: 0,
            bytes: 0,
            close_reason: "viewer disconnected",
            span,
        }
    }

    /// Counts an upstream failure of `kind` (a short snake_case word).
    pub fn count_error(&self, kind: &'static str) {
        let mut errors = self
            .counters
            .upstream_errors
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *errors.entry(kind).or_insert(0) += 1;
    }

    /// A consistent-enough picture of the source for status pages.
    pub fn snapshot(&self) -> SourceStatus {
        let now = Instant::now();
        let (state, since, last_error, fps, last_real) = {
            let health = self.lock();
            let fresh = health
                .recent
                .iter()
                .filter(|t| now.duration_since(**t) <= FPS_WINDOW)
                .count();
            let fps = if fresh < 2 {
                0.0
            } else {
                let first = *health.recent.iter().rev().nth(fresh - 1).unwrap_or(&now);
                let span = now.duration_since(first).as_secs_f64().max(0.001);
                ((fresh - 1) as f64 / span * 10.0).round() / 10.0
            };
            (
                health.state,
                health.since,
                health.last_error.clone(),
                fps,
                health.last_real,
            )
        };
        let latest = self.latest();
        let c = &self.counters;
        SourceStatus {
            name: self.name.clone(),
            url: self.display.clone(),
            state,
            state_since_unix_s: since
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            fps,
            frames: c.frames_in.load(Ordering::Relaxed),
            bytes_in: c.bytes_in.load(Ordering::Relaxed),
            last_frame_bytes: latest.as_ref().map(|f| f.jpeg.len()),
            last_frame_age_s: last_real
                .map(|t| (now.duration_since(t).as_secs_f64() * 1000.0).round() / 1000.0),
            reconnects: c.reconnects.load(Ordering::Relaxed),
            parts_dropped: c.parts_dropped.load(Ordering::Relaxed),
            last_error,
        }
    }

    /// Time since the hub was created.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Health> {
        // A poisoned lock only means a panic elsewhere; the data is still usable.
        self.health.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Keeps a viewer counted while it lives.
#[derive(Debug)]
pub struct ViewerGuard {
    hub: Arc<Hub>,
    endpoint: Endpoint,
    started: Instant,
    first_frame: bool,
    frames: u64,
    bytes: u64,
    close_reason: &'static str,
    span: tracing::Span,
}

impl ViewerGuard {
    /// Counts bytes written to this viewer (for its session span).
    pub fn bytes_sent(&mut self, n: usize) {
        self.bytes += n as u64;
    }

    /// Why the session ends, when the relay ends it.
    pub fn closing(&mut self, reason: &'static str) {
        self.close_reason = reason;
    }

    /// Counts a frame sent; records the time to the first one.
    pub fn frame_sent(&mut self) {
        self.frames += 1;
        if !self.first_frame {
            self.first_frame = true;
            let waited = self.started.elapsed().as_secs_f64();
            self.hub.counters.time_to_first_frame.observe(waited);
        }
    }
}

impl Drop for ViewerGuard {
    fn drop(&mut self) {
        self.span.record("frames", self.frames);
        self.span.record("bytes", self.bytes);
        self.span
            .record("duration_s", self.started.elapsed().as_secs_f64());
        self.span.record("close_reason", self.close_reason);
        self.hub.counters.viewers.fetch_sub(1, Ordering::Relaxed);
        self.hub.counters.by_endpoint[self.endpoint as usize].fetch_sub(1, Ordering::Relaxed);
        self.hub.demand.send_modify(|d| *d = d.saturating_sub(1));
    }
}

/// Demand for frames held by a waiting request.
#[derive(Debug)]
pub struct DemandGuard {
    hub: Arc<Hub>,
}

impl Drop for DemandGuard {
    fn drop(&mut self) {
        self.hub.demand.send_modify(|d| *d = d.saturating_sub(1));
    }
}

/// How a viewer is connected, for per-endpoint counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/stream` (multipart).
    Stream = 0,
    /// `/ws` (WebSocket).
    Ws = 1,
}

impl Endpoint {
    /// Every endpoint, in index order.
    pub const ALL: [Endpoint; 2] = [Endpoint::Stream, Endpoint::Ws];

    /// The label value used in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Stream => "stream",
            Endpoint::Ws => "ws",
        }
    }
}

/// The source part of `/status.json`.
#[derive(Debug, Clone, Serialize)]
pub struct SourceStatus {
    /// Source name.
    pub name: String,
    /// Redacted URL or demo description.
    pub url: String,
    /// Connection state.
    pub state: SourceState,
    /// When the state last changed (Unix seconds).
    pub state_since_unix_s: u64,
    /// Frames per second over the last two seconds.
    pub fps: f64,
    /// Frames received.
    pub frames: u64,
    /// JPEG bytes received.
    pub bytes_in: u64,
    /// Size of the newest frame.
    pub last_frame_bytes: Option<usize>,
    /// Age of the newest frame in seconds.
    pub last_frame_age_s: Option<f64>,
    /// Reconnections so far.
    pub reconnects: u64,
    /// Parts dropped by the parser.
    pub parts_dropped: u64,
    /// The last upstream error, if the source is not streaming.
    pub last_error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_frame_wins_and_is_shared() {
        let hub = Hub::new("default", "test");
        let mut rx = hub.subscribe();
        assert!(!rx.has_changed().unwrap());
        let jpeg = Bytes::from_static(b"\xFF\xD8one\xFF\xD9");
        hub.publish(jpeg.clone());
        hub.publish(Bytes::from_static(b"\xFF\xD8two\xFF\xD9"));
        assert!(rx.has_changed().unwrap());
        let frame = rx.borrow_and_update().clone().unwrap();
        assert_eq!(frame.seq, 2);
        assert_eq!(&frame.jpeg[..], b"\xFF\xD8two\xFF\xD9");
        // A late subscriber sees the current frame at once.
        assert!(hub.subscribe().has_changed().unwrap());
        assert_eq!(hub.snapshot().frames, 2);
        assert_eq!(hub.snapshot().state, SourceState::Streaming);
    }

    #[test]
    fn viewer_guard_counts() {
        let hub = Arc::new(Hub::new("default", "test"));
        let a = hub.viewer(Endpoint::Stream);
        let b = hub.viewer(Endpoint::Ws);
        assert_eq!(hub.counters.viewers.load(Ordering::Relaxed), 2);
        drop(a);
        drop(b);
        assert_eq!(hub.counters.viewers.load(Ordering::Relaxed), 0);
        assert_eq!(hub.counters.viewer_sessions.load(Ordering::Relaxed), 2);
    }
}
