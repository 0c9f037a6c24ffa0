//! Ingest: the one connection to the camera. Connects with reqwest, reads the
//! multipart body as it streams, feeds the parser and publishes frames to the
//! hub. Any failure (refused, reset, stalled, wrong credentials, odd answer)
//! is logged in one line and retried with exponential backoff; ingest never
//! ends the process and never disturbs connected viewers.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::{SourceMode, SourceUrl};
use crate::hub::{Hub, SourceState};
use crate::mjpeg::{Event, Parser, Skip, boundary_from_content_type};

/// How long a camera may take to answer with headers.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection that delivered frames for this long resets the backoff.
const HEALTHY_AFTER: Duration = Duration::from_secs(5);

/// Settings of one camera connection.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// Where frames go.
    pub hub: Arc<Hub>,
    /// The camera.
    pub url: SourceUrl,
    /// Largest accepted frame.
    pub max_frame_size: usize,
    /// No bytes for this long → reconnect.
    pub stall_timeout: Duration,
    /// First retry delay.
    pub reconnect_min: Duration,
    /// Longest retry delay.
    pub reconnect_max: Duration,
    /// Feed-lost picture interval while the camera is down; `None` is off.
    pub placeholder: Option<Duration>,
    /// Stream, snapshot polling, or decided by the answer's type.
    pub mode: SourceMode,
    /// Time between snapshot requests in snapshot mode.
    pub poll_interval: Duration,
    /// On demand: connect only while frames are wanted, and linger this
    /// long after; `None` is always connected.
    pub on_demand: Option<Duration>,
}

/// Why a camera session ended.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// TCP/TLS/HTTP failure.
    #[error("cannot reach camera {url} ({cause})")]
    Unreachable {
        /// Redacted URL.
        url: String,
        /// Root cause.
        cause: String,
    },
    /// 401/403.
    #[error("camera {url} rejected the credentials ({status})")]
    Unauthorized {
        /// Redacted URL.
        url: String,
        /// HTTP status.
        status: u16,
    },
    /// Any other non-2xx answer.
    #[error("camera {url} answered HTTP {status}")]
    Status {
        /// Redacted URL.
        url: String,
        /// HTTP status.
        status: u16,
    },
    /// Not an MJPEG stream.
    #[error("camera {url} sent '{content_type}', not an MJPEG multipart stream")]
    NotMjpeg {
        /// Redacted URL.
        url: String,
        /// What it sent.
        content_type: String,
    },
    /// No bytes for the stall timeout.
    #[error("camera {url} sent nothing for {secs:.1} s")]
    Stalled {
        /// Redacted URL.
        url: String,
        /// Stall timeout.
        secs: f64,
    },
    /// The body ended.
    #[error("camera {url} closed the stream")]
    Ended {
        /// Redacted URL.
        url: String,
    },
}

impl UpstreamError {
    /// A short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            UpstreamError::Unreachable { .. } => "unreachable",
            UpstreamError::Unauthorized { .. } => "unauthorized",
            UpstreamError::Status { .. } => "http_status",
            UpstreamError::NotMjpeg { .. } => "not_mjpeg",
            UpstreamError::Stalled { .. } => "stalled",
            UpstreamError::Ended { .. } => "ended",
        }
    }
}

/// The HTTP client used for cameras: rustls with the system roots, plus
/// `ca_cert` (PEM) when given; `insecure` accepts any certificate.
pub fn client(ca_cert: Option<&std::path::Path>, insecure: bool) -> Result<reqwest::Client, String> {
    crate::install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("mjpeg-relay/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(5))
        .tcp_keepalive(Duration::from_secs(15))
        .tcp_nodelay(true)
        .redirect(reqwest::redirect::Policy::limited(5));
    if let Some(path) = ca_cert {
        let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        for cert in
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| format!("{}: {e}", path.display()))?
        {
            builder = builder.add_root_certificate(cert);
        }
    }
    if insecure {
        tracing::warn!("--source-insecure: the camera's TLS certificate is not checked");
        builder = builder.danger_accept_invalid_certs(true);
    }
    builder.build().map_err(|e| e.to_string())
}

impl Upstream {
    /// Connects, reads and reconnects until `shutdown` is cancelled.
    pub async fn run(self, client: reqwest::Client, shutdown: CancellationToken) {
        let Some(linger) = self.on_demand else {
            self.run_connected(&client, &shutdown).await;
            self.hub.set_state(SourceState::Idle, None);
            return;
        };
        // On demand: connected only while viewers (or waiting snapshot
        // requests) want frames, and `linger` after the last one left.
        let mut demand = self.hub.demand();
        loop {
            self.hub.set_state(SourceState::Idle, None);
            tokio::select! {
                () = shutdown.cancelled() => return,
                wanted = demand.wait_for(|d| *d > 0) => if wanted.is_err() { return },
            }
            tracing::info!(
                "a viewer is waiting: connecting to camera {}",
                self.url.redacted()
            );
            let mut watch = demand.clone();
            let unwanted = async move {
                loop {
                    if watch.wait_for(|d| *d == 0).await.is_err() {
                        return;
                    }
                    tokio::select! {
                        () = tokio::time::sleep(linger) => return,
                        back = watch.wait_for(|d| *d > 0) => if back.is_err() { return },
                    }
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.run_connected(&client, &shutdown) => return,
                () = unwanted => tracing::info!(
                    "no viewers for {}: disconnecting from camera {}",
                    human(linger),
                    self.url.redacted()
                ),
            }
        }
    }

    /// Connects, reads and reconnects until `shutdown` is cancelled.
    async fn run_connected(&self, client: &reqwest::Client, shutdown: &CancellationToken) {
        let mut backoff = Backoff::new(self.reconnect_min, self.reconnect_max);
        let mut first = true;
        // Whether the camera asked for Digest (then Basic is never sent).
        let mut digest = false;
        let mut offline_since = None;
        loop {
            if !first {
                self.hub.counters.reconnects.fetch_add(1, Ordering::Relaxed);
            }
            first = false;
            self.hub.set_state(SourceState::Connecting, None);
            let started = tokio::time::Instant::now();
            let mut got_frames = false;
            // One span per connection attempt, with its outcome.
            let span = tracing::info_span!(
                "upstream.connect",
                url = %self.url.redacted(),
                outcome = tracing::field::Empty,
                error = tracing::field::Empty,
                trace_id = tracing::field::Empty,
            );
            crate::telemetry::record_trace_id(&span);
            let session = tracing::Instrument::instrument(
                self.session(client, &mut got_frames, &mut digest),
                span.clone(),
            );
            let error = tokio::select! {
                () = shutdown.cancelled() => {
                    span.record("outcome", "shutdown");
                    break;
                }
                error = session => error,
            };
            span.record("outcome", error.kind());
            span.record("error", error.to_string());
            drop(span);
            if got_frames && started.elapsed() >= HEALTHY_AFTER {
                backoff.reset();
            }
            self.hub.count_error(error.kind());
            let (state, delay) = match error {
                UpstreamError::Unauthorized { .. } => (SourceState::Unauthorized, self.reconnect_max),
                _ => (SourceState::Reconnecting, backoff.next()),
            };
            tracing::warn!("{error}; retrying in {}", human(delay));
            self.hub.set_state(state, Some(error.to_string()));
            if got_frames || offline_since.is_none() {
                offline_since = Some(std::time::SystemTime::now());
            }
            if !self
                .wait_to_retry(
                    delay,
                    shutdown,
                    offline_since.unwrap_or_else(std::time::SystemTime::now),
                )
                .await
            {
                break;
            }
        }
        self.hub.set_state(SourceState::Idle, None);
    }

    /// Waits `delay` before the next attempt; meanwhile, once the camera has
    /// sent frames, shows viewers the feed-lost card once per placeholder
    /// interval, at the size of the last frame. `false` on shutdown.
    async fn wait_to_retry(
        &self,
        delay: Duration,
        shutdown: &CancellationToken,
        since: std::time::SystemTime,
    ) -> bool {
        let until = tokio::time::Instant::now() + delay;
        loop {
            let mut next = until;
            if let (Some(interval), true) = (self.placeholder, self.hub.has_real_frame()) {
                let (width, height) = self
                    .hub
                    .latest()
                    .and_then(|f| crate::demo::dimensions(&f.jpeg))
                    .unwrap_or((640, 480));
                let retry_in = until.saturating_duration_since(tokio::time::Instant::now());
                let card = tokio::task::spawn_blocking(move || {
                    let settings = crate::config::DemoSettings {
                        fps: 1,
                        width,
                        height,
                    };
                    crate::demo::Pattern::new(settings).render_offline(since, retry_in)
                })
                .await;
                if let Ok(card) = card {
                    self.hub.publish_placeholder(card);
                }
                next = next.min(tokio::time::Instant::now() + interval);
            }
            tokio::select! {
                () = shutdown.cancelled() => return false,
                () = tokio::time::sleep_until(next) => {}
            }
            if tokio::time::Instant::now() >= until {
                return true;
            }
        }
    }

    /// A snapshot-only camera: each answer is one JPEG; fetch the next one
    /// every poll interval (keep-alive reuses the connection).
    async fn poll(
        &self,
        client: &reqwest::Client,
        mut response: reqwest::Response,
        got_frames: &mut bool,
        digest: &mut bool,
    ) -> UpstreamError {
        let url = self.url.redacted();
        tracing::info!(
            "camera {url} serves single pictures; polling every {}",
            human(self.poll_interval)
        );
        loop {
            let started = tokio::time::Instant::now();
            let body = match self.read(response.bytes()).await {
                Ok(body) => body,
                Err(e) => return e,
            };
            if body.starts_with(&[0xFF, 0xD8]) && body.len() <= self.max_frame_size {
                self.hub.publish(body);
                *got_frames = true;
            } else {
                self.hub.counters.parts_dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    "camera {url} answered a picture that is not a JPEG (or too large); skipped it"
                );
            }
            tokio::time::sleep_until(started + self.poll_interval).await;
            response = match self.open(client, digest).await {
                Ok(response) => response,
                Err(e) => return e,
            };
        }
    }

    /// Reads from the camera: no bytes within the stall timeout is a stall.
    async fn read<T>(
        &self,
        read: impl std::future::Future<Output = reqwest::Result<T>>,
    ) -> Result<T, UpstreamError> {
        match tokio::time::timeout(self.stall_timeout, read).await {
            Err(_) => Err(UpstreamError::Stalled {
                url: self.url.redacted(),
                secs: self.stall_timeout.as_secs_f64(),
            }),
            Ok(Err(e)) => Err(UpstreamError::Unreachable {
                url: self.url.redacted(),
                cause: root_cause(&e),
            }),
            Ok(Ok(value)) => Ok(value),
        }
    }

    /// Sends the GET with the given credentials.
    async fn send(&self, client: &reqwest::Client, auth: Auth) -> Result<reqwest::Response, UpstreamError> {
        let request = client.get(self.url.url.clone());
        let request = match auth {
            Auth::None => request,
            Auth::Basic => match &self.url.user {
                Some(user) => request.basic_auth(user, self.url.password.as_deref()),
                None => request,
            },
            Auth::Digest(answer) => {
                let mut value = http::HeaderValue::from_str(&answer).map_err(|_| {
                    UpstreamError::Unreachable {
                    url: self.url.redacted(),
                    cause: "cannot answer the camera's Digest challenge (it holds characters a header cannot)"
                        .into(),
                }
                })?;
                value.set_sensitive(true);
                request.header(http::header::AUTHORIZATION, value)
            }
        };
        match tokio::time::timeout(RESPONSE_TIMEOUT, request.send()).await {
            Err(_) => Err(UpstreamError::Unreachable {
                url: self.url.redacted(),
                cause: format!("no answer within {} s", RESPONSE_TIMEOUT.as_secs()),
            }),
            Ok(Err(e)) => Err(UpstreamError::Unreachable {
                url: self.url.redacted(),
                cause: root_cause(&e),
            }),
            Ok(Ok(response)) => Ok(response),
        }
    }

    /// One GET with the camera's authentication (Basic, or Digest when the
    /// camera asks for it), checked for a 2xx answer.
    async fn open(
        &self,
        client: &reqwest::Client,
        digest: &mut bool,
    ) -> Result<reqwest::Response, UpstreamError> {
        let url = self.url.redacted();
        // Basic credentials go with the first request (as cameras expect),
        // unless this camera has asked for Digest before: then the password
        // only ever travels hashed.
        let first = if *digest { Auth::None } else { Auth::Basic };
        let mut response = self.send(client, first).await?;
        // A Digest challenge (RFC 7616): answer it; a stale nonce is
        // re-challenged once more with the fresh nonce.
        for _ in 0..2 {
            let Some(user) = &self.url.user else { break };
            let Some(mut prompt) = digest_challenge(&response) else {
                break;
            };
            *digest = true;
            let uri = match self.url.url.query() {
                Some(q) => format!("{}?{q}", self.url.url.path()),
                None => self.url.url.path().to_string(),
            };
            let context =
                digest_auth::AuthContext::new(user.as_str(), self.url.password.as_deref().unwrap_or(""), uri);
            let answer = prompt.respond(&context).map_err(|e| UpstreamError::Unreachable {
                url: url.clone(),
                cause: format!("cannot answer the camera's Digest challenge ({e})"),
            })?;
            response = self.send(client, Auth::Digest(answer.to_header_string())).await?;
            let stale = digest_challenge(&response).is_some_and(|p| p.stale);
            if !stale {
                break;
            }
        }
        let status = response.status().as_u16();
        if status == 401 || status == 403 {
            return Err(UpstreamError::Unauthorized { url, status });
        }
        if !response.status().is_success() {
            return Err(UpstreamError::Status { url, status });
        }
        Ok(response)
    }

    /// One connection: returns why it ended.
    async fn session(
        &self,
        client: &reqwest::Client,
        got_frames: &mut bool,
        digest: &mut bool,
    ) -> UpstreamError {
        let url = self.url.redacted();
        let response = match self.open(client, digest).await {
            Ok(response) => response,
            Err(e) => return e,
        };
        let content_type = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        // Cameras (and ffmpeg's own HTTP server) often send a generic type
        // such as application/octet-stream: the parser learns the boundary
        // from the body. A single picture means a snapshot-only camera.
        let single_image = content_type.to_ascii_lowercase().starts_with("image/");
        match (self.mode, single_image) {
            (SourceMode::Snapshot, _) | (SourceMode::Auto, true) => {
                return self.poll(client, response, got_frames, digest).await;
            }
            (SourceMode::Mjpeg, true) => return UpstreamError::NotMjpeg { url, content_type },
            _ => {}
        }
        let mut response = response;
        let boundary = boundary_from_content_type(&content_type);
        let mut parser = Parser::new(boundary.as_deref(), self.max_frame_size);
        tracing::info!("connected to camera {url}");
        loop {
            let chunk = match self.read(response.chunk()).await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => return UpstreamError::Ended { url },
                Err(e) => return e,
            };
            parser.push(chunk);
            while let Some(event) = parser.next() {
                match event {
                    Event::Frame(jpeg) => {
                        self.hub.publish(jpeg);
                        *got_frames = true;
                    }
                    Event::Skipped(why) => {
                        self.hub.counters.parts_dropped.fetch_add(1, Ordering::Relaxed);
                        match why {
                            Skip::TooLarge => tracing::warn!(
                                "camera {url} sent a part larger than --max-frame-size ({} bytes); dropped it",
                                self.max_frame_size
                            ),
                            Skip::NotJpeg => {
                                tracing::debug!("camera {url} sent a part that is not a JPEG; skipped it")
                            }
                            Skip::BadHeaders => {
                                tracing::warn!("camera {url} sent unreadable part headers; skipped the part")
                            }
                        }
                    }
                }
            }
        }
    }
}

/// What a request to the camera carries to authenticate.
enum Auth {
    /// Nothing (a camera that asked for Digest before gets no Basic).
    None,
    /// HTTP Basic from the URL's credentials, if it has a user.
    Basic,
    /// The answer to the camera's Digest challenge.
    Digest(String),
}

/// The Digest challenge of a 401 answer, if it has one.
fn digest_challenge(response: &reqwest::Response) -> Option<digest_auth::WwwAuthenticateHeader> {
    if response.status() != reqwest::StatusCode::UNAUTHORIZED {
        return None;
    }
    response
        .headers()
        .get_all(http::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(parse_digest_challenge)
}

/// A `WWW-Authenticate` value, if it is a Digest challenge the relay can
/// answer (anything else, however malformed, is `None`).
pub fn parse_digest_challenge(value: &str) -> Option<digest_auth::WwwAuthenticateHeader> {
    let scheme = value.trim_start().get(..6)?;
    if !scheme.eq_ignore_ascii_case("digest") {
        return None;
    }
    digest_auth::parse(value).ok()
}

/// Exponential backoff with ±20 % jitter.
#[derive(Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// From `min`, doubling up to `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        Self { min, max, next: min }
    }

    /// Starts again from `min`.
    pub fn reset(&mut self) {
        self.next = self.min;
    }

    /// The next delay.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        // Jitter spreads relays that lost the same camera at the same time.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let factor = 0.8 + f64::from(nanos % 400) / 1000.0;
        base.mul_f64(factor).min(self.max)
    }
}

/// The innermost error message: "connection refused", not a chain of wrappers.
fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cause = e;
    while let Some(source) = cause.source() {
        cause = source;
    }
    let text = cause.to_string();
    // "Connection refused (os error 111)" reads better without the errno.
    match text.find(" (os error") {
        Some(at) => text[..at].to_lowercase(),
        None => text,
    }
}

fn human(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(4));
        let delays: Vec<_> = (0..6).map(|_| b.next()).collect();
        assert!(delays[0] >= Duration::from_millis(400) && delays[0] <= Duration::from_millis(600));
        assert!(delays[5] <= Duration::from_secs(4) && delays[5] >= Duration::from_millis(3200));
        b.reset();
        assert!(b.next() <= Duration::from_millis(600));
    }
}
