//! Test harness shared by the end-to-end tests: an in-test MJPEG camera
//! that can be stopped, killed mid-frame and restarted on the same port; a
//! relay running in-process on port 0; a multipart viewer; and helpers for
//! running the real binary. No fixed ports, no sleeps as synchronisation.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use mjpeg_relay::config::{Config, DemoSettings, Source, SourceUrl};
use mjpeg_relay::demo::Pattern;
use mjpeg_relay::mjpeg::{Event, Parser};
use mjpeg_relay::relay::{self, Listeners};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Generous bound for anything that should happen "soon".
pub const SOON: Duration = Duration::from_secs(15);

/// GETs `url` and parses the JSON answer.
pub async fn get_json(url: &str) -> serde_json::Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

/// `n` distinct small real JPEGs.
pub fn jpegs(n: usize, width: u16, height: u16) -> Vec<Bytes> {
    let mut pattern = Pattern::new(DemoSettings {
        fps: 30,
        width,
        height,
    });
    (1..=n as u64)
        .map(|i| pattern.render(i, SystemTime::now()))
        .collect()
}

/// How a camera behaves on each connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Frames forever, cycling through the list.
    Stream,
    /// One whole frame, then half of the next, then the connection drops.
    DieMidFrame,
    /// Headers, then silence (a half-dead camera).
    Silent,
}

/// An in-test MJPEG camera on 127.0.0.1.
pub struct TestCamera {
    pub addr: SocketAddr,
    pub connections: Arc<AtomicUsize>,
    /// `Authorization` header values the camera saw.
    pub auth_seen: Arc<std::sync::Mutex<Vec<String>>>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl TestCamera {
    /// A camera on a fresh port.
    pub async fn start(frames: Vec<Bytes>, fps: u32, behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, frames, fps, behaviour)
    }

    /// A camera on a given port (to come back after a restart).
    pub async fn start_on(addr: SocketAddr, frames: Vec<Bytes>, fps: u32, behaviour: Behaviour) -> Self {
        let deadline = Instant::now() + SOON;
        loop {
            match TcpListener::bind(addr).await {
                Ok(listener) => return Self::serve(listener, frames, fps, behaviour),
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("cannot rebind camera on {addr}: {e}"),
            }
        }
    }

    fn serve(listener: TcpListener, frames: Vec<Bytes>, fps: u32, behaviour: Behaviour) -> Self {
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let connections = Arc::new(AtomicUsize::new(0));
        let auth_seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let frames = Arc::new(frames);
        let task = tokio::spawn({
            let (stop, connections, auth_seen) = (stop.clone(), connections.clone(), auth_seen.clone());
            async move {
                let mut tasks = tokio::task::JoinSet::new();
                loop {
                    let (tcp, _) = tokio::select! {
                        () = stop.cancelled() => break,
                        accepted = listener.accept() => match accepted { Ok(a) => a, Err(_) => continue },
                    };
                    connections.fetch_add(1, Ordering::SeqCst);
                    let (frames, stop, auth_seen) = (frames.clone(), stop.clone(), auth_seen.clone());
                    tasks.spawn(async move {
                        tokio::select! {
                            () = stop.cancelled() => {}
                            () = serve_camera(tcp, frames, fps, behaviour, auth_seen) => {}
                        }
                    });
                }
                // Dropping the set aborts every connection: a hard camera death.
                tasks.abort_all();
            }
        });
        Self {
            addr,
            connections,
            auth_seen,
            stop,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/video", self.addr)
    }

    /// Kills the camera and every connection; returns its address.
    pub async fn stop(self) -> SocketAddr {
        self.stop.cancel();
        let _ = self.task.await;
        self.addr
    }
}

/// Serves one camera connection on any byte stream (TCP or TLS).
pub async fn serve_camera<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut tcp: S,
    frames: Arc<Vec<Bytes>>,
    fps: u32,
    behaviour: Behaviour,
    auth_seen: Arc<std::sync::Mutex<Vec<String>>>,
) {
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match tcp.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let request = String::from_utf8_lossy(&request).to_string();
    for line in request.lines() {
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("authorization") {
                auth_seen.lock().unwrap().push(value.trim().to_string());
            }
        }
    }
    let head = "HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=camboundary\r\n\
                Cache-Control: no-cache\r\nConnection: close\r\n\r\n";
    if tcp.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    if behaviour == Behaviour::Silent {
        std::future::pending::<()>().await;
    }
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(fps)));
    for (i, frame) in frames.iter().cycle().enumerate() {
        ticks.tick().await;
        let part = format!(
            "--camboundary\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\nX-Timestamp: {i}\r\n\r\n",
            frame.len()
        );
        let mut bytes = part.into_bytes();
        bytes.extend_from_slice(frame);
        bytes.extend_from_slice(b"\r\n");
        if behaviour == Behaviour::DieMidFrame && i == 1 {
            let _ = tcp.write_all(&bytes[..bytes.len() / 2]).await;
            let _ = tcp.flush().await;
            return;
        }
        if tcp.write_all(&bytes).await.is_err() {
            return;
        }
    }
}

/// A relay running in this process.
pub struct TestRelay {
    pub viewer: SocketAddr,
    pub admin: SocketAddr,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<Result<(), relay::RunError>>,
}

impl TestRelay {
    pub async fn start(source: Source) -> Self {
        let mut config = Config::new(source);
        config.port = 0;
        config.admin_port = Some(0);
        config.bind = "127.0.0.1".parse().unwrap();
        config.bind_is_default = false;
        config.stall_timeout = Duration::from_secs(2);
        config.shutdown_timeout = Duration::from_secs(5);
        // Byte-for-byte tests want camera frames only.
        config.placeholder = None;
        Self::with_config(config).await
    }

    pub async fn camera(url: &str) -> Self {
        Self::start(Source::Camera(SourceUrl::parse(url).unwrap())).await
    }

    pub async fn with_config(config: Config) -> Self {
        mjpeg_relay::install_crypto_provider();
        if std::env::var_os("TEST_LOG").is_some() {
            mjpeg_relay::telemetry::init_logging(mjpeg_relay::config::LogFormat::Text, false);
        }
        let listeners = Listeners::bind(&config).unwrap();
        let viewer = listeners.viewer_addr().unwrap();
        let admin = listeners.admin_addr().unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(relay::run(config, listeners, shutdown.clone()));
        Self {
            viewer,
            admin,
            shutdown,
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.viewer)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    pub async fn status(&self) -> serde_json::Value {
        get_json(&self.url("/status.json")).await
    }

    /// Polls `/status.json` until `check` holds.
    pub async fn wait_status(
        &self,
        what: &str,
        check: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + SOON;
        loop {
            let status = self.status().await;
            if check(&status) {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; status: {status}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(SOON, self.task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}

/// A viewer of `/stream` reading the raw response bytes over TCP.
pub struct Viewer {
    pub tcp: TcpStream,
    /// The response head (status line and headers).
    pub head: String,
    /// Every body byte read so far (after de-chunking).
    pub raw: Vec<u8>,
    parser: Parser,
    chunked: Dechunker,
}

impl Viewer {
    pub async fn connect(addr: SocketAddr, path: &str) -> Self {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(format!("GET {path} HTTP/1.1\r\nHost: relay\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            let n = tokio::time::timeout(SOON, tcp.read(&mut byte))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(n, 1, "connection closed while reading the head");
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        let boundary = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .starts_with("content-type:")
                    .then(|| l.to_string())
            })
            .and_then(|ct| mjpeg_relay::mjpeg::boundary_from_content_type(&ct));
        let chunked = head.to_ascii_lowercase().contains("transfer-encoding: chunked");
        Self {
            tcp,
            head,
            raw: Vec::new(),
            parser: Parser::new(boundary.as_deref(), 64 << 20),
            chunked: Dechunker::new(chunked),
        }
    }

    /// The next frame, or `None` if the stream ended.
    pub async fn next_frame(&mut self) -> Option<Bytes> {
        let deadline = Instant::now() + SOON;
        loop {
            if let Some(event) = self.parser.next() {
                match event {
                    Event::Frame(f) => return Some(f),
                    Event::Skipped(why) => panic!("relay sent a part the parser skipped: {why:?}"),
                }
            }
            let mut buf = vec![0u8; 64 * 1024];
            let left = deadline.saturating_duration_since(Instant::now());
            let n = tokio::time::timeout(left, self.tcp.read(&mut buf))
                .await
                .expect("no frame in time")
                .unwrap_or(0);
            if n == 0 {
                return None;
            }
            let body = self.chunked.feed(&buf[..n]);
            self.raw.extend_from_slice(&body);
            self.parser.push(Bytes::from(body));
        }
    }

    /// Reads until the server closes the connection; returns the whole body.
    pub async fn read_to_end(&mut self) -> Vec<u8> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = tokio::time::timeout(SOON, self.tcp.read(&mut buf))
                .await
                .expect("stream did not end in time")
                .unwrap_or(0);
            if n == 0 {
                return self.raw.clone();
            }
            let body = self.chunked.feed(&buf[..n]);
            self.raw.extend_from_slice(&body);
        }
    }
}

/// Undoes `Transfer-Encoding: chunked` incrementally.
struct Dechunker {
    on: bool,
    pending: Vec<u8>,
    left_in_chunk: usize,
}

impl Dechunker {
    fn new(on: bool) -> Self {
        Self {
            on,
            pending: Vec::new(),
            left_in_chunk: 0,
        }
    }

    fn feed(&mut self, data: &[u8]) -> Vec<u8> {
        if !self.on {
            return data.to_vec();
        }
        self.pending.extend_from_slice(data);
        let mut out = Vec::new();
        loop {
            if self.left_in_chunk > 0 {
                let take = self.left_in_chunk.min(self.pending.len());
                out.extend(self.pending.drain(..take));
                self.left_in_chunk -= take;
                if self.left_in_chunk > 0 {
                    return out;
                }
                // Chunk data is followed by CRLF; wait for it.
                self.left_in_chunk = usize::MAX;
            }
            if self.left_in_chunk == usize::MAX {
                if self.pending.len() < 2 {
                    return out;
                }
                self.pending.drain(..2);
                self.left_in_chunk = 0;
            }
            let Some(eol) = self.pending.windows(2).position(|w| w == b"\r\n") else {
                return out;
            };
            let size_line = String::from_utf8_lossy(&self.pending[..eol]).to_string();
            let size = usize::from_str_radix(size_line.split(';').next().unwrap().trim(), 16).unwrap();
            self.pending.drain(..eol + 2);
            if size == 0 {
                self.on = false; // trailer follows; nothing more of the body
                return out;
            }
            self.left_in_chunk = size;
        }
    }
}

/// Waits until `f` returns true.
pub async fn eventually(what: &str, mut f: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + SOON;
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The relay binary under test.
pub fn relay_bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mjpeg-relay"));
    cmd.env_remove("RUST_LOG");
    for (key, _) in std::env::vars() {
        if key.starts_with("MJPEG_RELAY_") || key.starts_with("OTEL_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// A running relay binary and the ports it logged.
pub struct RelayProcess {
    pub child: Child,
    pub viewer_port: u16,
    pub admin_port: u16,
    pub log: Arc<std::sync::Mutex<String>>,
}

impl RelayProcess {
    /// Starts the binary with `args` plus `-p 0 --admin-port 0`, waits for
    /// its "viewers: http://…" line.
    pub fn spawn(args: &[&str]) -> Self {
        Self::spawn_with_env(args, &[])
    }

    /// Like [`RelayProcess::spawn`], with extra environment variables.
    pub fn spawn_with_env(args: &[&str], env: &[(&str, &str)]) -> Self {
        mjpeg_relay::install_crypto_provider();
        let mut child = relay_bin()
            .args(args)
            .envs(env.iter().copied())
            .args(["-p", "0", "--admin-port", "0", "--bind", "127.0.0.1"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn({
            let log = log.clone();
            move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    log.lock().unwrap().push_str(&line);
                    log.lock().unwrap().push('\n');
                    if line.contains("viewers: http://") {
                        let _ = tx.send(line);
                    }
                }
            }
        });
        let line = rx
            .recv_timeout(SOON)
            .unwrap_or_else(|_| panic!("relay did not start: {}", log.lock().unwrap()));
        let port_after = |marker: &str| -> u16 {
            let rest = &line[line.find(marker).unwrap() + marker.len()..];
            let host_port = rest.split('/').next().unwrap();
            host_port.rsplit(':').next().unwrap().parse().unwrap()
        };
        Self {
            viewer_port: port_after("viewers: http://"),
            admin_port: port_after("admin: http://"),
            child,
            log,
        }
    }

    pub fn viewer(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.viewer_port))
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.admin_port)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.viewer_port)
    }

    /// `/status.json`, parsed.
    pub async fn status(&self) -> serde_json::Value {
        get_json(&self.url("/status.json")).await
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit; returns its status code.
    pub fn wait_exit(&mut self, within: Duration) -> i32 {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "relay did not exit within {within:?}; log:\n{}",
                    self.log.lock().unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Resident memory of the process in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap()
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
