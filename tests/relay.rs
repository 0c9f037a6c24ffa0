//! End-to-end behaviour of the core relay, in-process: a real in-test camera
//! on a real socket, the real relay on port 0, viewers reading bytes.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use mjpeg_relay::config::{DemoSettings, Source};

#[tokio::test]
async fn relays_frames_byte_for_byte_with_correct_framing() {
    let frames = jpegs(8, 160, 120);
    let camera = TestCamera::start(frames.clone(), 30, Behaviour::Stream).await;
    let relay = TestRelay::camera(&camera.url()).await;

    let mut viewer = Viewer::connect(relay.viewer, "/stream").await;
    assert!(viewer.head.starts_with("HTTP/1.1 200"), "{}", viewer.head);
    let head = viewer.head.to_ascii_lowercase();
    assert!(head.contains("content-type: multipart/x-mixed-replace; boundary=mjpegrelayboundary"));
    assert!(head.contains("cache-control: no-cache, no-store, must-revalidate"));
    assert!(head.contains("x-accel-buffering: no"));

    let mut got = Vec::new();
    while got.len() < 12 {
        let frame = viewer.next_frame().await.expect("stream ended");
        let index = frames
            .iter()
            .position(|f| *f == frame)
            .expect("frame differs from every camera frame");
        got.push(index);
    }
    // In camera order (a frame may be skipped, never reordered).
    for pair in got.windows(2) {
        assert_ne!(pair[0], pair[1], "a frame was sent twice: {got:?}");
    }
    // Wire format: opening delimiter, then per part Content-Type, Content-Length, JPEG, delimiter.
    let raw = &viewer.raw;
    assert!(raw.starts_with(b"--mjpegrelayboundary\r\nContent-Type: image/jpeg\r\nContent-Length: "));
    let first = &frames[got[0]];
    let header = format!(
        "Content-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
        first.len()
    );
    let start = b"--mjpegrelayboundary\r\n".len() + header.len();
    assert_eq!(&raw[b"--mjpegrelayboundary\r\n".len()..start], header.as_bytes());
    assert_eq!(&raw[start..start + first.len()], &first[..]);
    assert_eq!(
        &raw[start + first.len()..start + first.len() + 24],
        b"\r\n--mjpegrelayboundary\r\n"
    );

    relay.stop().await;
    camera.stop().await;
}

#[tokio::test]
async fn boundary_line_follows_each_frame_without_waiting_for_the_next() {
    // One frame per 2 s: the delimiter must arrive right after the frame.
    let frames = jpegs(2, 64, 48);
    let camera = TestCamera::start(frames.clone(), 1, Behaviour::Stream).await;
    let relay = TestRelay::camera(&camera.url()).await;
    let mut viewer = Viewer::connect(relay.viewer, "/stream").await;
    let frame = viewer.next_frame().await.unwrap();
    // The parser hands out a Content-Length frame as soon as it is complete;
    // read until the delimiter after it shows up, well before the next frame.
    let marker = b"\r\n--mjpegrelayboundary\r\n";
    let frame_end = viewer
        .raw
        .windows(frame.len())
        .position(|w| w == &frame[..])
        .unwrap()
        + frame.len();
    let started = std::time::Instant::now();
    while viewer.raw.len() < frame_end + marker.len() {
        let mut buf = [0u8; 4096];
        use tokio::io::AsyncReadExt;
        let n = tokio::time::timeout(Duration::from_millis(700), viewer.tcp.read(&mut buf))
            .await
            .expect("delimiter did not follow the frame at once")
            .unwrap();
        assert!(n > 0);
        viewer.raw.extend_from_slice(&buf[..n]);
    }
    assert!(started.elapsed() < Duration::from_millis(900));
    // Chunked framing aside, the delimiter immediately follows the JPEG bytes.
    let tail = &viewer.raw[frame_end..];
    let tail: Vec<u8> = tail.to_vec();
    assert!(
        tail.starts_with(marker) || contains(&tail, b"--mjpegrelayboundary\r\n"),
        "{:?}",
        String::from_utf8_lossy(&tail[..tail.len().min(60)])
    );
    relay.stop().await;
    camera.stop().await;
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn fifty_concurrent_viewers_all_get_frames() {
    let frames = jpegs(6, 160, 120);
    let camera = TestCamera::start(frames.clone(), 30, Behaviour::Stream).await;
    let relay = TestRelay::camera(&camera.url()).await;
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (addr, frames) = (relay.viewer, frames.clone());
        tasks.push(tokio::spawn(async move {
            let mut viewer = Viewer::connect(addr, "/stream").await;
            for _ in 0..5 {
                let frame = viewer.next_frame().await.expect("stream ended");
                assert!(frames.contains(&frame));
            }
            viewer
        }));
    }
    let mut viewers = Vec::new();
    for task in tasks {
        viewers.push(task.await.unwrap());
    }
    let status = relay.wait_status("50 viewers", |s| s["clients"] == 50).await;
    assert_eq!(status["clients"], 50);
    // Still one connection to the camera, however many viewers.
    assert_eq!(camera.connections.load(Ordering::SeqCst), 1);
    drop(viewers);
    relay.wait_status("viewers gone", |s| s["clients"] == 0).await;
    relay.stop().await;
    camera.stop().await;
}

#[tokio::test]
async fn snapshot_is_503_before_the_first_frame_then_the_newest_frame() {
    // Reserve a port for a camera that is not there yet.
    let frames = jpegs(3, 96, 72);
    let placeholder = TestCamera::start(frames.clone(), 30, Behaviour::Stream).await;
    let addr = placeholder.stop().await;
    let relay = TestRelay::camera(&format!("http://{addr}/video")).await;

    let resp = reqwest::get(relay.url("/snapshot")).await.unwrap();
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().contains_key("retry-after"));
    assert_eq!(
        resp.headers()["cache-control"],
        "no-cache, no-store, must-revalidate"
    );
    // A viewer that connects while the camera is down stays connected...
    let mut viewer = Viewer::connect(relay.viewer, "/stream").await;
    relay
        .wait_status("reconnecting", |s| {
            s["source"]["state"] == "reconnecting" || s["source"]["reconnects"].as_u64() > Some(0)
        })
        .await;

    // ...and gets frames as soon as the camera comes up.
    let camera = TestCamera::start_on(addr, frames.clone(), 30, Behaviour::Stream).await;
    let frame = viewer.next_frame().await.expect("stream ended");
    assert!(frames.contains(&frame));
    let resp = reqwest::get(relay.url("/snapshot")).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/jpeg");
    let len: usize = resp.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body = resp.bytes().await.unwrap();
    assert_eq!(body.len(), len);
    assert!(frames.contains(&body));
    relay.stop().await;
    camera.stop().await;
}

#[tokio::test]
async fn camera_killed_mid_frame_then_back_viewers_stay_and_never_see_a_torn_frame() {
    let frames = jpegs(4, 160, 120);
    let camera = TestCamera::start(frames.clone(), 20, Behaviour::DieMidFrame).await;
    let addr = camera.addr;
    let relay = TestRelay::camera(&camera.url()).await;
    let mut viewer = Viewer::connect(relay.viewer, "/stream").await;
    let first = viewer.next_frame().await.unwrap();
    assert_eq!(first, frames[0]);
    // The camera dies half-way through frame 2 on every connection; then we
    // replace it with a healthy one on the same port.
    relay
        .wait_status("a reconnect", |s| s["source"]["reconnects"].as_u64() >= Some(1))
        .await;
    camera.stop().await;
    let camera = TestCamera::start_on(addr, frames.clone(), 20, Behaviour::Stream).await;
    for _ in 0..6 {
        let frame = viewer
            .next_frame()
            .await
            .expect("viewer was dropped during the outage");
        assert!(
            frames.contains(&frame),
            "a torn or foreign frame reached the viewer"
        );
    }
    let status = relay.status().await;
    assert_eq!(status["source"]["state"], "streaming");
    relay.stop().await;
    camera.stop().await;
}

#[tokio::test]
async fn silent_camera_is_detected_by_the_stall_timeout() {
    let camera = TestCamera::start(jpegs(1, 32, 32), 1, Behaviour::Silent).await;
    let relay = TestRelay::camera(&camera.url()).await; // stall timeout 2 s
    let status = relay
        .wait_status("stall detected", |s| {
            s["source"]["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("sent nothing"))
        })
        .await;
    assert!(camera.connections.load(Ordering::SeqCst) >= 1, "{status}");
    relay.stop().await;
    camera.stop().await;
}

#[tokio::test]
async fn status_counts_viewers_as_they_come_and_go() {
    let relay = TestRelay::start(Source::Demo(DemoSettings {
        fps: 15,
        width: 64,
        height: 48,
    }))
    .await;
    let status = relay.status().await;
    assert_eq!(status["clients"], 0);
    for key in ["fps", "frames", "bytes_in", "state"] {
        assert!(
            status["source"].get(key).is_some(),
            "missing source.{key}: {status}"
        );
    }
    for key in ["clients", "bytes_out", "uptime_s"] {
        assert!(status.get(key).is_some(), "missing {key}: {status}");
    }

    let mut a = Viewer::connect(relay.viewer, "/stream").await;
    let mut b = Viewer::connect(relay.viewer, "/stream?fps=2").await;
    a.next_frame().await.unwrap();
    b.next_frame().await.unwrap();
    let status = relay.wait_status("2 viewers", |s| s["clients"] == 2).await;
    assert!(status["bytes_out"].as_u64().unwrap() > 0);
    assert_eq!(status["source"]["state"], "streaming");

    let html = reqwest::get(relay.url("/status")).await.unwrap();
    assert_eq!(html.headers()["content-type"], "text/html; charset=utf-8");
    let html = html.text().await.unwrap();
    assert!(html.contains(r#"<dd id="clients">2</dd>"#), "{html}");
    assert!(html.contains("streaming"));

    drop(a);
    relay.wait_status("1 viewer", |s| s["clients"] == 1).await;
    drop(b);
    relay.wait_status("0 viewers", |s| s["clients"] == 0).await;
    relay.stop().await;
}

#[tokio::test]
async fn fps_query_limits_one_viewer() {
    let relay = TestRelay::start(Source::Demo(DemoSettings {
        fps: 30,
        width: 64,
        height: 48,
    }))
    .await;
    let mut slow = Viewer::connect(relay.viewer, "/stream?fps=4").await;
    let mut fast = Viewer::connect(relay.viewer, "/stream").await;
    slow.next_frame().await.unwrap();
    fast.next_frame().await.unwrap();
    // Count frames each receives over the same span of the fast viewer's frames.
    let start = std::time::Instant::now();
    let mut fast_frames = 0;
    while start.elapsed() < Duration::from_millis(1500) {
        fast.next_frame().await.unwrap();
        fast_frames += 1;
    }
    drop(fast);
    let mut slow_frames = 0;
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_millis(1500) {
        slow.next_frame().await.unwrap();
        slow_frames += 1;
    }
    // Ratios in one run, not absolute speeds: 4 fps is far below 30 fps.
    assert!(
        slow_frames * 3 < fast_frames,
        "fps=4 viewer got {slow_frames}, unlimited got {fast_frames}"
    );
    let bad = reqwest::get(relay.url("/stream?fps=zero")).await.unwrap();
    assert_eq!(bad.status(), 400);
    relay.stop().await;
}

#[tokio::test]
async fn head_404_405_and_cache_headers() {
    let relay = TestRelay::start(Source::Demo(DemoSettings {
        fps: 15,
        width: 64,
        height: 48,
    }))
    .await;
    let client = reqwest::Client::new();
    relay
        .wait_status("a frame", |s| s["source"]["frames"].as_u64() > Some(0))
        .await;
    for path in ["/stream", "/snapshot", "/status", "/status.json"] {
        let resp = tokio::time::timeout(SOON, client.head(relay.url(path)).send())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(resp.status(), 200, "HEAD {path}");
        assert_eq!(
            resp.headers()["cache-control"],
            "no-cache, no-store, must-revalidate",
            "{path}"
        );
        let get = client.get(relay.url(path)).send().await.unwrap();
        assert_eq!(
            resp.headers()["content-type"],
            get.headers()["content-type"],
            "HEAD and GET {path} agree on the type"
        );
    }
    let snap = client.head(relay.url("/snapshot")).send().await.unwrap();
    assert!(
        snap.headers()["content-length"]
            .to_str()
            .unwrap()
            .parse::<usize>()
            .unwrap()
            > 100
    );
    let missing = client.get(relay.url("/nope")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    let post = client.post(relay.url("/stream")).send().await.unwrap();
    assert_eq!(post.status(), 405);
    assert_eq!(post.headers()["allow"], "GET, HEAD");
    // Errors are viewer answers too: never cached.
    for resp in [&missing, &post] {
        assert_eq!(
            resp.headers()["cache-control"],
            "no-cache, no-store, must-revalidate",
            "{}",
            resp.status()
        );
    }
    relay.stop().await;
}

#[tokio::test]
async fn shutdown_ends_open_streams_with_the_closing_boundary() {
    let relay = TestRelay::start(Source::Demo(DemoSettings {
        fps: 30,
        width: 64,
        height: 48,
    }))
    .await;
    let mut viewers = Vec::new();
    for _ in 0..3 {
        let mut v = Viewer::connect(relay.viewer, "/stream").await;
        v.next_frame().await.unwrap();
        viewers.push(v);
    }
    let readyz = reqwest::get(relay.admin_url("/readyz")).await.unwrap();
    assert_eq!(readyz.status(), 200);
    relay.shutdown.cancel();
    for mut v in viewers {
        let body = v.read_to_end().await;
        assert!(
            body.ends_with(b"--mjpegrelayboundary--\r\n"),
            "stream did not end with the closing boundary"
        );
    }
    tokio::time::timeout(SOON, relay.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn credentials_reach_the_camera_but_never_the_status_page() {
    let frames = jpegs(2, 32, 32);
    let camera = TestCamera::start(frames, 10, Behaviour::Stream).await;
    let url = format!("http://admin:hunter2@{}/video", camera.addr);
    let relay = TestRelay::camera(&url).await;
    relay
        .wait_status("frames", |s| s["source"]["frames"].as_u64() > Some(0))
        .await;
    // Basic auth built from the URL's user info.
    let seen = camera.auth_seen.lock().unwrap().clone();
    assert_eq!(
        seen.first().map(String::as_str),
        Some("Basic YWRtaW46aHVudGVyMg==")
    );
    let json = reqwest::get(relay.url("/status.json"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let html = reqwest::get(relay.url("/status"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for page in [&json, &html] {
        assert!(!page.contains("hunter2"));
        assert!(page.contains("admin:***@127.0.0.1"), "{page}");
    }
    relay.stop().await;
    camera.stop().await;
}

#[tokio::test]
async fn readiness_is_503_from_the_moment_shutdown_begins() {
    let mut config = mjpeg_relay::config::Config::new(Source::Demo(DemoSettings {
        fps: 10,
        width: 32,
        height: 32,
    }));
    config.port = 0;
    config.admin_port = Some(0);
    config.bind = "127.0.0.1".parse().unwrap();
    config.drain_delay = Duration::from_millis(1500);
    let relay = TestRelay::with_config(config).await;
    let mut viewer = Viewer::connect(relay.viewer, "/stream").await;
    viewer.next_frame().await.unwrap();
    assert_eq!(
        reqwest::get(relay.admin_url("/readyz")).await.unwrap().status(),
        200
    );
    assert_eq!(
        reqwest::get(relay.admin_url("/livez")).await.unwrap().status(),
        200
    );
    relay.shutdown.cancel();
    let admin = relay.admin_url("/readyz");
    eventually("readyz 503", async || {
        let r = reqwest::get(&admin).await;
        eprintln!("{r:?}");
        r.is_ok_and(|r| r.status() == 503)
    })
    .await;
    let body = reqwest::get(&admin).await.unwrap().text().await.unwrap();
    assert!(body.contains("shutting down"), "{body}");
    // During the drain delay the stream is still flowing.
    viewer
        .next_frame()
        .await
        .expect("stream ended before the drain delay");
    let body = viewer.read_to_end().await;
    assert!(body.ends_with(b"--mjpegrelayboundary--\r\n"));
    tokio::time::timeout(SOON, relay.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
