//! Operations: `/metrics` parsed by a real OpenMetrics parser (Python's
//! prometheus_client), with counters that move with traffic.

mod common;
mod tools;

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};

use common::*;
use mjpeg_relay::config::{DemoSettings, Source};
use tools::{require_chromium, require_python_module};

/// Scrapes `/metrics` and parses it strictly.
async fn scrape(relay: &TestRelay) -> HashMap<String, f64> {
    let resp = reqwest::get(relay.admin_url("/metrics")).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text"),
        "{:?}",
        resp.headers()
    );
    let text = resp.text().await.unwrap();
    let mut child = Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ops/parse_metrics.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "OpenMetrics parser rejected /metrics: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn metrics_parse_as_openmetrics_and_move_with_traffic() {
    if !require_python_module("prometheus_client") {
        return;
    }
    let relay = TestRelay::start(Source::Demo(DemoSettings {
        fps: 20,
        width: 64,
        height: 48,
    }))
    .await;
    relay
        .wait_status("a frame", |s| s["source"]["frames"].as_u64() > Some(0))
        .await;
    let before = scrape(&relay).await;
    for name in [
        "mjpeg_relay_frames_received_total{source=\"default\"}",
        "mjpeg_relay_received_bytes_total{source=\"default\"}",
        "mjpeg_relay_frames_sent_total{source=\"default\"}",
        "mjpeg_relay_sent_bytes_total{source=\"default\"}",
        "mjpeg_relay_frames_skipped_total{source=\"default\"}",
        "mjpeg_relay_upstream_reconnects_total{source=\"default\"}",
        "mjpeg_relay_source_fps{source=\"default\"}",
        "mjpeg_relay_uptime_seconds",
        "mjpeg_relay_frame_size_bytes_count{source=\"default\"}",
        "mjpeg_relay_time_to_first_frame_seconds_count{source=\"default\"}",
        "mjpeg_relay_viewers{endpoint=\"stream\",source=\"default\"}",
        "mjpeg_relay_viewer_sessions_total{endpoint=\"ws\",source=\"default\"}",
        "mjpeg_relay_upstream_state{source=\"default\",state=\"streaming\"}",
        "mjpeg_relay_upstream_errors_total{kind=\"stalled\",source=\"default\"}",
        "mjpeg_relay_build_info{version=\"0.2.0\"}",
    ] {
        assert!(before.contains_key(name), "missing {name}: {before:?}");
    }
    assert_eq!(
        before["mjpeg_relay_upstream_state{source=\"default\",state=\"streaming\"}"],
        1.0
    );
    assert_eq!(
        before["mjpeg_relay_viewers{endpoint=\"stream\",source=\"default\"}"],
        0.0
    );

    let mut viewer = Viewer::connect(relay.viewer, "/stream").await;
    for _ in 0..5 {
        viewer.next_frame().await.unwrap();
    }
    let during = scrape(&relay).await;
    assert_eq!(
        during["mjpeg_relay_viewers{endpoint=\"stream\",source=\"default\"}"],
        1.0
    );
    assert!(
        during["mjpeg_relay_frames_received_total{source=\"default\"}"]
            > before["mjpeg_relay_frames_received_total{source=\"default\"}"]
    );
    assert!(
        during["mjpeg_relay_frames_sent_total{source=\"default\"}"]
            >= before["mjpeg_relay_frames_sent_total{source=\"default\"}"] + 5.0
    );
    assert!(
        during["mjpeg_relay_sent_bytes_total{source=\"default\"}"]
            > before["mjpeg_relay_sent_bytes_total{source=\"default\"}"]
    );
    assert_eq!(
        during["mjpeg_relay_time_to_first_frame_seconds_count{source=\"default\"}"],
        1.0
    );
    assert_eq!(
        during["mjpeg_relay_viewer_sessions_total{endpoint=\"stream\",source=\"default\"}"],
        1.0
    );
    drop(viewer);
    relay.wait_status("viewer gone", |s| s["clients"] == 0).await;
    let after = scrape(&relay).await;
    assert_eq!(
        after["mjpeg_relay_viewers{endpoint=\"stream\",source=\"default\"}"],
        0.0
    );
    relay.stop().await;
}

#[tokio::test]
async fn upstream_errors_are_counted_by_kind() {
    if !require_python_module("prometheus_client") {
        return;
    }
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let relay = TestRelay::camera(&format!("http://{addr}/video")).await;
    relay
        .wait_status("a failure", |s| s["source"]["last_error"].is_string())
        .await;
    let metrics = scrape(&relay).await;
    assert!(
        metrics["mjpeg_relay_upstream_errors_total{kind=\"unreachable\",source=\"default\"}"] >= 1.0,
        "{metrics:?}"
    );
    assert_eq!(
        metrics["mjpeg_relay_upstream_state{source=\"default\",state=\"streaming\"}"],
        0.0
    );
    relay.stop().await;
}

#[tokio::test]
async fn ready_requires_source_waits_for_a_fresh_frame() {
    let placeholder = TestCamera::start(jpegs(1, 32, 32), 10, Behaviour::Stream).await;
    let addr = placeholder.stop().await;
    let mut config = mjpeg_relay::config::Config::new(Source::Camera(
        mjpeg_relay::config::SourceUrl::parse(&format!("http://{addr}/video")).unwrap(),
    ));
    config.port = 0;
    config.admin_port = Some(0);
    config.bind = "127.0.0.1".parse().unwrap();
    config.ready_requires_source = true;
    config.stall_timeout = std::time::Duration::from_secs(1);
    config.reconnect_min = std::time::Duration::from_millis(100);
    config.reconnect_max = std::time::Duration::from_millis(300);
    let relay = TestRelay::with_config(config).await;
    let readyz = relay.admin_url("/readyz");
    let resp = reqwest::get(&readyz).await.unwrap();
    assert_eq!(resp.status(), 503);
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("no frame from the source yet")
    );
    let camera = TestCamera::start_on(addr, jpegs(2, 32, 32), 10, Behaviour::Stream).await;
    eventually("ready once frames flow", async || {
        reqwest::get(&readyz).await.is_ok_and(|r| r.status() == 200)
    })
    .await;
    camera.stop().await;
    eventually("not ready once frames stop", async || {
        reqwest::get(&readyz).await.is_ok_and(|r| r.status() == 503)
    })
    .await;
    relay.stop().await;
}

/// The status page in headless Chromium: live numbers, a thumbnail, tidy on
/// a phone. Screenshots go to target/screenshots/.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_updates_live_in_chromium() {
    if !require_chromium() {
        return;
    }
    let relay = TestRelay::start(Source::Demo(DemoSettings {
        fps: 10,
        width: 160,
        height: 120,
    }))
    .await;
    let url = relay.url("/status");
    let shots = concat!(env!("CARGO_MANIFEST_DIR"), "/target/screenshots");
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ops/status_page.py"))
            .args([url.as_str(), shots])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("status page: {stdout}");
    relay.stop().await;
}
