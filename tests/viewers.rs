//! Viewer features end to end over real sockets: HTTP/1.0 close-delimited
//! streams, idle repeat, rate caps, WebSocket, HTTPS + HTTP/2, CORS, the
//! viewer page.

mod viewers_common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use mjpeg_relay::config::{CorsOrigins, TlsFiles};
use mjpeg_relay::server::ViewerOptions;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use viewers_common::*;

#[tokio::test]
async fn http10_viewer_gets_a_close_delimited_body() {
    let relay = start(demo_config(30));
    let mut s = RawStream::http10(relay.addr, "/stream").await;
    assert!(s.head.starts_with("HTTP/1.0 200"), "{}", s.head);
    let head = s.head.to_ascii_lowercase();
    assert!(
        !head.contains("transfer-encoding"),
        "no chunked for HTTP/1.0: {head}"
    );
    assert!(!head.contains("content-length"), "{head}");
    assert!(head.contains("multipart/x-mixed-replace; boundary=mjpegrelayboundary"));
    s.expect_opening().await;
    for _ in 0..3 {
        let jpeg = s.next_part().await.expect("a frame");
        assert!(mjpeg_relay::demo::timestamp(&jpeg).is_some());
    }
    relay.shutdown.cancel();
    // The body ends with the close delimiter, then the connection closes.
    let rest = s.rest().await;
    assert!(
        rest.ends_with(b"--mjpegrelayboundary--\r\n"),
        "{:?}",
        &rest[rest.len().saturating_sub(40)..]
    );
    relay.stop().await;
}

#[tokio::test]
async fn http10_keep_alive_request_still_ends_by_close() {
    let relay = start(demo_config(30));
    let mut s = RawStream::open(
        relay.addr,
        "GET /stream?t=123 HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n",
    )
    .await;
    assert!(s.head.starts_with("HTTP/1.0 200"), "{}", s.head);
    assert!(!s.head.to_ascii_lowercase().contains("transfer-encoding"));
    s.expect_opening().await;
    assert!(s.next_part().await.is_some());
    relay.stop().await;
}

#[tokio::test]
async fn idle_repeat_resends_the_last_frame_of_a_static_scene() {
    let server = bare(ViewerOptions {
        idle_repeat: Some(Duration::from_millis(100)),
        ..Default::default()
    })
    .await;
    let frame = jpeg(7);
    server.hub.publish(frame.clone());
    let mut s = RawStream::http10(server.addr, "/stream").await;
    s.expect_opening().await;
    // One published frame, several parts: the repeats.
    for _ in 0..4 {
        assert_eq!(s.next_part().await.unwrap(), frame);
    }
    // A new frame still goes out.
    let newer = jpeg(99);
    server.hub.publish(newer.clone());
    let mut seen_new = false;
    for _ in 0..10 {
        if s.next_part().await.unwrap() == newer {
            seen_new = true;
            break;
        }
    }
    assert!(seen_new);
    server.shutdown.cancel();
}

#[tokio::test]
async fn idle_repeat_off_sends_each_frame_once_and_snapshot_never_repeats() {
    let server = bare(ViewerOptions::default()).await;
    let frame = jpeg(1);
    server.hub.publish(frame.clone());
    let mut s = RawStream::http10(server.addr, "/stream").await;
    s.expect_opening().await;
    assert_eq!(s.next_part().await.unwrap(), frame);
    assert!(
        s.quiet_for(Duration::from_millis(500)).await,
        "no repeat when off"
    );
    server.shutdown.cancel();
    assert!(s.next_part().await.is_none(), "closing boundary on shutdown");
}

#[tokio::test]
async fn max_fps_caps_everyone_and_newest_frame_wins() {
    let server = bare(ViewerOptions {
        max_fps: Some(5.0),
        ..Default::default()
    })
    .await;
    let hub = server.hub.clone();
    let publisher = tokio::spawn(async move {
        let mut n = 0u8;
        loop {
            n = n.wrapping_add(1);
            hub.publish(jpeg(n));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    // The viewer asks for more than the cap; the cap wins.
    let mut s = RawStream::http10(server.addr, "/stream?fps=100").await;
    s.expect_opening().await;
    s.next_part().await.unwrap();
    let start = tokio::time::Instant::now();
    for _ in 0..3 {
        s.next_part().await.unwrap();
    }
    // Three more frames at most 5 per second take at least ~600 ms (a
    // lower bound set by the relay's own timer, not a speed claim).
    assert!(
        start.elapsed() >= Duration::from_millis(550),
        "{:?}",
        start.elapsed()
    );
    assert!(
        server
            .hub
            .counters
            .frames_in
            .load(std::sync::atomic::Ordering::Relaxed)
            > 20
    );
    publisher.abort();
    server.shutdown.cancel();
}

#[tokio::test]
async fn bad_query_values_are_400_and_cache_busters_are_ignored() {
    let relay = start(demo_config(30));
    let client = client();
    for path in ["/stream?fps=0", "/stream?fps=abc", "/ws?format=hex"] {
        let resp = client.get(relay.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 400, "{path}");
    }
    // Wait for the first frame through a stream, then snapshot with a cache buster.
    let mut s = RawStream::http10(relay.addr, "/stream?t=99").await;
    s.expect_opening().await;
    s.next_part().await.unwrap();
    let resp = client.get(relay.url("/snapshot?t=1234")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-disposition"],
        "inline; filename=\"snapshot.jpg\""
    );
    relay.stop().await;
}

#[tokio::test]
async fn view_page_at_root_and_view() {
    let relay = start(demo_config(30));
    let client = client();
    for path in ["/", "/view"] {
        let resp = client.get(relay.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let page = resp.text().await.unwrap();
        assert!(page.contains("<img id=\"mjpeg\" src=\"stream\""), "{page}");
        assert!(page.contains("new WebSocket("));
    }
    // HEAD and plain GET on /ws: 426, no hang.
    let resp = client.head(relay.url("/ws")).send().await.unwrap();
    assert_eq!(resp.status(), 426);
    let resp = client.get(relay.url("/ws")).send().await.unwrap();
    assert_eq!(resp.status(), 426);
    relay.stop().await;
}

#[tokio::test]
async fn websocket_binary_frames_ping_and_close_on_shutdown() {
    let relay = start(demo_config(30));
    let tcp = TcpStream::connect(relay.addr).await.unwrap();
    let (mut ws, resp) = tokio_tungstenite::client_async(format!("ws://{}/ws", relay.addr), tcp)
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    let mut frames = 0;
    let mut pinged = false;
    let mut ponged = false;
    while frames < 5 || !ponged {
        let msg = tokio::time::timeout(DEADLINE, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match msg {
            Message::Binary(jpeg) => {
                assert!(jpeg.starts_with(&[0xFF, 0xD8]) && jpeg.ends_with(&[0xFF, 0xD9]));
                assert!(mjpeg_relay::demo::timestamp(&jpeg).is_some());
                frames += 1;
                if !pinged {
                    ws.send(Message::Ping(Bytes::from_static(b"hi"))).await.unwrap();
                    pinged = true;
                }
            }
            Message::Pong(payload) => {
                assert_eq!(&payload[..], b"hi");
                ponged = true;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    relay.shutdown.cancel();
    let close = loop {
        match tokio::time::timeout(DEADLINE, ws.next()).await.unwrap() {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(close.unwrap().code, CloseCode::Away);
    relay.stop().await;
}

#[tokio::test]
async fn websocket_base64_text_frames() {
    use base64::Engine;
    let relay = start(demo_config(30));
    let tcp = TcpStream::connect(relay.addr).await.unwrap();
    let (mut ws, _) =
        tokio_tungstenite::client_async(format!("ws://{}/ws?format=base64&fps=10", relay.addr), tcp)
            .await
            .unwrap();
    for _ in 0..3 {
        let msg = tokio::time::timeout(DEADLINE, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let Message::Text(text) = msg else {
            panic!("text expected, got {msg:?}")
        };
        let jpeg = base64::engine::general_purpose::STANDARD
            .decode(text.as_str())
            .unwrap();
        assert!(jpeg.starts_with(&[0xFF, 0xD8]) && jpeg.ends_with(&[0xFF, 0xD9]));
    }
    ws.close(None).await.unwrap();
    relay.stop().await;
}

#[tokio::test]
async fn cors_off_by_default_then_preflight_and_origins() {
    let relay = start(demo_config(30));
    let client = client();
    let resp = client
        .request(reqwest::Method::OPTIONS, relay.url("/snapshot"))
        .header("Origin", "https://dash.example")
        .header("Access-Control-Request-Method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    let resp = client
        .get(relay.url("/status.json"))
        .header("Origin", "https://dash.example")
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    relay.stop().await;

    let mut config = demo_config(30);
    config.cors_origin = Some(CorsOrigins::parse("https://dash.example, http://other.example:8080").unwrap());
    let relay = start(config);
    let resp = client
        .request(reqwest::Method::OPTIONS, relay.url("/snapshot"))
        .header("Origin", "https://dash.example")
        .header("Access-Control-Request-Method", "GET")
        .header("Access-Control-Request-Headers", "x-requested-with")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let h = resp.headers();
    assert_eq!(h["access-control-allow-origin"], "https://dash.example");
    assert!(
        h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("GET")
    );
    assert_eq!(h["access-control-allow-headers"], "x-requested-with");
    assert!(h.contains_key("access-control-max-age"));
    let resp = client
        .request(reqwest::Method::OPTIONS, relay.url("/stream"))
        .header("Origin", "https://evil.example")
        .header("Access-Control-Request-Method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    let resp = client
        .get(relay.url("/status.json"))
        .header("Origin", "http://other.example:8080")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "http://other.example:8080"
    );
    assert!(
        resp.headers().get_all("vary").iter().any(|v| v == "Origin"),
        "{:?}",
        resp.headers()
    );
    // A POST is still 405.
    let resp = client.post(relay.url("/snapshot")).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    relay.stop().await;

    let mut config = demo_config(30);
    config.cors_origin = Some(CorsOrigins::Any);
    let relay = start(config);
    let resp = client
        .get(relay.url("/snapshot"))
        .header("Origin", "https://anyone.example")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["access-control-allow-origin"], "*");
    relay.stop().await;
}

fn client() -> reqwest::Client {
    mjpeg_relay::install_crypto_provider();
    reqwest::Client::new()
}

/// A self-signed certificate for `localhost`, written to `dir`.
fn write_cert(dir: &std::path::Path, name: &str) -> (TlsFiles, rcgen::CertifiedKey<rcgen::KeyPair>) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    (TlsFiles { cert, key }, certified)
}

/// A TLS client trusting exactly `cert`, offering `alpn`.
async fn tls_connect(
    addr: std::net::SocketAddr,
    cert: &rcgen::Certificate,
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<TcpStream> {
    mjpeg_relay::install_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der().clone()).unwrap();
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    connector.connect(name, tcp).await.unwrap()
}

#[tokio::test]
async fn one_http2_connection_carries_ten_streams_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (files, certified) = write_cert(dir.path(), "a");
    let mut config = demo_config(30);
    config.tls = Some(files);
    let relay = start(config);

    let tls = tls_connect(relay.addr, &certified.cert, &[b"h2", b"http/1.1"]).await;
    assert_eq!(
        tls.get_ref().1.alpn_protocol(),
        Some(&b"h2"[..]),
        "ALPN chose HTTP/2"
    );
    let (sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .unwrap();
    let conn = tokio::spawn(conn);

    let mut streams = Vec::new();
    for i in 0..10 {
        let mut sender = sender.clone();
        streams.push(tokio::spawn(async move {
            let req = http::Request::get(format!("https://localhost/stream?viewer={i}"))
                .body(http_body_util::Empty::<Bytes>::new())
                .unwrap();
            let resp = sender.send_request(req).await.unwrap();
            assert_eq!(resp.status(), 200);
            assert_eq!(resp.version(), http::Version::HTTP_2);
            assert!(
                resp.headers()["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("multipart/x-mixed-replace")
            );
            let mut body = resp.into_body();
            let mut seen = Vec::new();
            // Three whole parts: four boundary lines.
            while seen
                .windows(22)
                .filter(|w| w == b"--mjpegrelayboundary\r\n")
                .count()
                < 4
            {
                let frame = tokio::time::timeout(DEADLINE, body.frame())
                    .await
                    .unwrap()
                    .unwrap()
                    .unwrap();
                if let Ok(data) = frame.into_data() {
                    seen.extend_from_slice(&data);
                }
            }
            seen.len()
        }));
    }
    // Each of the ten, all on the one connection, got three whole frames.
    for s in streams {
        let bytes = tokio::time::timeout(DEADLINE, s).await.unwrap().unwrap();
        assert!(bytes > 3 * 1000);
    }
    drop(sender);
    relay.stop().await;
    conn.abort();
}

#[tokio::test]
async fn https_http1_and_certificate_reload_on_file_change() {
    let dir = tempfile::tempdir().unwrap();
    let (files, first) = write_cert(dir.path(), "live");
    let mut config = demo_config(30);
    config.tls = Some(files.clone());
    let relay = start(config);

    // HTTP/1.1 over TLS works too.
    let tls = tls_connect(relay.addr, &first.cert, &[b"http/1.1"]).await;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    let req = http::Request::get("/status.json")
        .header("host", "localhost")
        .body(http_body_util::Empty::<Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    drop(sender);
    conn.abort();

    // Replace both files: new handshakes present the new certificate.
    let (_, second) = write_cert(dir.path(), "next");
    std::fs::copy(dir.path().join("next.crt"), &files.cert).unwrap();
    std::fs::copy(dir.path().join("next.key"), &files.key).unwrap();
    let start_wait = tokio::time::Instant::now();
    loop {
        let tcp = TcpStream::connect(relay.addr).await.unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(second.cert.der().clone()).unwrap();
        let config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        if connector.connect(name, tcp).await.is_ok() {
            break;
        }
        assert!(start_wait.elapsed() < DEADLINE, "certificate was not reloaded");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    relay.stop().await;
}

#[tokio::test]
async fn early_headers_follow_each_boundary_when_asked() {
    let server = bare(ViewerOptions::default()).await;
    let frame = jpeg(3);
    server.hub.publish(frame.clone());
    let bad = RawStream::http10(server.addr, "/stream?headers=late").await;
    assert!(bad.head.starts_with("HTTP/1.0 400"), "{}", bad.head);
    let mut s = RawStream::http10(server.addr, "/stream?headers=early").await;
    server.hub.publish(jpeg(4));
    s.wait_for(b"\xFF\xD9\r\n--mjpegrelayboundary\r\nContent-Type: image/jpeg\r\n\r\n")
        .await;
    server.shutdown.cancel();
    let body = s.rest().await;
    let early = b"--mjpegrelayboundary\r\nContent-Type: image/jpeg\r\n\r\n";
    assert!(
        body.starts_with(early),
        "{:?}",
        String::from_utf8_lossy(&body[..60])
    );
    let first = &body[early.len()..];
    assert!(first.starts_with(&[0xFF, 0xD8]));
    // Each frame is followed at once by the boundary and the next part's headers.
    let after = find(
        first,
        b"\xFF\xD9\r\n--mjpegrelayboundary\r\nContent-Type: image/jpeg\r\n\r\n",
    );
    assert!(after.is_some());
    assert!(body.ends_with(b"\r\n--mjpegrelayboundary--\r\n"));
}
