//! The `/stream` body: an endless multipart response that pulls the newest
//! frame from the hub each time hyper asks for more, i.e. each time the
//! socket has taken what was written before. A viewer that reads slowly is
//! simply asked less often and skips to the newest frame; nothing queues.
//! The body ends itself with the closing boundary when shutdown starts
//! (hyper's HTTP/1 graceful shutdown would wait for it forever otherwise).
//!
//! When the camera sends nothing new for `--idle-repeat`, the last frame is
//! sent again, so a static scene does not look like a dead stream to
//! browsers, proxies with idle timeouts, or NVRs with a frame watchdog.
//!
//! Framing and browsers: each part is written as headers, JPEG and the
//! boundary line right after it (Firefox shows the frame as soon as it sees
//! that boundary). Chromium shows a part only once the *next* part's headers
//! are parsed; those carry the next frame's `Content-Length`, so they can
//! only leave with the next frame (see BENCHMARKS.md). A page that
//! wants each frame at once in Chromium can ask for `?headers=early`: the
//! next part's headers (`Content-Type` only, no `Content-Length`) follow the
//! boundary at once. That trades the `Content-Length` guarantee for one
//! frame interval of latency, so it is never the default.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http_body::Frame as BodyFrame;
use http_body_util::StreamBody;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::hub::{self, Hub, ViewerGuard};
use crate::mjpeg::encode;

use super::Body;

/// One viewer's position in the stream.
struct Viewer {
    hub: Arc<Hub>,
    rx: watch::Receiver<Option<hub::Frame>>,
    shutdown: CancellationToken,
    /// Minimum time between frames (`?fps=N`, `--max-fps`).
    min_interval: Option<Duration>,
    /// Resend the current frame after this long without a new one.
    idle_repeat: Option<Duration>,
    last_sent: Option<Instant>,
    last_seq: u64,
    /// `?headers=early`: part headers right after each boundary.
    early: bool,
    /// Chunks of the current part not yet handed to hyper.
    pending: VecDeque<Bytes>,
    done: bool,
    guard: ViewerGuard,
}

impl Viewer {
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if let Some(chunk) = self.pending.pop_front() {
            return Some(self.count(chunk));
        }
        if self.done {
            return None;
        }
        if let (Some(interval), Some(last)) = (self.min_interval, self.last_sent) {
            tokio::select! {
                biased;
                () = self.shutdown.cancelled() => return Some(self.close()),
                () = tokio::time::sleep_until(last + interval) => {}
            }
        }
        let frame = loop {
            // Only once a frame went out: a stream that has not started yet
            // waits for the camera.
            let repeat_at = self
                .idle_repeat
                .zip(self.last_sent)
                .map(|(idle, last)| last + idle);
            let idle = async {
                match repeat_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                () = self.shutdown.cancelled() => return Some(self.close()),
                changed = self.rx.changed() => match changed {
                    Ok(()) => if let Some(frame) = self.rx.borrow_and_update().clone() {
                        break frame;
                    },
                    Err(_) => return Some(self.close()),
                },
                () = idle => if let Some(frame) = self.rx.borrow_and_update().clone() {
                    break frame;
                },
            }
        };
        let counters = &self.hub.counters;
        if self.min_interval.is_none() && self.last_seq != 0 && frame.seq > self.last_seq + 1 {
            counters
                .frames_skipped
                .fetch_add(frame.seq - self.last_seq - 1, Ordering::Relaxed);
        }
        self.last_seq = frame.seq;
        self.last_sent = Some(Instant::now());
        counters.frames_out.fetch_add(1, Ordering::Relaxed);
        self.guard.frame_sent();
        if self.early {
            self.pending.push_back(EARLY_AFTER_FRAME);
            return Some(self.count(frame.jpeg));
        }
        let headers = encode::part_headers(frame.jpeg.len());
        self.pending.push_back(frame.jpeg);
        self.pending.push_back(encode::AFTER_FRAME);
        Some(self.count(headers))
    }

    fn close(&mut self) -> Bytes {
        self.done = true;
        self.guard.closing("relay shutting down");
        self.count(if self.early {
            EARLY_CLOSING
        } else {
            encode::CLOSING
        })
    }

    fn count(&mut self, chunk: Bytes) -> Bytes {
        self.guard.bytes_sent(chunk.len());
        self.hub
            .counters
            .bytes_out
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        chunk
    }
}

/// `?headers=early`: the opening, with the first part's headers.
const EARLY_OPENING: Bytes = Bytes::from_static(b"--mjpegrelayboundary\r\nContent-Type: image/jpeg\r\n\r\n");
/// `?headers=early`: after each frame, the boundary and the next headers.
const EARLY_AFTER_FRAME: Bytes =
    Bytes::from_static(b"\r\n--mjpegrelayboundary\r\nContent-Type: image/jpeg\r\n\r\n");
/// `?headers=early`: the part already begun ends empty, then the close delimiter.
const EARLY_CLOSING: Bytes = Bytes::from_static(b"\r\n--mjpegrelayboundary--\r\n");

/// `?headers=early|normal` (default normal).
pub fn query_early(query: Option<&str>) -> Result<bool, String> {
    let value = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("headers="));
    match value {
        None | Some("normal") => Ok(false),
        Some("early") => Ok(true),
        Some(other) => Err(format!("invalid headers '{other}': expected normal or early\n")),
    }
}

/// The body of one `/stream` response: at most one frame per
/// `min_interval`, the last frame again after `idle_repeat` without a new one.
pub fn body(
    hub: Arc<Hub>,
    shutdown: CancellationToken,
    min_interval: Option<Duration>,
    idle_repeat: Option<Duration>,
    early: bool,
) -> Body {
    let viewer = Viewer {
        rx: hub.subscribe(),
        guard: hub.viewer(crate::hub::Endpoint::Stream),
        hub,
        shutdown,
        min_interval,
        idle_repeat,
        last_sent: None,
        last_seq: 0,
        early,
        pending: VecDeque::from([if early { EARLY_OPENING } else { encode::OPENING }]),
        done: false,
    };
    let chunks = stream::unfold(viewer, |mut viewer| async move {
        let chunk = viewer.next_chunk().await?;
        Some((Ok::<_, Infallible>(BodyFrame::data(chunk)), viewer))
    });
    Body::new(StreamBody::new(chunks))
}
