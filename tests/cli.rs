//! The real binary: exit codes, one-line errors naming the flag, SIGTERM
//! draining, bounded memory under a stalled viewer, secrets never logged.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;

/// Runs the binary to completion; returns (exit code, stderr).
fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let out = relay_bin()
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_configuration_exits_64_with_one_line_naming_the_flag() {
    /// Arguments, environment, and the flag or variable the error must name.
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        (&["--demo", "--port", "http"], &[], "--port"),
        (&["--demo"], &[("MJPEG_RELAY_PORT", "70000")], "MJPEG_RELAY_PORT"),
        (&["--demo", "--log-format", "xml"], &[], "--log-format"),
        (&["--demo", "--shutdown-timeout", "5"], &[], "--shutdown-timeout"),
        (
            &["--demo"],
            &[("MJPEG_RELAY_SHUTDOWN_TIMEOUT", "forever")],
            "MJPEG_RELAY_SHUTDOWN_TIMEOUT",
        ),
        (&["--demo", "--bind", "not-an-ip"], &[], "--bind"),
        (&["--demo", "--max-frame-size", "huge"], &[], "--max-frame-size"),
        (&[], &[], "SOURCE_URL"),
        (&["ftp://camera/stream"], &[], "SOURCE_URL"),
        (&[], &[("MJPEG_RELAY_SOURCE", "not a url")], "MJPEG_RELAY_SOURCE"),
        (&[], &[("MJPEG_RELAY_DEMO", "perhaps")], "MJPEG_RELAY_DEMO"),
        (&["--demo", "--no-such-flag"], &[], "--no-such-flag"),
        (&["--demo", "--drain-delay", "20s"], &[], "--drain-delay"),
    ];
    for (args, env, names) in cases {
        let (code, stderr) = run(args, env);
        assert_eq!(code, 64, "{args:?} {env:?}: {stderr}");
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "{args:?}: not one line: {stderr}"
        );
        assert!(
            stderr.contains(names),
            "{args:?}: does not name {names}: {stderr}"
        );
        assert!(
            !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
            "{stderr}"
        );
    }
}

#[test]
fn a_password_in_a_bad_url_is_not_echoed() {
    let (code, stderr) = run(&["http://admin:hunter2@"], &[]);
    assert_eq!(code, 64, "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[test]
fn port_in_use_is_a_usage_error() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let (code, stderr) = run(
        &["--demo", "--bind", "127.0.0.1", "-p", &port, "--admin-port", "0"],
        &[],
    );
    assert_eq!(code, 64, "{stderr}");
    assert!(stderr.contains(&format!("port {port} is in use")), "{stderr}");
}

#[test]
fn help_documents_every_flag_with_its_variable() {
    let out = relay_bin().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--demo",
        "--port",
        "--bind",
        "--admin-port",
        "--quiet",
        "--log-format",
        "--shutdown-timeout",
    ] {
        assert!(help.contains(flag), "help lacks {flag}");
        let var = format!(
            "MJPEG_RELAY_{}",
            flag.trim_start_matches("--").replace('-', "_").to_uppercase()
        );
        assert!(help.contains(&var), "help lacks {var}");
    }
    assert!(help.contains("MJPEG_RELAY_SOURCE"));
    assert!(help.contains("[default: 54321]") && help.contains("[default: 9090]"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_streams_cleanly_and_exits_zero() {
    let mut relay = RelayProcess::spawn(&["--demo", "--shutdown-timeout", "5s"]);
    let mut viewers = Vec::new();
    for _ in 0..3 {
        let mut v = Viewer::connect(relay.viewer(), "/stream").await;
        v.next_frame().await.expect("no frame");
        viewers.push(v);
    }
    assert_eq!(
        reqwest::get(relay.admin_url("/readyz")).await.unwrap().status(),
        200
    );
    relay.terminate();
    for mut v in viewers {
        let body = v.read_to_end().await;
        assert!(
            body.ends_with(b"--mjpegrelayboundary--\r\n"),
            "no closing boundary"
        );
    }
    let code = tokio::task::spawn_blocking(move || {
        let code = relay.wait_exit(Duration::from_secs(8));
        (code, relay.log())
    })
    .await
    .unwrap();
    assert_eq!(code.0, 0, "log:\n{}", code.1);
    assert!(code.1.contains("shut down cleanly"), "{}", code.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_subcommand_reports_liveness() {
    let relay = RelayProcess::spawn(&["--demo"]);
    let port = relay.admin_port.to_string();
    let (code, stderr) = run(&["healthcheck", "--admin-port", &port], &[]);
    assert_eq!(code, 0, "{stderr}");
    let (code, _) = run(&["healthcheck"], &[("MJPEG_RELAY_ADMIN_PORT", &port)]);
    assert_eq!(code, 0);
    drop(relay);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port().to_string();
    drop(closed);
    let (code, stderr) = run(&["healthcheck", "--admin-port", &closed_port], &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("cannot connect"), "{stderr}");
}

/// A viewer that never reads must not make the relay buffer the stream:
/// with ~25 MB/s passing through, resident memory stays flat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_viewer_neither_stalls_others_nor_grows_memory() {
    // Synthetic 256 KiB "JPEGs" at 100 fps: only SOI/EOI matter to the relay.
    let frames: Vec<bytes::Bytes> = (0..4u8)
        .map(|n| {
            let mut f = vec![0xFF, 0xD8];
            f.extend(std::iter::repeat_n(n.wrapping_add(0x20), 256 * 1024));
            f.extend([0xFF, 0xD9]);
            bytes::Bytes::from(f)
        })
        .collect();
    let camera = TestCamera::start(frames.clone(), 100, Behaviour::Stream).await;
    let relay = RelayProcess::spawn(&[&camera.url()]);

    // The stalled viewer: sends a request, never reads.
    let mut stalled = tokio::net::TcpStream::connect(relay.viewer()).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stalled, b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut reader = Viewer::connect(relay.viewer(), "/stream").await;
    reader.next_frame().await.unwrap();
    // Let the stalled socket's buffers fill up, then measure.
    for _ in 0..100 {
        reader.next_frame().await.unwrap();
    }
    let before = relay.rss_kib();
    let mut delivered = 0usize;
    for _ in 0..300 {
        let frame = reader
            .next_frame()
            .await
            .expect("reader starved by the stalled viewer");
        assert!(frames.contains(&frame));
        delivered += frame.len();
    }
    let after = relay.rss_kib();
    let status = relay.status().await;
    assert_eq!(status["clients"], 2);
    // The reader took every frame; the stalled viewer only what its socket
    // buffers held before it stopped, not a queue of the rest.
    let (frames_in, frames_out) = (
        status["source"]["frames"].as_u64().unwrap(),
        status["frames_out"].as_u64().unwrap(),
    );
    assert!(
        frames_out < frames_in + frames_in / 2,
        "the stalled viewer was handed every frame: {status}"
    );
    // Over 75 MB went past the stalled viewer; a per-viewer queue would hold it.
    assert!(delivered > 70 << 20);
    assert!(
        after < before + 24 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
    drop(stalled);
    camera.stop().await;
}

/// A camera that starts a part and never ends it: 160 MB of bytes with no
/// delimiter (lines included), then a proper frame. The relay drops the part
/// with one warning, its memory stays flat, and it resyncs on the next part.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_part_is_dropped_with_bounded_memory_and_the_relay_resyncs() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let good = jpegs(2, 64, 48);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (sent_junk, release) = (
        std::sync::Arc::new(tokio::sync::Notify::new()),
        std::sync::Arc::new(tokio::sync::Notify::new()),
    );
    let (junk_done, go_on) = (sent_junk.clone(), release.clone());
    let frames = good.clone();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        let _ = tcp.read(&mut buf).await;
        let part = |jpeg: &[u8]| {
            let mut p = b"--b\r\nContent-Type: image/jpeg\r\n\r\n".to_vec();
            p.extend(jpeg);
            p.extend(b"\r\n");
            p
        };
        let mut out =
            b"HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=b\r\n\r\n".to_vec();
        out.extend(part(&frames[0]));
        out.extend(b"--b\r\nContent-Type: image/jpeg\r\n\r\n\xFF\xD8");
        tcp.write_all(&out).await.unwrap();
        let mut junk = vec![b'x'; 1 << 20];
        junk[4096] = b'\n'; // lines too, none of them a delimiter
        for _ in 0..160 {
            tcp.write_all(&junk).await.unwrap();
        }
        junk_done.notify_one();
        go_on.notified().await;
        loop {
            let mut next = b"\r\n".to_vec();
            next.extend(part(&frames[1]));
            if tcp.write_all(&next).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let relay = RelayProcess::spawn(&[&format!("http://{addr}/"), "--max-frame-size", "1MiB"]);
    let mut viewer = Viewer::connect(relay.viewer(), "/stream").await;
    assert_eq!(viewer.next_frame().await.unwrap(), good[0]);
    let before = relay.rss_kib();
    sent_junk.notified().await;
    let after = relay.rss_kib();
    eprintln!("RSS {before} KiB before and {after} KiB after 160 MB of one part");
    release.notify_one();
    // Repeats of the last good frame (--idle-repeat) may come first.
    let mut next = viewer
        .next_frame()
        .await
        .expect("no resync after the endless part");
    while next == good[0] {
        next = viewer
            .next_frame()
            .await
            .expect("no resync after the endless part");
    }
    assert_eq!(next, good[1]);
    assert!(
        after < before + 24 * 1024,
        "RSS grew from {before} KiB to {after} KiB under a 160 MB part"
    );
    let status = relay.status().await;
    assert_eq!(status["source"]["parts_dropped"], 1, "{status}");
    let log = relay.log();
    assert_eq!(
        log.matches("larger than --max-frame-size").count(),
        1,
        "want exactly one warning: {log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_never_appears_in_logs() {
    // A camera that is down: the relay logs its retry lines with the URL.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let url = format!("http://viewer:hunter2@127.0.0.1:{port}/stream");
    let mut relay = RelayProcess::spawn(&[&url]);
    let log_of = relay.log.clone();
    eventually("a retry line", async || {
        log_of.lock().unwrap().contains("retrying in")
    })
    .await;
    relay.terminate();
    relay.wait_exit(Duration::from_secs(8));
    let log = relay.log();
    assert!(log.contains("viewer:***@127.0.0.1"), "{log}");
    assert!(!log.contains("hunter2"), "{log}");
    assert!(log.contains("cannot reach camera"), "{log}");
}

#[test]
fn a_second_sigterm_exits_at_once() {
    // A viewer that never reads keeps the graceful shutdown waiting for the
    // whole (long) timeout; the second signal cuts it short.
    let mut relay = RelayProcess::spawn(&["--demo", "--shutdown-timeout", "60s", "--drain-delay", "30s"]);
    relay.terminate();
    std::thread::sleep(Duration::from_millis(300));
    relay.terminate();
    let code = relay.wait_exit(Duration::from_secs(10));
    assert_eq!(code, 130, "{}", relay.log());
    assert!(relay.log().contains("second SIGTERM"), "{}", relay.log());
}
