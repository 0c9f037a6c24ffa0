//! The admin port: `/livez`, `/readyz` and `/metrics`, apart from
//! viewer traffic so probes answer even when viewers saturate the relay.
//! Owns the readiness latch: ready while the viewer listener serves and
//! shutdown has not begun.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use bytes::Bytes;

use crate::hub::Hub;
use crate::metrics::{self, Metrics};
use crate::server::{Body, full, text};

/// Readiness: every condition must hold for `/readyz` to answer 200.
#[derive(Debug, Default)]
pub struct Readiness {
    serving: AtomicBool,
    shutting_down: AtomicBool,
    /// With `--ready-requires-source`: the hub and how fresh a frame must be.
    source: std::sync::OnceLock<(Arc<Hub>, Duration)>,
}

impl Readiness {
    /// A latch that is not ready yet.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The viewer listener accepts connections.
    pub fn set_serving(&self) {
        self.serving.store(true, Ordering::SeqCst);
    }

    /// Also require a frame from `hub` no older than `max_age`.
    pub fn require_source(&self, hub: Arc<Hub>, max_age: Duration) {
        let _ = self.source.set((hub, max_age));
    }

    /// Shutdown has begun: not ready, for good.
    pub fn set_shutting_down(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    /// `Ok` when ready, else why not.
    pub fn check(&self) -> Result<(), &'static str> {
        if self.shutting_down.load(Ordering::SeqCst) {
            Err("shutting down")
        } else if !self.serving.load(Ordering::SeqCst) {
            Err("starting: viewer listener not serving yet")
        } else if let Some((hub, max_age)) = self.source.get() {
            match hub.last_frame_age() {
                Some(age) if age <= *max_age => Ok(()),
                Some(_) => Err("no frame from the source within --stall-timeout"),
                None => Err("no frame from the source yet"),
            }
        } else {
            Ok(())
        }
    }
}

/// What the admin routes need.
#[derive(Debug, Clone)]
pub struct Admin {
    /// The readiness latch.
    pub readiness: Arc<Readiness>,
    /// What `/metrics` reports.
    pub metrics: Arc<Metrics>,
}

impl Admin {
    /// Answers one admin request.
    pub async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        let head = req.method() == Method::HEAD;
        if req.method() != Method::GET && !head {
            return text(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed: use GET\n",
                head,
            );
        }
        match req.uri().path() {
            "/livez" => text(StatusCode::OK, "ok: running\n", head),
            "/readyz" => match self.readiness.check() {
                Ok(()) => text(StatusCode::OK, "ready: serving viewers\n", head),
                Err(why) => text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!("not ready: {why}\n"),
                    head,
                ),
            },
            "/metrics" => full(
                StatusCode::OK,
                metrics::CONTENT_TYPE,
                Bytes::from(self.metrics.render()),
                head,
            ),
            _ => text(
                StatusCode::NOT_FOUND,
                "not found: try /livez, /readyz or /metrics\n",
                head,
            ),
        }
    }
}
