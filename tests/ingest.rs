//! Ingest from real cameras: HTTPS cameras (self-signed: refused by default,
//! accepted with --source-insecure or with the CA file), a real ffmpeg
//! camera, and the reconnect flags.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use mjpeg_relay::config::{Config, Source, SourceUrl};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;

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
    let have = std::process::Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok();
    if !have {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "ffmpeg is required under CI=true"
        );
        eprintln!("skipped: no ffmpeg");
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
