//! Helpers of the viewer tests (tests/viewers.rs, tests/interop.rs): start a
//! real relay or a bare viewer server on port 0, and read `/stream` strictly
//! over a raw socket.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mjpeg_relay::config::{Config, DemoSettings, Source};
use mjpeg_relay::hub::Hub;
use mjpeg_relay::relay::{self, Listeners};
use mjpeg_relay::server::{self, ViewerOptions, Viewers};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Generous bound for anything that should happen "soon".
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A relay running in this process.
pub struct Running {
    /// Viewer port.
    pub addr: SocketAddr,
    /// Admin port.
    pub admin: Option<SocketAddr>,
    /// Cancel to shut the relay down.
    pub shutdown: CancellationToken,
    /// Ends when the relay has shut down.
    pub task: JoinHandle<Result<(), relay::RunError>>,
}

impl Running {
    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Shuts down and waits for a clean exit.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let done = tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("relay shut down in time");
        done.expect("relay task").expect("clean shutdown");
    }
}

/// A demo config on 127.0.0.1, ports 0, small frames.
pub fn demo_config(fps: u32) -> Config {
    let mut config = Config::new(Source::Demo(DemoSettings {
        fps,
        width: 320,
        height: 240,
    }));
    config.port = 0;
    config.admin_port = Some(0);
    config.bind = "127.0.0.1".parse().unwrap();
    config.bind_is_default = false;
    config.shutdown_timeout = Duration::from_secs(5);
    config
}

/// Starts the relay of `config` in this process.
pub fn start(config: Config) -> Running {
    let listeners = Listeners::bind(&config).expect("bind port 0");
    let addr = listeners.viewer_addr().unwrap();
    let admin = listeners.admin_addr();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(relay::run(config, listeners, shutdown.clone()));
    Running {
        addr,
        admin,
        shutdown,
        task,
    }
}

/// Viewer routes over a hub the test publishes into by hand.
pub struct Bare {
    /// Viewer port.
    pub addr: SocketAddr,
    /// The hub behind it.
    pub hub: Arc<Hub>,
    /// Cancel to end streams.
    pub shutdown: CancellationToken,
    /// Ends when the server stopped.
    pub task: JoinHandle<()>,
}

/// Serves `options` over a fresh hub.
pub async fn bare(options: ViewerOptions) -> Bare {
    let hub = Arc::new(Hub::new("default", "test"));
    let shutdown = CancellationToken::new();
    let viewers = Viewers::new(hub.clone(), shutdown.clone(), options);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(server::serve(listener, shutdown.clone(), move |req| {
        let viewers = viewers.clone();
        async move { viewers.handle(req).await }
    }));
    Bare {
        addr,
        hub,
        shutdown,
        task,
    }
}

/// A small real JPEG whose pixels depend on `n`.
pub fn jpeg(n: u8) -> Bytes {
    let (w, h) = (16u16, 16u16);
    let rgb: Vec<u8> = (0..usize::from(w) * usize::from(h))
        .flat_map(|_| [n, 255 - n, 128])
        .collect();
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, 90)
        .encode(&rgb, w, h, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    Bytes::from(out)
}

/// A raw-socket reader of one `/stream` response, strict about framing.
pub struct RawStream {
    sock: TcpStream,
    buf: Vec<u8>,
    /// The response head (status line and headers), lower-cased names kept as sent.
    pub head: String,
    eof: bool,
}

impl RawStream {
    /// Sends `request` (a full HTTP request) and reads the response head.
    pub async fn open(addr: SocketAddr, request: &str) -> Self {
        let mut sock = TcpStream::connect(addr).await.unwrap();
        sock.write_all(request.as_bytes()).await.unwrap();
        let mut s = Self {
            sock,
            buf: Vec::new(),
            head: String::new(),
            eof: false,
        };
        let end = loop {
            if let Some(i) = find(&s.buf, b"\r\n\r\n") {
                break i;
            }
            assert!(s.fill().await, "connection closed before the response head");
        };
        s.head = String::from_utf8_lossy(&s.buf[..end]).into_owned();
        s.buf.drain(..end + 4);
        s
    }

    /// `GET path HTTP/1.0`.
    pub async fn http10(addr: SocketAddr, path: &str) -> Self {
        Self::open(addr, &format!("GET {path} HTTP/1.0\r\nHost: test\r\n\r\n")).await
    }

    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 65536];
        let n = tokio::time::timeout(DEADLINE, self.sock.read(&mut chunk))
            .await
            .expect("data within the deadline")
            .unwrap_or(0);
        if n == 0 {
            self.eof = true;
            return false;
        }
        self.buf.extend_from_slice(&chunk[..n]);
        true
    }

    /// The first delimiter line must come first.
    pub async fn expect_opening(&mut self) {
        let opening = b"--mjpegrelayboundary\r\n";
        while self.buf.len() < opening.len() {
            assert!(self.fill().await, "stream ended before the opening boundary");
        }
        assert_eq!(
            &self.buf[..opening.len()],
            opening,
            "stream starts with the boundary"
        );
        self.buf.drain(..opening.len());
    }

    /// The next part: checks its headers, `Content-Length`, the JPEG and
    /// the boundary line right after it. `None` at the closing delimiter.
    pub async fn next_part(&mut self) -> Option<Bytes> {
        let closing = b"--mjpegrelayboundary--\r\n";
        let end = loop {
            if self.buf.starts_with(closing) {
                return None;
            }
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i;
            }
            assert!(self.fill().await, "stream ended inside part headers");
        };
        let headers = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        let mut length = None;
        let mut content_type = None;
        for line in headers.split("\r\n") {
            let (name, value) = line.split_once(':').expect("header line");
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = Some(value.trim().parse::<usize>().unwrap()),
                "content-type" => content_type = Some(value.trim().to_string()),
                _ => {}
            }
        }
        assert_eq!(content_type.as_deref(), Some("image/jpeg"), "{headers}");
        let length = length.expect("every part has Content-Length");
        self.buf.drain(..end + 4);
        let after = b"\r\n--mjpegrelayboundary\r\n";
        while self.buf.len() < length + after.len() {
            assert!(self.fill().await, "stream ended inside a frame");
        }
        let jpeg = Bytes::copy_from_slice(&self.buf[..length]);
        assert_eq!(
            &self.buf[length..length + after.len()],
            after,
            "boundary right after the frame"
        );
        self.buf.drain(..length + after.len());
        assert!(
            jpeg.starts_with(&[0xFF, 0xD8]) && jpeg.ends_with(&[0xFF, 0xD9]),
            "a whole JPEG"
        );
        Some(jpeg)
    }

    /// Reads until `needle` has arrived (it stays buffered).
    pub async fn wait_for(&mut self, needle: &[u8]) {
        while find(&self.buf, needle).is_none() {
            assert!(self.fill().await, "stream ended before {needle:?}");
        }
    }

    /// Reads until the peer closes; returns what was left.
    pub async fn rest(&mut self) -> Vec<u8> {
        while self.fill().await {}
        std::mem::take(&mut self.buf)
    }

    /// Whether a part starts within `wait` (bytes beyond what is buffered).
    pub async fn quiet_for(&mut self, wait: Duration) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut chunk = [0u8; 1024];
        match tokio::time::timeout(wait, self.sock.read(&mut chunk)).await {
            Err(_) => true,
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                false
            }
            Ok(Err(_)) => false,
        }
    }
}

/// Position of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Polls `check` every 20 ms until it holds or the deadline passes.
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let start = tokio::time::Instant::now();
    while !check() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
