//! The viewer port: routes (`/stream`, `/snapshot`, `/status`,
//! `/status.json`) and the accept loop shared with the admin port. Every
//! connection is a task on a `TaskTracker`; on shutdown the listener closes,
//! keep-alive turns off and each endless body ends itself.

mod status;
mod stream;

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
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::hub::Hub;
use crate::mjpeg::encode;

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
}

impl Viewers {
    /// Answers one viewer request.
    pub async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        let head = req.method() == Method::HEAD;
        let path = req.uri().path();
        let known = matches!(path, "/" | "/stream" | "/snapshot" | "/status" | "/status.json");
        if !known {
            return text(
                StatusCode::NOT_FOUND,
                "not found: try /stream, /snapshot or /status\n",
                head,
            );
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
        let mut resp = match path {
            "/stream" => match query_fps(req.uri().query()) {
                Ok(fps) => self.stream(fps, head),
                Err(why) => text(StatusCode::BAD_REQUEST, &why, head),
            },
            "/snapshot" => self.snapshot(head),
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
            _ => {
                let mut resp = text(StatusCode::FOUND, "see /status\n", head);
                resp.headers_mut()
                    .insert(header::LOCATION, HeaderValue::from_static("/status"));
                resp
            }
        };
        resp.headers_mut().insert(header::CACHE_CONTROL, NO_CACHE);
        resp
    }

    fn stream(&self, fps: Option<f64>, head: bool) -> Response<Body> {
        let body = if head {
            empty()
        } else {
            stream::body(self.hub.clone(), self.shutdown.clone(), fps)
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

    fn snapshot(&self, head: bool) -> Response<Body> {
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
        Status::of(&self.hub)
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

fn empty() -> Body {
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
        connections.spawn(async move {
            let service = service_fn(move |req| {
                let handler = handler.clone();
                async move { Ok::<_, Infallible>(handler(req).await) }
            });
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tcp), service);
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
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
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
