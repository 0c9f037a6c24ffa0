//! Ingest from real cameras: HTTPS cameras (self-signed: refused by default,
//! accepted with --source-insecure or with the CA file), a real ffmpeg
//! camera, and the reconnect flags.

mod common;
mod tools;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use mjpeg_relay::config::{Config, Source, SourceUrl};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tools::require_tool;

/// An HTTPS MJPEG camera with a fresh self-signed certificate; returns its
/// URL and the certificate's PEM.
async fn https_camera(frames: Vec<bytes::Bytes>) -> (String, String) {
    mjpeg_relay::install_crypto_provider();
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der()));
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let frames = Arc::new(frames);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let (acceptor, frames) = (acceptor.clone(), frames.clone());
            tokio::spawn(async move {
                // A client that refuses our certificate aborts the handshake.
                if let Ok(tls) = acceptor.accept(tcp).await {
                    serve_camera(tls, frames, 20, Behaviour::Stream, Arc::default()).await;
                }
            });
        }
    });
    (format!("https://{addr}/video"), certified.cert.pem())
}

async fn relay_with(url: &str, tweak: impl FnOnce(&mut Config)) -> TestRelay {
    let mut config = Config::new(Source::Camera(SourceUrl::parse(url).unwrap()));
    config.port = 0;
    config.admin_port = Some(0);
    config.bind = "127.0.0.1".parse().unwrap();
    config.bind_is_default = false;
    config.reconnect_min = Duration::from_millis(100);
    config.reconnect_max = Duration::from_millis(400);
    tweak(&mut config);
    TestRelay::with_config(config).await
}

#[tokio::test]
async fn https_camera_self_signed_is_refused_by_default() {
    let (url, _) = https_camera(jpegs(2, 32, 32)).await;
    let relay = relay_with(&url, |_| {}).await;
    let status = relay
        .wait_status("a TLS failure", |s| {
            s["source"]["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("cannot reach"))
        })
        .await;
    let error = status["source"]["last_error"].as_str().unwrap().to_lowercase();
    assert!(
        error.contains("certificate") || error.contains("issuer"),
        "{error}"
    );
    assert_eq!(status["source"]["frames"], 0);
    relay.stop().await;
}

#[tokio::test]
async fn https_camera_accepted_with_source_insecure() {
    let frames = jpegs(2, 32, 32);
    let (url, _) = https_camera(frames.clone()).await;
    let relay = relay_with(&url, |c| c.source_insecure = true).await;
    let mut viewer = Viewer::connect(relay.viewer, "/stream").await;
    assert!(frames.contains(&viewer.next_frame().await.unwrap()));
    relay.stop().await;
}

#[tokio::test]
async fn https_camera_accepted_with_its_ca_file() {
    let frames = jpegs(2, 32, 32);
    let (url, pem) = https_camera(frames.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("camera-ca.pem");
    std::fs::write(&ca, pem).unwrap();
    let relay = relay_with(&url, |c| c.source_ca_cert = Some(ca.clone())).await;
    let mut viewer = Viewer::connect(relay.viewer, "/stream").await;
    assert!(frames.contains(&viewer.next_frame().await.unwrap()));
    relay.stop().await;
}

#[test]
fn bad_ingest_flags_exit_64() {
    for (args, names) in [
        (vec!["--demo", "--reconnect-min", "0s"], "--reconnect-min"),
        (
            vec!["--demo", "--reconnect-min", "2s", "--reconnect-max", "1s"],
            "--reconnect-max",
        ),
        (
            vec!["--demo", "--source-ca-cert", "/no/such/ca.pem"],
            "--source-ca-cert",
        ),
    ] {
        let out = relay_bin().args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {stderr}");
        assert!(stderr.contains(names), "{stderr}");
    }
}

/// ffmpeg's own MJPEG server as the camera (chunked, `application/octet-stream`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_ffmpeg_camera_is_relayed() {
    if !require_tool("ffmpeg", "-version") {
        return;
    }
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut ffmpeg = std::process::Command::new("ffmpeg")
        .args([
            "-loglevel",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=15",
        ])
        .args(["-c:v", "mjpeg", "-q:v", "5", "-f", "mpjpeg", "-listen", "1"])
        .arg(format!("http://127.0.0.1:{port}/"))
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let relay = relay_with(&format!("http://127.0.0.1:{port}/"), |_| {}).await;
    let mut viewer = Viewer::connect(relay.viewer, "/stream").await;
    let mut last = bytes::Bytes::new();
    for _ in 0..10 {
        let frame = viewer.next_frame().await.expect("stream ended");
        assert!(
            frame.starts_with(&[0xFF, 0xD8]) && frame.ends_with(&[0xFF, 0xD9]),
            "not a whole JPEG"
        );
        assert_ne!(frame, last, "the picture should change");
        last = frame;
    }
    let status = relay.status().await;
    assert_eq!(status["source"]["state"], "streaming");
    assert_eq!(status["source"]["parts_dropped"], 0);
    relay.stop().await;
    let _ = ffmpeg.kill();
    let _ = ffmpeg.wait();
}

/// A camera that demands HTTP Digest (RFC 7616, qop=auth) and checks every
/// answer by computing the expected hash itself. Records what it saw.
mod digest_camera {
    use std::collections::HashMap;
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};

    use md5::Digest as _;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    pub const USER: &str = "viewer";
    pub const PASSWORD: &str = "s3cret";
    const REALM: &str = "IP Camera";

    #[derive(Debug, Default)]
    pub struct Seen {
        /// "ok nc=00000001", "bad response", "stale", "challenge"
        pub events: Vec<String>,
        /// Nonce generation: the nonce currently valid is `nonce-{n}`.
        nonce: u32,
    }

    fn hash(algorithm: &str, data: &str) -> String {
        match algorithm {
            "SHA-256" => format!("{:x}", sha2::Sha256::digest(data.as_bytes())),
            _ => format!("{:x}", md5::Md5::digest(data.as_bytes())),
        }
    }

    fn params(header: &str) -> HashMap<String, String> {
        header
            .trim_start()
            .strip_prefix("Digest")
            .unwrap_or("")
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
            .collect()
    }

    /// `algorithm`: "MD5" or "SHA-256". `stale_once`: the first answer's
    /// nonce is declared stale and a new one issued.
    pub async fn start(
        algorithm: &'static str,
        stale_once: bool,
        frames: Vec<bytes::Bytes>,
    ) -> (SocketAddr, Arc<Mutex<Seen>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let shared = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (seen, frames) = (shared.clone(), frames.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tcp.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head).to_string();
                    let auth = head
                        .lines()
                        .find_map(|l| {
                            l.split_once(':')
                                .filter(|(k, _)| k.eq_ignore_ascii_case("authorization"))
                        })
                        .map(|(_, v)| v.trim().to_string());
                    let verdict = {
                        let mut seen = seen.lock().unwrap();
                        let current = format!("nonce-{}", seen.nonce);
                        match auth.filter(|a| a.starts_with("Digest")) {
                            None => {
                                seen.events.push("challenge".into());
                                Err(false)
                            }
                            Some(auth) => {
                                let p = params(&auth);
                                let get = |k: &str| p.get(k).cloned().unwrap_or_default();
                                let ha1 = hash(algorithm, &format!("{USER}:{REALM}:{PASSWORD}"));
                                let ha2 = hash(algorithm, &format!("GET:{}", get("uri")));
                                let expected = hash(
                                    algorithm,
                                    &format!(
                                        "{ha1}:{}:{}:{}:{}:{ha2}",
                                        get("nonce"),
                                        get("nc"),
                                        get("cnonce"),
                                        get("qop")
                                    ),
                                );
                                let valid = get("username") == USER
                                    && get("realm") == REALM
                                    && get("uri") == "/video"
                                    && get("qop") == "auth"
                                    && get("nc").len() == 8
                                    && !get("cnonce").is_empty()
                                    && get("response") == expected;
                                if !valid {
                                    seen.events.push("bad response".into());
                                    Err(false)
                                } else if get("nonce") != current || (stale_once && seen.nonce == 0) {
                                    seen.nonce += 1;
                                    seen.events.push("stale".into());
                                    Err(true)
                                } else {
                                    seen.events.push(format!("ok nc={}", get("nc")));
                                    Ok(())
                                }
                            }
                        }
                    };
                    match verdict {
                        Err(stale) => {
                            let nonce = format!("nonce-{}", seen.lock().unwrap().nonce);
                            let challenge = format!(
                                "Digest realm=\"{REALM}\", qop=\"auth\", algorithm={algorithm}, nonce=\"{nonce}\", opaque=\"o\"{}",
                                if stale { ", stale=true" } else { "" }
                            );
                            let reply = format!(
                                "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: {challenge}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            );
                            let _ = tcp.write_all(reply.as_bytes()).await;
                        }
                        Ok(()) => {
                            let head = "HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=b\r\nConnection: close\r\n\r\n";
                            if tcp.write_all(head.as_bytes()).await.is_err() {
                                return;
                            }
                            for frame in frames.iter().cycle() {
                                let part = format!(
                                    "--b\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
                                    frame.len()
                                );
                                if tcp.write_all(part.as_bytes()).await.is_err()
                                    || tcp.write_all(frame).await.is_err()
                                    || tcp.write_all(b"\r\n").await.is_err()
                                {
                                    return;
                                }
                                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                            }
                        }
                    }
                });
            }
        });
        (addr, seen)
    }
}

async fn digest_relays(algorithm: &'static str, stale_once: bool) {
    let frames = jpegs(2, 32, 32);
    let (addr, seen) = digest_camera::start(algorithm, stale_once, frames.clone()).await;
    let url = format!(
        "http://{}:{}@{addr}/video",
        digest_camera::USER,
        digest_camera::PASSWORD
    );
    let relay = relay_with(&url, |_| {}).await;
    let mut viewer = Viewer::connect(relay.viewer, "/stream").await;
    assert!(frames.contains(&viewer.next_frame().await.unwrap()));
    let events = seen.lock().unwrap().events.clone();
    assert!(events.iter().any(|e| e == "ok nc=00000001"), "{events:?}");
    assert!(!events.iter().any(|e| e == "bad response"), "{events:?}");
    if stale_once {
        assert!(events.iter().any(|e| e == "stale"), "{events:?}");
    }
    relay.stop().await;
}

#[tokio::test]
async fn digest_md5_camera() {
    digest_relays("MD5", false).await;
}

#[tokio::test]
async fn digest_sha256_camera() {
    digest_relays("SHA-256", false).await;
}

#[tokio::test]
async fn digest_stale_nonce_is_answered_again() {
    digest_relays("MD5", true).await;
}

#[tokio::test]
async fn digest_wrong_password_is_reported_as_unauthorized() {
    let (addr, seen) = digest_camera::start("MD5", false, jpegs(1, 32, 32)).await;
    let relay = relay_with(&format!("http://viewer:wrong@{addr}/video"), |_| {}).await;
    let status = relay
        .wait_status("unauthorized", |s| s["source"]["state"] == "unauthorized")
        .await;
    let error = status["source"]["last_error"].as_str().unwrap();
    assert!(error.contains("rejected the credentials (401)"), "{error}");
    assert!(!error.contains("wrong"), "the password leaked: {error}");
    assert!(seen.lock().unwrap().events.iter().any(|e| e == "bad response"));
    relay.stop().await;
}

#[tokio::test]
async fn while_the_camera_is_down_viewers_get_the_offline_card() {
    let frames = jpegs(3, 160, 120);
    let camera = TestCamera::start(frames.clone(), 20, Behaviour::Stream).await;
    let addr = camera.addr;
    let relay = relay_with(&camera.url(), |c| {
        c.placeholder = Some(Duration::from_millis(200));
        c.reconnect_min = Duration::from_secs(2);
        c.reconnect_max = Duration::from_secs(2);
    })
    .await;
    let mut viewer = Viewer::connect(relay.viewer, "/stream").await;
    assert!(frames.contains(&viewer.next_frame().await.unwrap()));
    camera.stop().await;
    // The next frames that are not camera frames are the offline card, at
    // the camera's picture size.
    let card = loop {
        let frame = viewer
            .next_frame()
            .await
            .expect("viewer dropped during the outage");
        if !frames.contains(&frame) {
            break frame;
        }
    };
    assert_eq!(mjpeg_relay::demo::dimensions(&card), Some((160, 120)));
    let frames_in = relay.status().await["source"]["frames"].as_u64().unwrap();
    let second = viewer.next_frame().await.unwrap();
    assert!(
        !frames.contains(&second),
        "the card repeats while the camera is down"
    );
    assert_eq!(
        relay.status().await["source"]["frames"].as_u64().unwrap(),
        frames_in,
        "cards are not counted as camera frames"
    );
    let snapshot = reqwest::get(relay.url("/snapshot")).await.unwrap();
    assert_eq!(
        snapshot.status(),
        200,
        "after the first frame /snapshot shows the card"
    );
    // The camera comes back: camera frames again.
    let camera = TestCamera::start_on(addr, frames.clone(), 20, Behaviour::Stream).await;
    let deadline = std::time::Instant::now() + SOON;
    loop {
        let frame = viewer.next_frame().await.unwrap();
        if frames.contains(&frame) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "camera frames never came back"
        );
    }
    relay.stop().await;
    camera.stop().await;
}

/// An old camera: HTTP/1.0, close-delimited body, a boundary declared with
/// a leading `--` and spaces around `=`, LF-only lines, no Content-Length,
/// `multipart/mixed`, and an extra header per part.
#[tokio::test]
async fn an_http10_camera_with_quirky_framing_is_relayed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let frames = jpegs(3, 48, 32);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = frames.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                continue;
            };
            let frames = served.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = tcp.read(&mut buf).await;
                let head = "HTTP/1.0 200 OK\nContent-Type: multipart/mixed; boundary = --oldcam\n\n";
                if tcp.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                for (i, frame) in frames.iter().cycle().enumerate() {
                    let part = format!("----oldcam\ncontent-type:image/jpeg\nX-Frame: {i}\n\n");
                    if tcp.write_all(part.as_bytes()).await.is_err()
                        || tcp.write_all(frame).await.is_err()
                        || tcp.write_all(b"\n\n").await.is_err()
                    {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(30)).await;
                }
            });
        }
    });
    let relay = relay_with(&format!("http://{addr}/"), |_| {}).await;
    let mut viewer = Viewer::connect(relay.viewer, "/stream").await;
    for _ in 0..4 {
        let frame = viewer.next_frame().await.unwrap();
        assert!(frames.contains(&frame), "frame altered by the relay");
    }
    assert_eq!(relay.status().await["source"]["parts_dropped"], 0);
    relay.stop().await;
}

/// A snapshot-only camera (each GET answers one `image/jpeg`), with
/// keep-alive: the relay polls it and relays the pictures as a stream.
#[tokio::test]
async fn a_snapshot_only_camera_is_polled_with_keep_alive() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let frames = jpegs(4, 48, 32);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (requests, connections) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (req_count, conn_count, served) = (requests.clone(), connections.clone(), frames.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                continue;
            };
            conn_count.fetch_add(1, Ordering::SeqCst);
            let (frames, requests) = (served.clone(), req_count.clone());
            tokio::spawn(async move {
                let mut pending = Vec::new();
                let mut buf = [0u8; 1024];
                loop {
                    while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                        pending.drain(..end + 4);
                        let n = requests.fetch_add(1, Ordering::SeqCst);
                        let frame = &frames[n % frames.len()];
                        let head = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
                            frame.len()
                        );
                        if tcp.write_all(head.as_bytes()).await.is_err()
                            || tcp.write_all(frame).await.is_err()
                        {
                            return;
                        }
                    }
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => pending.extend_from_slice(&buf[..n]),
                    }
                }
            });
        }
    });
    let relay = relay_with(&format!("http://{addr}/snapshot.jpg"), |c| {
        c.poll_interval = Duration::from_millis(50)
    })
    .await;
    let mut viewer = Viewer::connect(relay.viewer, "/stream").await;
    let mut distinct = std::collections::HashSet::new();
    while distinct.len() < 4 {
        let frame = viewer.next_frame().await.unwrap();
        assert!(frames.contains(&frame));
        distinct.insert(frame);
    }
    assert!(requests.load(Ordering::SeqCst) >= 4);
    assert_eq!(
        connections.load(Ordering::SeqCst),
        1,
        "polling should reuse one keep-alive connection"
    );
    assert_eq!(relay.status().await["source"]["state"], "streaming");
    relay.stop().await;
}

#[tokio::test]
async fn on_demand_connects_only_while_someone_watches() {
    use std::sync::atomic::Ordering;
    let frames = jpegs(3, 48, 32);
    let camera = TestCamera::start(frames.clone(), 20, Behaviour::Stream).await;
    let relay = relay_with(&camera.url(), |c| {
        c.on_demand = true;
        c.linger = Duration::from_millis(400);
        c.snapshot_timeout = Duration::from_secs(5);
    })
    .await;
    // Nobody watches: the camera sees no connection, the source is idle.
    relay
        .wait_status("idle", |s| s["source"]["state"] == "idle")
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        camera.connections.load(Ordering::SeqCst),
        0,
        "connected with nobody watching"
    );

    let mut viewer = Viewer::connect(relay.viewer, "/stream").await;
    assert!(frames.contains(&viewer.next_frame().await.unwrap()));
    assert_eq!(camera.connections.load(Ordering::SeqCst), 1);
    drop(viewer);
    // Lingers, then lets go of the camera.
    relay
        .wait_status("idle after linger", |s| s["source"]["state"] == "idle")
        .await;

    // A snapshot with nobody watching connects, answers a fresh frame, lingers.
    let snapshot = reqwest::get(relay.url("/snapshot")).await.unwrap();
    assert_eq!(snapshot.status(), 200);
    assert!(frames.contains(&snapshot.bytes().await.unwrap()));
    assert_eq!(camera.connections.load(Ordering::SeqCst), 2);
    relay
        .wait_status("idle again", |s| s["source"]["state"] == "idle")
        .await;
    relay.stop().await;
    camera.stop().await;
}

#[tokio::test]
async fn on_demand_snapshot_of_a_dead_camera_is_504() {
    let placeholder = TestCamera::start(jpegs(1, 32, 32), 10, Behaviour::Stream).await;
    let addr = placeholder.stop().await;
    let relay = relay_with(&format!("http://{addr}/video"), |c| {
        c.on_demand = true;
        c.snapshot_timeout = Duration::from_millis(500);
    })
    .await;
    let started = std::time::Instant::now();
    let snapshot = reqwest::get(relay.url("/snapshot")).await.unwrap();
    assert_eq!(snapshot.status(), 504);
    assert!(started.elapsed() < SOON);
    relay.stop().await;
}

#[tokio::test]
async fn two_named_sources_side_by_side() {
    let front_frames = jpegs(3, 48, 32);
    let back_frames = jpegs(3, 64, 48);
    let front = TestCamera::start(front_frames.clone(), 20, Behaviour::Stream).await;
    let back = TestCamera::start(back_frames.clone(), 20, Behaviour::Stream).await;
    let back_url = SourceUrl::parse(&back.url()).unwrap();
    let relay = relay_with(&front.url(), |c| {
        c.source_name = "front".into();
        c.named_sources = vec![("back".into(), back_url)];
    })
    .await;
    for (path, frames) in [
        ("/stream", &front_frames),
        ("/front/stream", &front_frames),
        ("/back/stream", &back_frames),
    ] {
        let mut viewer = Viewer::connect(relay.viewer, path).await;
        let frame = viewer.next_frame().await.unwrap();
        assert!(frames.contains(&frame), "{path} served the wrong camera");
    }
    let snapshot = reqwest::get(relay.url("/back/snapshot")).await.unwrap();
    assert_eq!(snapshot.status(), 200);
    assert!(back_frames.contains(&snapshot.bytes().await.unwrap()));
    assert_eq!(
        reqwest::get(relay.url("/nope/stream")).await.unwrap().status(),
        404
    );

    let _watching = Viewer::connect(relay.viewer, "/back/stream").await;
    let status = relay
        .wait_status("one back viewer", |s| s["sources"][1]["clients"] == 1)
        .await;
    let names: Vec<&str> = status["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["front", "back"]);
    assert_eq!(status["sources"][1]["stream"], "/back/stream");
    assert_eq!(status["source"]["name"], "front");
    let html = reqwest::get(relay.url("/status"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains(r#"<a href="/back/stream">back</a>"#), "{html}");
    let metrics = reqwest::get(relay.admin_url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for source in ["front", "back"] {
        let series = format!("mjpeg_relay_frames_received_total{{source=\"{source}\"}}");
        assert!(metrics.contains(&series), "no {series} in /metrics");
    }
    relay.stop().await;
    front.stop().await;
    back.stop().await;
}

#[test]
fn named_sources_from_flags_and_env() {
    use mjpeg_relay::config::{Env, RelayArgs};
    let args = RelayArgs {
        named_sources: vec![
            "front=http://cam1/video".into(),
            "back=http://u:p@cam2/video".into(),
        ],
        ..Default::default()
    };
    let config = Config::from_sources(args, Env::default()).unwrap();
    assert_eq!(config.source_name, "front");
    assert_eq!(config.named_sources.len(), 1);
    assert_eq!(config.named_sources[0].0, "back");
    assert_eq!(config.named_sources[0].1.password.as_deref(), Some("p"));
    let env = Env {
        sources: Some("a=http://cam1/,b=http://cam2/".into()),
        ..Default::default()
    };
    let config = Config::from_sources(RelayArgs::default(), env).unwrap();
    assert_eq!(
        (config.source_name.as_str(), config.named_sources.len()),
        ("a", 1)
    );
    for bad in [
        "stream=http://cam/",
        "no-equals",
        "a=http://x/,a=http://y/",
        "a=ftp://x/",
    ] {
        let env = Env {
            sources: Some(bad.into()),
            ..Default::default()
        };
        let e = Config::from_sources(RelayArgs::default(), env).unwrap_err();
        assert_eq!(e.origin, "MJPEG_RELAY_SOURCES", "{bad}: {e}");
    }
}

/// The password from a file (a mounted Kubernetes secret), through the real
/// binary configured by env only: the camera gets it, the log never shows it,
/// and a missing file is a usage error naming the variable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_from_a_file_reaches_the_camera_only() {
    let camera = TestCamera::start(jpegs(2, 32, 32), 10, Behaviour::Stream).await;
    let dir = std::env::temp_dir().join(format!("mjpeg-relay-secret-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("password");
    std::fs::write(&file, "s3cret-from-file\n").unwrap();
    let file = file.to_str().unwrap().to_string();
    let url = camera.url();
    let mut relay = RelayProcess::spawn_with_env(
        &[],
        &[
            ("MJPEG_RELAY_SOURCE", url.as_str()),
            ("MJPEG_RELAY_SOURCE_USER", "cam"),
            ("MJPEG_RELAY_SOURCE_PASSWORD_FILE", file.as_str()),
        ],
    );
    let mut viewer = Viewer::connect(relay.viewer(), "/stream").await;
    viewer.next_frame().await.unwrap();
    // "cam:s3cret-from-file", without the file's trailing newline.
    let seen = camera.auth_seen.lock().unwrap().clone();
    assert_eq!(
        seen.first().map(String::as_str),
        Some("Basic Y2FtOnMzY3JldC1mcm9tLWZpbGU=")
    );
    let status = relay.status().await.to_string();
    assert!(!status.contains("s3cret"), "{status}");
    relay.terminate();
    let log = tokio::task::spawn_blocking(move || {
        relay.wait_exit(Duration::from_secs(10));
        relay.log()
    })
    .await
    .unwrap();
    assert!(!log.contains("s3cret"), "the log shows the password: {log}");

    let missing = dir.join("absent").to_str().unwrap().to_string();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mjpeg-relay"))
        .env("MJPEG_RELAY_SOURCE_PASSWORD_FILE", &missing)
        .arg(&url)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("MJPEG_RELAY_SOURCE_PASSWORD_FILE"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
    camera.stop().await;
}

/// A tiny HTTP server that answers every request with a redirect to
/// `location` (or to itself, for a loop); counts the requests.
async fn redirector(location: Option<String>) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let me = format!("http://{}/loop", listener.local_addr().unwrap());
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (count, target) = (hits.clone(), location.unwrap_or_else(|| me.clone()));
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let target = target.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let _ = tcp.read(&mut buf).await;
                let reply = format!(
                    "HTTP/1.1 302 Found\r\nLocation: {target}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let _ = tcp.write_all(reply.as_bytes()).await;
            });
        }
    });
    (me, hits)
}

/// A camera behind a redirect is followed; a redirect loop is cut off after
/// a bounded number of hops with a clear error, and retried with backoff.
#[tokio::test]
async fn redirects_are_followed_and_bounded() {
    let frames = jpegs(2, 32, 32);
    let camera = TestCamera::start(frames.clone(), 10, Behaviour::Stream).await;
    let (entry, _) = redirector(Some(camera.url())).await;
    let relay = relay_with(&entry, |_| {}).await;
    let mut viewer = Viewer::connect(relay.viewer, "/stream").await;
    assert!(frames.contains(&viewer.next_frame().await.unwrap()));
    relay.stop().await;
    camera.stop().await;

    let (looping, hits) = redirector(None).await;
    // A slow retry, so the count below is of one attempt.
    let relay = relay_with(&looping, |c| {
        c.reconnect_min = Duration::from_secs(20);
        c.reconnect_max = Duration::from_secs(30);
    })
    .await;
    let status = relay
        .wait_status("a redirect error", |s| {
            s["source"]["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("redirect"))
        })
        .await;
    let first_attempt = hits.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(first_attempt, 6, "one request and 5 redirects: {status}");
    assert!(
        status["source"]["last_error"]
            .as_str()
            .unwrap()
            .contains("(too many redirects)"),
        "{status}"
    );
    relay.stop().await;
}
