//! The viewer port: routes (`/stream`, `/snapshot`, `/status`,
//! `/status.json`, `/ws`, `/view`) and the accept loop shared with the admin
//! port (plain TCP or TLS). Every connection is a task on a `TaskTracker`; on
//! shutdown the listener closes, keep-alive turns off and each endless body
//! ends itself.

mod cors;
mod options;
mod status;
mod stream;
mod ws;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::hub::Hub;
use crate::mjpeg::encode;

pub use options::ViewerOptions;
pub use status::{Status, status_json};

/// Response body type of both servers.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

const NO_CACHE: HeaderValue = HeaderValue::from_static("no-cache, no-store, must-revalidate");

/// What the viewer routes need.
#[derive(Debug, Clone)]
pub struct Viewers {
    /// The source's hub.
    pub hub: Arc<Hub>,
    /// Cancelled when streams must end.
    pub shutdown: CancellationToken,
    /// Rate caps, idle repeat, CORS.
    pub options: Arc<ViewerOptions>,
    /// WebSocket sessions (they outlive their HTTP connection task); wait
    /// for them after `shutdown` is cancelled.
    pub sessions: TaskTracker,
    /// Every source by name, the primary (`hub`) first: `/NAME/stream` etc.
    pub sources: Arc<Vec<(String, Arc<Hub>)>>,
}

/// The viewer page (`/` and `/view`).
const VIEW_PAGE: &str = include_str!("view.html");

impl Viewers {
    /// Viewer routes for `hub`, ending streams when `shutdown` is cancelled.
    pub fn new(hub: Arc<Hub>, shutdown: CancellationToken, options: ViewerOptions) -> Self {
        Self {
            hub,
            shutdown,
            options: Arc::new(options),
            sessions: TaskTracker::new(),
            sources: Arc::new(Vec::new()),
        }
    }

    /// Serves `sources` (name → hub, the primary first) under `/NAME/…` too.
    pub fn with_sources(mut self, sources: Vec<(String, Arc<Hub>)>) -> Self {
        self.sources = Arc::new(sources);
        self
    }

    /// The routes of the source a path names (`/front/stream` → the `front`
    /// hub and `/stream`), or of the primary source.
    fn for_path(&self, path: &str) -> (Self, String) {
        if let Some((name, rest)) = path.strip_prefix('/').and_then(|p| p.split_once('/')) {
            if let Some((_, hub)) = self.sources.iter().find(|(n, _)| n == name) {
                let viewers = Self {
                    hub: hub.clone(),
                    ..self.clone()
                };
                return (viewers, format!("/{rest}"));
            }
        }
        (self.clone(), path.to_string())
    }

    /// Answers one viewer request.
    pub async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        use tracing::Instrument;
        let (viewers, path) = self.for_path(req.uri().path());
        let path = path.as_str();
        // Request spans for the short answers; streams get a session span.
        let span = if matches!(path, "/snapshot" | "/status" | "/status.json") {
            let span = tracing::info_span!(
                "http.request",
                http.route = path,
                http.method = %req.method(),
                trace_id = tracing::field::Empty,
            );
            crate::telemetry::record_trace_id(&span);
            span
        } else {
            tracing::Span::none()
        };
        let cors = self.options.cors.as_ref().map(|cors| {
            let origin = req.headers().get(header::ORIGIN).cloned();
            (cors, req.method().clone(), origin)
        });
        let mut resp = viewers.route(req, path).instrument(span).await;
        if let Some((cors, method, origin)) = cors {
            cors::decorate(cors, &method, origin.as_ref(), &mut resp);
        }
        // Every viewer answer, errors included, must never be cached.
        resp.headers_mut().insert(header::CACHE_CONTROL, NO_CACHE);
        resp
    }

    async fn route(&self, req: Request<Incoming>, path: &str) -> Response<Body> {
        let head = req.method() == Method::HEAD;
        let known = matches!(
            path,
            "/" | "/view" | "/stream" | "/snapshot" | "/status" | "/status.json" | "/ws"
        );
        if !known {
            return text(
                StatusCode::NOT_FOUND,
                "not found: try /view, /stream, /snapshot, /ws or /status\n",
                head,
            );
        }
        if req.method() == Method::OPTIONS {
            if let Some(cors) = &self.options.cors {
                return cors::preflight(cors, req.headers());
            }
        }
        if req.method() != Method::GET && !head {
            let mut resp = text(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed: use GET or HEAD\n",
                head,
            );
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return resp;
        }
        match path {
            "/stream" => match (
                query_fps(req.uri().query()),
                stream::query_early(req.uri().query()),
            ) {
                (Ok(fps), Ok(early)) => self.stream(fps, early, head),
                (Err(why), _) | (_, Err(why)) => text(StatusCode::BAD_REQUEST, &why, head),
            },
            "/ws" => match (query_fps(req.uri().query()), ws::query_format(req.uri().query())) {
                (Ok(_), Ok(_)) if head => ws::upgrade_required(),
                (Ok(fps), Ok(format)) => ws::upgrade(
                    req,
                    self.hub.clone(),
                    self.shutdown.clone(),
                    &self.sessions,
                    self.options.min_interval(fps),
                    format,
                ),
                (Err(why), _) | (_, Err(why)) => text(StatusCode::BAD_REQUEST, &why, head),
            },
            "/" | "/view" => full(
                StatusCode::OK,
                "text/html; charset=utf-8",
                Bytes::from_static(VIEW_PAGE.as_bytes()),
                head,
            ),
            "/snapshot" => self.snapshot(head).await,
            "/status" => {
                let page = status::html(&self.status());
                full(
                    StatusCode::OK,
                    "text/html; charset=utf-8",
                    Bytes::from(page),
                    head,
                )
            }
            "/status.json" => {
                let json = status_json(&self.status());
                full(StatusCode::OK, "application/json", Bytes::from(json), head)
            }
            _ => text(StatusCode::NOT_FOUND, "not found\n", head),
        }
    }

    fn stream(&self, fps: Option<f64>, early: bool, head: bool) -> Response<Body> {
        let body = if head {
            empty()
        } else {
            stream::body(
                self.hub.clone(),
                self.shutdown.clone(),
                self.options.min_interval(fps),
                self.options.idle_repeat,
                early,
            )
        };
        let mut resp = Response::new(body);
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(encode::CONTENT_TYPE),
        );
        h.insert("x-accel-buffering", HeaderValue::from_static("no"));
        h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        resp
    }

    async fn snapshot(&self, head: bool) -> Response<Body> {
        if let Some(timeout) = self.options.on_demand_snapshot {
            if self.hub.snapshot().state != crate::hub::SourceState::Streaming {
                // Nobody is watching: connect, wait for a fresh frame, linger.
                let _demand = self.hub.want_frame();
                let mut frames = self.hub.subscribe();
                frames.mark_unchanged();
                let fresh = tokio::time::timeout(timeout, async {
                    loop {
                        if frames.changed().await.is_err() {
                            return false;
                        }
                        if self.hub.snapshot().state == crate::hub::SourceState::Streaming {
                            return true;
                        }
                    }
                })
                .await;
                if !matches!(fresh, Ok(true)) {
                    return text(
                        StatusCode::GATEWAY_TIMEOUT,
                        "the camera sent no frame in time (--snapshot-timeout)\n",
                        head,
                    );
                }
            }
        }
        match self.hub.latest() {
            Some(frame) => {
                let mut resp = full(StatusCode::OK, "image/jpeg", frame.jpeg, head);
                resp.headers_mut().insert(
                    header::CONTENT_DISPOSITION,
                    HeaderValue::from_static("inline; filename=\"snapshot.jpg\""),
                );
                resp
            }
            None => {
                let mut resp = text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "no frame from the camera yet; retry shortly\n",
                    head,
                );
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                resp
            }
        }
    }

    fn status(&self) -> Status {
        let mut status = Status::of(&self.hub);
        if self.sources.len() > 1 {
            status.add_sources(self.sources.iter().map(|(_, hub)| hub.as_ref()));
        }
        status
    }
}

/// `?fps=N`: a positive number; other parameters (such as `t=` cache
/// busters) are ignored.
fn query_fps(query: Option<&str>) -> Result<Option<f64>, String> {
    let Some(query) = query else { return Ok(None) };
    for pair in query.split('&') {
        if let Some(value) = pair.strip_prefix("fps=") {
            return match value.parse::<f64>() {
                Ok(fps) if fps.is_finite() && fps > 0.0 => Ok(Some(fps.min(1000.0))),
                _ => Err(format!(
                    "invalid fps '{value}': expected a number above 0, e.g. fps=5\n"
                )),
            };
        }
    }
    Ok(None)
}

/// A complete response with `Content-Length`; `head` drops the body but
/// keeps the length.
pub fn full(status: StatusCode, content_type: &'static str, body: Bytes, head: bool) -> Response<Body> {
    let len = body.len();
    let body = if head {
        empty()
    } else {
        Full::new(body).boxed_unsync()
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    resp
}

/// A plain-text response.
pub fn text(status: StatusCode, body: &str, head: bool) -> Response<Body> {
    full(
        status,
        "text/plain; charset=utf-8",
        Bytes::copy_from_slice(body.as_bytes()),
        head,
    )
}

pub(crate) fn empty() -> Body {
    Empty::new().boxed_unsync()
}

/// Accepts connections on `listener` and answers them with `handler` until
/// `shutdown` is cancelled, then stops accepting and waits for open
/// connections to finish.
pub async fn serve<H, F>(listener: TcpListener, shutdown: CancellationToken, handler: H)
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    serve_with(listener, None, shutdown, handler).await;
}

/// [`serve`], over TLS when `tls` is given (HTTP/2 or HTTP/1.1 as ALPN
/// chose; the auto builder also takes HTTP/2 with prior knowledge).
pub async fn serve_with<H, F>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shutdown: CancellationToken,
    handler: H,
) where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let connections = TaskTracker::new();
    let builder = Arc::new(auto::Builder::new(TokioExecutor::new()));
    loop {
        let accepted = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: keep serving the
                // viewers we have, try again shortly.
                tracing::warn!("cannot accept a connection ({e}); retrying in 100 ms");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Frames must leave as soon as they are written.
        let _ = tcp.set_nodelay(true);
        let handler = handler.clone();
        let builder = builder.clone();
        let shutdown = shutdown.clone();
        let tls = tls.clone();
        connections.spawn(async move {
            match tls {
                None => serve_connection(tcp, peer, &builder, shutdown, handler).await,
                Some(acceptor) => {
                    // The handshake runs in the connection's task, so a slow
                    // or silent client never holds up the accept loop.
                    let handshake = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp));
                    let stream = tokio::select! {
                        () = shutdown.cancelled() => return,
                        done = handshake => match done {
                            Ok(Ok(stream)) => stream,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, "TLS handshake failed: {e}");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                                return;
                            }
                        },
                    };
                    serve_connection(stream, peer, &builder, shutdown, handler).await;
                }
            }
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// How long a client may take to finish the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

async fn serve_connection<I, H, F>(
    io: I,
    peer: SocketAddr,
    builder: &auto::Builder<TokioExecutor>,
    shutdown: CancellationToken,
    handler: H,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let service = service_fn(move |req| {
        let handler = handler.clone();
        async move { Ok::<_, Infallible>(handler(req).await) }
    });
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        log_connection_error(peer, &*e);
    }
}

fn log_connection_error(peer: SocketAddr, e: &(dyn std::error::Error + 'static)) {
    // Viewers closing the tab mid-frame are normal; say so quietly.
    let mut ordinary = false;
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cause {
        if let Some(h) = err.downcast_ref::<hyper::Error>() {
            ordinary |= h.is_incomplete_message() || h.is_canceled() || h.is_closed();
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            ordinary |= matches!(
                io.kind(),
                BrokenPipe | ConnectionReset | ConnectionAborted | UnexpectedEof
            );
        }
        cause = err.source();
    }
    if ordinary {
        tracing::debug!(%peer, "viewer connection ended: {e}");
    } else {
        tracing::info!(%peer, "viewer connection error: {e}");
    }
}
