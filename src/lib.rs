//! # mjpeg-relay
//!
//! One MJPEG camera in, many viewers out. The binary (`src/main.rs`) is thin:
//! it parses the [`config`], starts [`telemetry`] and runs the [`relay`] tree.
//!
//! # Layout
//!
//! - [`config`]: flags + `MJPEG_RELAY_*` variables → one validated `Config`.
//! - [`upstream`]: the camera connection (reqwest), reconnects with backoff.
//! - [`mjpeg`]: the sans-io multipart parser and the framing written to viewers.
//! - [`hub`]: the newest frame of the source and its counters.
//! - [`server`]: viewer routes and the accept loop shared with the admin port;
//!   `server/ws.rs` (`/ws`), `server/cors.rs`, `server/options.rs` (rate caps,
//!   idle repeat), `server/view.html` (the `/view` page).
//! - [`tls`]: HTTPS/HTTP/2 for viewers, certificate reload.
//! - [`admin`]: `/livez`, `/readyz`, `/metrics`, readiness latch.
//! - [`metrics`]: the Prometheus/OpenMetrics exposition of the hub's counters.
//! - [`demo`]: the built-in test-pattern camera.
//! - [`relay`]: the tokio-graceful-shutdown subsystem tree.
//! - [`healthcheck`]: the `healthcheck` subcommand's probe.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admin;
pub mod config;
pub mod demo;
pub mod healthcheck;
pub mod hub;
pub mod metrics;
pub mod mjpeg;
pub mod relay;
pub mod server;
pub mod telemetry;
pub mod tls;
pub mod upstream;

/// Makes ring rustls' process-wide crypto provider (idempotent).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
