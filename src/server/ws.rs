//! `/ws`: the stream over WebSocket (hyper's upgrade + tungstenite's codec).
//! One binary message per frame (the JPEG as the camera sent it, never
//! copied), or with `?format=base64` one text message of base64 per frame,
//! as the original Python relay sent. The newest frame wins: a viewer whose
//! socket is slow skips frames. The server pings idle peers so proxies keep
//! the connection, answers the peer's pings, and on shutdown sends a close
//! frame (1001 going away) before letting go.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use base64::Engine as _;
use futures_util::{SinkExt as _, StreamExt as _};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::hub::Hub;

use super::{Body, empty, text};

/// How often an otherwise quiet connection is pinged.
const PING_EVERY: Duration = Duration::from_secs(15);
/// How long the close handshake may take on shutdown.
const CLOSE_WAIT: Duration = Duration::from_secs(1);
/// Viewers send nothing but control frames; cap what we buffer from them.
const MAX_INCOMING: usize = 64 << 10;

/// What one WebSocket viewer gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A binary message of raw JPEG bytes per frame.
    Binary,
    /// A text message of base64 JPEG per frame.
    Base64,
}

/// `?format=binary|base64`.
pub fn query_format(query: Option<&str>) -> Result<Format, String> {
    let value = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("format="));
    match value {
        None | Some("binary") => Ok(Format::Binary),
        Some("base64") => Ok(Format::Base64),
        Some(other) => Err(format!("invalid format '{other}': expected binary or base64\n")),
    }
}

/// Answers an upgrade request with `101` and runs the session on `sessions`
/// once hyper hands over the connection; anything else gets `426`.
pub fn upgrade(
    mut req: Request<Incoming>,
    hub: Arc<Hub>,
    shutdown: CancellationToken,
    sessions: &TaskTracker,
    min_interval: Option<Duration>,
    format: Format,
) -> Response<Body> {
    let Some(key) = handshake_key(req.headers()) else {
        return upgrade_required();
    };
    let accept = derive_accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(&mut req);
    sessions.spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let config = WebSocketConfig::default().max_message_size(Some(MAX_INCOMING));
                let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                    .await;
                session(ws, hub, shutdown, min_interval, format).await;
            }
            Err(e) => tracing::debug!("WebSocket upgrade failed: {e}"),
        }
    });
    let mut resp = Response::new(empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    resp
}

/// `426`: a plain request (or `HEAD`) to `/ws`.
pub fn upgrade_required() -> Response<Body> {
    let mut resp = text(
        StatusCode::UPGRADE_REQUIRED,
        "this is a WebSocket endpoint: connect with a WebSocket client (ws:// or wss://)\n",
        false,
    );
    let h = resp.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
    resp
}

/// The `Sec-WebSocket-Key` of a valid version-13 upgrade request.
fn handshake_key(h: &HeaderMap) -> Option<&HeaderValue> {
    let has_token = |name: header::HeaderName, token: &str| {
        h.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    let ok = has_token(header::CONNECTION, "upgrade")
        && has_token(header::UPGRADE, "websocket")
        && h.get(header::SEC_WEBSOCKET_VERSION).is_some_and(|v| v == "13");
    ok.then(|| h.get(header::SEC_WEBSOCKET_KEY)).flatten()
}

async fn session<S>(
    ws: WebSocketStream<S>,
    hub: Arc<Hub>,
    shutdown: CancellationToken,
    min_interval: Option<Duration>,
    format: Format,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut guard = hub.viewer(crate::hub::Endpoint::Ws);
    let (mut tx, mut rx) = ws.split();
    let mut frames = hub.subscribe();
    let mut last_sent: Option<Instant> = None;
    let mut last_seq = 0;
    let mut ping_at = Instant::now() + PING_EVERY;
    loop {
        let ready_at = min_interval.zip(last_sent).map(|(i, l)| l + i);
        let next_frame = async {
            if let Some(at) = ready_at {
                tokio::time::sleep_until(at).await;
            }
            frames.changed().await
        };
        let message = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            incoming = rx.next() => match incoming {
                // tungstenite answers pings and close frames by itself.
                Some(Ok(_)) => continue,
                Some(Err(e)) => {
                    tracing::debug!("WebSocket viewer gone: {e}");
                    return;
                }
                None => return,
            },
            changed = next_frame => {
                if changed.is_err() {
                    break;
                }
                let Some(frame) = frames.borrow_and_update().clone() else { continue };
                let c = &hub.counters;
                if min_interval.is_none() && last_seq != 0 && frame.seq > last_seq + 1 {
                    c.frames_skipped.fetch_add(frame.seq - last_seq - 1, Ordering::Relaxed);
                }
                last_seq = frame.seq;
                last_sent = Some(Instant::now());
                c.frames_out.fetch_add(1, Ordering::Relaxed);
                guard.frame_sent();
                let message = match format {
                    Format::Binary => Message::Binary(frame.jpeg),
                    Format::Base64 => Message::text(
                        base64::engine::general_purpose::STANDARD.encode(&frame.jpeg),
                    ),
                };
                c.bytes_out.fetch_add(message.len() as u64, Ordering::Relaxed);
                guard.bytes_sent(message.len());
                message
            },
            () = tokio::time::sleep_until(ping_at) => Message::Ping(bytes::Bytes::new()),
        };
        ping_at = Instant::now() + PING_EVERY;
        if let Err(e) = tx.send(message).await {
            tracing::debug!("WebSocket viewer gone: {e}");
            return;
        }
    }
    guard.closing("relay shutting down");
    // Shutdown (or the source went away): close cleanly, wait briefly for the
    // peer's close frame, then let go.
    let close = Message::Close(Some(CloseFrame {
        code: CloseCode::Away,
        reason: "mjpeg-relay is shutting down".into(),
    }));
    if tx.send(close).await.is_ok() {
        let _ = tokio::time::timeout(CLOSE_WAIT, async { while let Some(Ok(_)) = rx.next().await {} }).await;
    }
}
