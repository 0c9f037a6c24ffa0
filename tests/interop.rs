//! Real clients against a real relay: ffprobe/ffmpeg, GStreamer, a raw
//! HTTP/1.0 socket, Python urllib and requests, headless Chromium (through
//! selenium + chromedriver) and a second mjpeg-relay chained behind the
//! first. A missing tool skips the test on a laptop and fails it under
//! `CI=true`; scripts/ci-deps-viewers.sh installs them all.

mod tools;
mod viewers_common;

use std::process::Stdio;
use std::time::Duration;

use mjpeg_relay::config::{Source, SourceUrl};
use tokio::process::Command;
use tools::*;
use viewers_common::*;

/// Runs `cmd` to completion within the deadline; returns stdout, panics
/// with stderr on failure.
async fn run(mut cmd: Command) -> String {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let shown = format!("{:?}", cmd.as_std());
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{shown} did not finish in time"))
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{shown} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn script(name: &str) -> String {
    format!("{}/tests/interop/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test]
async fn ffmpeg_decodes_frames_and_ffprobe_sees_mjpeg() {
    if !require_tool("ffmpeg", "-version") || !require_tool("ffprobe", "-version") {
        return;
    }
    let relay = start(demo_config(15));
    let url = relay.url("/stream");
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-nostdin", "-loglevel", "error", "-i", &url])
        .args(["-frames:v", "10", "-f", "framemd5", "-"]);
    let out = run(cmd).await;
    let frames = out
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .count();
    assert_eq!(frames, 10, "{out}");

    let mut cmd = Command::new("ffprobe");
    cmd.args(["-v", "error", "-select_streams", "v:0"]).args([
        "-show_entries",
        "stream=codec_name,width,height",
        "-of",
        "csv=p=0",
        &url,
    ]);
    let out = run(cmd).await;
    assert_eq!(out.trim(), "mjpeg,320,240", "{out}");
    relay.stop().await;
}

#[tokio::test]
async fn gstreamer_souphttpsrc_multipartdemux_jpegdec() {
    if !require_tool("gst-launch-1.0", "--version") {
        return;
    }
    let relay = start(demo_config(15));
    let mut cmd = Command::new("gst-launch-1.0");
    cmd.arg("-q")
        .arg("souphttpsrc")
        .arg(format!("location={}", relay.url("/stream")))
        .args([
            "!",
            "multipartdemux",
            "!",
            "jpegdec",
            "!",
            "fakesink",
            "num-buffers=10",
        ]);
    run(cmd).await;
    relay.stop().await;
}

#[tokio::test]
async fn raw_http10_client_reads_frames_until_close() {
    let relay = start(demo_config(30));
    let mut s = RawStream::http10(relay.addr, "/stream").await;
    assert!(s.head.starts_with("HTTP/1.0 200"), "{}", s.head);
    assert!(!s.head.to_ascii_lowercase().contains("chunked"));
    s.expect_opening().await;
    for _ in 0..5 {
        s.next_part().await.unwrap();
    }
    relay.shutdown.cancel();
    assert!(s.rest().await.ends_with(b"--mjpegrelayboundary--\r\n"));
    relay.stop().await;
}

#[tokio::test]
async fn python_urllib_and_requests_read_parts() {
    if !require_python_module("requests") {
        return;
    }
    let relay = start(demo_config(30));
    let mut cmd = Command::new("python3");
    cmd.arg(script("read_parts.py"))
        .arg(relay.url("/stream"))
        .arg("5");
    let out = run(cmd).await;
    assert_eq!(out.trim(), "urllib 5 requests 5");
    relay.stop().await;
}

#[tokio::test]
async fn chromium_shows_a_changing_picture_from_img_and_websocket() {
    if !require_chromium() {
        return;
    }
    let relay = start(demo_config(15));
    let mut cmd = Command::new("python3");
    cmd.arg(script("chromium_view.py"))
        .arg(relay.url("/view"))
        .arg("5");
    let out = run(cmd).await;
    eprintln!("chromium: {out}");
    relay.stop().await;
}

#[tokio::test]
async fn relay_of_a_relay_passes_frames_through_untouched() {
    let first = start(demo_config(30));
    let mut config = demo_config(30);
    config.source = Source::Camera(SourceUrl::parse(&first.url("/stream")).unwrap());
    let second = start(config);

    let mut s = RawStream::http10(second.addr, "/stream").await;
    s.expect_opening().await;
    let mut stamps = Vec::new();
    for _ in 0..5 {
        let jpeg = s.next_part().await.unwrap();
        // The demo camera's own timestamp survives two hops: same bytes.
        stamps.push(mjpeg_relay::demo::timestamp(&jpeg).expect("stamped by the first relay's camera"));
    }
    assert!(stamps.windows(2).all(|w| w[0] < w[1]), "newer frames keep coming");
    second.stop().await;
    first.stop().await;
}
