//! Load generator and latency probe for the viewer side (BENCHMARKS.md).
//!
//! `viewer-bench load`: the relay's viewer server and hub in this process,
//! frames published at `--fps` with their publish time stamped in the JPEG
//! comment, `--viewers` raw HTTP/1.0 clients reading `/stream`. Prints the
//! added latency (publish → whole part read by a viewer, same clock) p50 /
//! p99 / max, and the relay threads' CPU time per delivered frame.
//!
//! `viewer-bench chromium`: publishes solid-colour frames whose colour
//! encodes a frame number, opens a page in headless Chromium that watches
//! `<img src=/stream>` and a WebSocket canvas, and prints when each frame
//! became visible relative to when it was published.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use clap::{Parser, Subcommand};
use http::{Method, Response, StatusCode};
use http_body_util::BodyExt;
use mjpeg_relay::config::DemoSettings;
use mjpeg_relay::demo::{Pattern, TIMESTAMP_TAG};
use mjpeg_relay::hub::Hub;
use mjpeg_relay::server::{self, ViewerOptions, Viewers};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(about = "Viewer-side latency and load benchmarks of mjpeg-relay")]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Many raw /stream viewers; added latency and CPU per frame.
    Load {
        /// Concurrent viewers.
        #[arg(long, default_value_t = 100)]
        viewers: usize,
        /// Frames per second published.
        #[arg(long, default_value_t = 30)]
        fps: u32,
        /// Measured seconds (after one second of warm-up).
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Frame width (height is 3/4 of it).
        #[arg(long, default_value_t = 640)]
        width: u16,
        /// Serve viewers with a minimal hand-written relay (no HTTP library,
        /// one vectored write per frame) instead of the real one: the
        /// comparison point for CPU per delivered frame.
        #[arg(long)]
        baseline: bool,
    },
    /// When headless Chromium shows each frame: <img src=/stream> and /ws.
    Chromium {
        /// Frames per second published.
        #[arg(long, default_value_t = 10)]
        fps: u32,
        /// Measured seconds.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Query string added to the page's /stream URL.
        #[arg(long, default_value = "")]
        stream_query: String,
        /// Chromium binary.
        #[arg(long, default_value = "chromium")]
        chromium: String,
    },
}

fn main() -> anyhow::Result<()> {
    mjpeg_relay::install_crypto_provider();
    match Cli::parse().mode {
        Mode::Load {
            viewers,
            fps,
            seconds,
            width,
            baseline,
        } => load(viewers, fps, seconds, width, baseline),
        Mode::Chromium {
            fps,
            seconds,
            stream_query,
            chromium,
        } => browser(fps, seconds, &stream_query, &chromium),
    }
}

/// Publishes `frame(0)`, `frame(1)`, … into `hub` at `fps` on `rt`, as
/// ingest would, until `stop`.
fn spawn_publisher(
    rt: &tokio::runtime::Runtime,
    hub: Arc<Hub>,
    stop: CancellationToken,
    fps: u32,
    mut frame: impl FnMut(usize) -> Bytes + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    rt.spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(fps)));
        for i in 0usize.. {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            hub.publish(frame(i));
        }
    })
}

fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Threads of the relay's runtime, for their CPU time.
#[derive(Default)]
struct RelayThreads(Mutex<Vec<String>>);

impl RelayThreads {
    fn record(&self) {
        // "PID/task/TID" of the calling thread.
        if let Ok(link) = std::fs::read_link("/proc/thread-self") {
            self.0
                .lock()
                .unwrap()
                .push(format!("/proc/{}/stat", link.display()));
        }
    }

    /// utime + stime in clock ticks (1/100 s on Linux).
    fn cpu_ticks(&self) -> u64 {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .filter_map(|stat| {
                let after = &stat[stat.rfind(')')? + 2..];
                let fields: Vec<&str> = after.split(' ').collect();
                Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
            })
            .sum()
    }
}

fn relay_runtime(threads: &Arc<RelayThreads>) -> anyhow::Result<tokio::runtime::Runtime> {
    let t = threads.clone();
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("relay")
        .on_thread_start(move || t.record())
        .enable_all()
        .build()?)
}

/// Starts viewer routes over `hub` on 127.0.0.1:0 in `rt`.
fn serve<H, F>(
    rt: &tokio::runtime::Runtime,
    stop: CancellationToken,
    handler: H,
) -> anyhow::Result<std::net::SocketAddr>
where
    H: Fn(http::Request<hyper::body::Incoming>) -> F + Clone + Send + Sync + 'static,
    F: std::future::Future<Output = Response<server::Body>> + Send + 'static,
{
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    rt.spawn(server::serve(listener, stop, handler));
    Ok(addr)
}

fn load(viewers: usize, fps: u32, seconds: u64, width: u16, baseline: bool) -> anyhow::Result<()> {
    let threads = Arc::new(RelayThreads::default());
    let relay_rt = relay_runtime(&threads)?;
    let hub = Arc::new(Hub::new("default", "bench"));
    let stop = CancellationToken::new();
    let options = ViewerOptions {
        idle_repeat: None,
        ..Default::default()
    };
    let v = Viewers::new(hub.clone(), stop.clone(), options);
    let addr = if baseline {
        let listener = relay_rt.block_on(TcpListener::bind("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        relay_rt.spawn(baseline_relay(listener, hub.clone(), stop.clone()));
        addr
    } else {
        serve(&relay_rt, stop.clone(), move |req| {
            let v = v.clone();
            async move { v.handle(req).await }
        })?
    };

    // Pre-rendered frames; the publisher only re-stamps them.
    let mut pattern = Pattern::new(DemoSettings {
        fps,
        width,
        height: width / 4 * 3,
    });
    let frames: Vec<Bytes> = (1..=30).map(|n| pattern.render(n, SystemTime::now())).collect();
    let size = frames[0].len();

    let clients_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let measuring = Arc::new(AtomicBool::new(false));
    let samples: Arc<Mutex<Vec<u64>>> = Arc::new(Mutex::new(Vec::new()));
    for _ in 0..viewers {
        let (measuring, samples) = (measuring.clone(), samples.clone());
        let stop = stop.clone();
        clients_rt.spawn(async move {
            let result = read_stream(addr, &stop, |jpeg| {
                if measuring.load(Ordering::Relaxed) {
                    if let Some(ts) = stamp_of(jpeg) {
                        let latency = unix_micros().saturating_sub(ts);
                        samples.lock().unwrap().push(latency);
                    }
                }
            })
            .await;
            if let Err(e) = result {
                eprintln!("viewer failed: {e}");
            }
        });
    }

    // Publisher on the relay runtime, as ingest would be.
    let publisher = spawn_publisher(&relay_rt, hub.clone(), stop.clone(), fps, move |i| {
        let mut frame = BytesMut::from(&frames[i % frames.len()][..]);
        restamp(&mut frame, unix_micros());
        frame.freeze()
    });

    std::thread::sleep(Duration::from_secs(1));
    let connected = hub.counters.viewers.load(Ordering::Relaxed);
    let out0 = hub.counters.frames_out.load(Ordering::Relaxed);
    let cpu0 = threads.cpu_ticks();
    measuring.store(true, Ordering::Relaxed);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    measuring.store(false, Ordering::Relaxed);
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu = threads.cpu_ticks() - cpu0;
    let delivered = hub.counters.frames_out.load(Ordering::Relaxed) - out0;
    stop.cancel();
    relay_rt.block_on(publisher).ok();
    clients_rt.shutdown_timeout(Duration::from_secs(5));

    let mut s = samples.lock().unwrap().clone();
    s.sort_unstable();
    let pct = |p: f64| {
        s.get(((s.len() as f64 * p) as usize).min(s.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    println!(
        "server: {}",
        if baseline {
            "minimal hand-written relay (baseline)"
        } else {
            "mjpeg-relay (hyper)"
        }
    );
    println!(
        "viewers={viewers} (connected {connected}) fps={fps} frame={size} B seconds={seconds} \
         delivered={delivered} ({:.0} frames/s) samples={}",
        delivered as f64 / elapsed,
        s.len()
    );
    println!(
        "added latency publish->viewer: p50={:.2} ms p90={:.2} ms p99={:.2} ms max={:.2} ms",
        pct(0.50) as f64 / 1000.0,
        pct(0.90) as f64 / 1000.0,
        pct(0.99) as f64 / 1000.0,
        s.last().copied().unwrap_or(0) as f64 / 1000.0
    );
    println!(
        "relay threads CPU: {:.2} s = {:.1} us per delivered frame ({:.0}% of one core)",
        cpu as f64 / 100.0,
        cpu as f64 * 10_000.0 / delivered.max(1) as f64,
        cpu as f64 / elapsed
    );
    Ok(())
}

/// The comparison point for CPU per delivered frame: the least a relay can
/// do over the same hub and framing. One task per viewer, no HTTP library,
/// each frame written with one vectored write (headers, JPEG, boundary).
async fn baseline_relay(listener: TcpListener, hub: Arc<Hub>, stop: CancellationToken) {
    use bytes::Buf;
    use mjpeg_relay::mjpeg::encode;
    loop {
        let mut sock = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((sock, _)) => sock,
                Err(_) => continue,
            },
        };
        let _ = sock.set_nodelay(true);
        let (hub, stop) = (hub.clone(), stop.clone());
        tokio::spawn(async move {
            let mut request = [0u8; 1024];
            if sock.read(&mut request).await.is_err() {
                return;
            }
            let head = format!(
                "HTTP/1.0 200 OK\r\nContent-Type: {}\r\n\r\n",
                encode::CONTENT_TYPE
            );
            if sock.write_all(head.as_bytes()).await.is_err()
                || sock.write_all(&encode::OPENING).await.is_err()
            {
                return;
            }
            let mut rx = hub.subscribe();
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    changed = rx.changed() => if changed.is_err() { return },
                }
                let Some(frame) = rx.borrow_and_update().clone() else {
                    continue;
                };
                hub.counters.frames_out.fetch_add(1, Ordering::Relaxed);
                let mut part = encode::part_headers(frame.jpeg.len())
                    .chain(frame.jpeg)
                    .chain(encode::AFTER_FRAME);
                if sock.write_all_buf(&mut part).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// Overwrites the demo timestamp digits in place (same width).
fn restamp(jpeg: &mut [u8], micros: u64) {
    let Some(at) = jpeg
        .get(..256)
        .and_then(|head| memchr::memmem::find(head, TIMESTAMP_TAG))
    else {
        return;
    };
    let start = at + TIMESTAMP_TAG.len();
    let digits = jpeg[start..].iter().take_while(|b| b.is_ascii_digit()).count();
    let text = format!("{micros:0digits$}");
    if text.len() == digits {
        jpeg[start..start + digits].copy_from_slice(text.as_bytes());
    }
}

fn stamp_of(jpeg: &[u8]) -> Option<u64> {
    let t = mjpeg_relay::demo::timestamp(jpeg)?;
    Some(t.duration_since(UNIX_EPOCH).ok()?.as_micros() as u64)
}

/// Reads `/stream` over HTTP/1.0 and calls `on_frame` per whole part.
async fn read_stream(
    addr: std::net::SocketAddr,
    stop: &CancellationToken,
    mut on_frame: impl FnMut(&[u8]),
) -> std::io::Result<()> {
    let mut sock = TcpStream::connect(addr).await?;
    sock.set_nodelay(true)?;
    sock.write_all(b"GET /stream HTTP/1.0\r\n\r\n").await?;
    let mut buf = BytesMut::with_capacity(256 << 10);
    let mut in_head = true;
    loop {
        // Consume whatever is complete.
        while let Some(end) = memchr::memmem::find(&buf, b"\r\n\r\n") {
            if in_head {
                let _ = buf.split_to(end + 4);
                in_head = false;
                continue;
            }
            let headers = std::str::from_utf8(&buf[..end]).unwrap_or("");
            let len = headers
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .and_then(|v| v.trim().parse::<usize>().ok());
            let Some(len) = len else {
                // The opening boundary line has no headers block of its own.
                let _ = buf.split_to(end + 4);
                continue;
            };
            if buf.len() < end + 4 + len {
                break;
            }
            let part = buf.split_to(end + 4 + len);
            on_frame(&part[end + 4..]);
        }
        let n = tokio::select! {
            () = stop.cancelled() => return Ok(()),
            n = sock.read_buf(&mut buf) => n?,
        };
        if n == 0 {
            return Ok(());
        }
    }
}

/// A 64×48 solid-colour JPEG encoding `code` (0..=255) in red and green.
fn coded_frame(code: u8) -> Bytes {
    let (r, g) = ((code % 16) * 16 + 8, (code / 16) * 16 + 8);
    let rgb: Vec<u8> = (0..64 * 48).flat_map(|_| [r, g, 128]).collect();
    let mut out = Vec::new();
    let _ = jpeg_encoder::Encoder::new(&mut out, 95).encode(&rgb, 64, 48, jpeg_encoder::ColorType::Rgb);
    Bytes::from(out)
}

const LATENCY_PAGE: &str = r#"<!doctype html><meta charset=utf-8><title>latency</title>
<img id=i src="stream?QUERY" width=64 height=48><canvas id=w width=64 height=48></canvas>
<script>
const now = () => performance.timeOrigin + performance.now();
const code = (d) => Math.round((d[0] - 8) / 16) + 16 * Math.round((d[1] - 8) / 16);
const events = { img: [], ws: [], wsArrive: [] };
const img = document.getElementById('i');
const c = document.createElement('canvas'); c.width = c.height = 4;
const cx = c.getContext('2d', { willReadFrequently: true });
let last = -1;
function tick() {
  if (img.naturalWidth) {
    cx.drawImage(img, 0, 0, 4, 4);
    const k = code(cx.getImageData(2, 2, 1, 1).data);
    if (k !== last) { last = k; events.img.push([k, now()]); }
  }
  requestAnimationFrame(tick);
}
requestAnimationFrame(tick);
const w = document.getElementById('w').getContext('2d', { willReadFrequently: true });
const ws = new WebSocket('ws://' + location.host + '/ws');
ws.binaryType = 'arraybuffer';
ws.onmessage = async (ev) => {
  const t = now();
  const b = await createImageBitmap(new Blob([ev.data], { type: 'image/jpeg' }));
  w.drawImage(b, 0, 0);
  const k = code(w.getImageData(32, 24, 1, 1).data);
  events.ws.push([k, now()]); events.wsArrive.push([k, t]);
};
setTimeout(() => fetch('/result', { method: 'POST', body: JSON.stringify(events) }), SECONDS * 1000);
</script>"#;

fn browser(fps: u32, seconds: u64, stream_query: &str, chromium: &str) -> anyhow::Result<()> {
    let threads = Arc::new(RelayThreads::default());
    let rt = relay_runtime(&threads)?;
    let hub = Arc::new(Hub::new("default", "bench"));
    let stop = CancellationToken::new();
    let v = Viewers::new(hub.clone(), stop.clone(), ViewerOptions::default());
    let page = LATENCY_PAGE
        .replace("QUERY", stream_query)
        .replace("SECONDS", &seconds.to_string());
    let page = Bytes::from(page);
    let (result_tx, result_rx) = std::sync::mpsc::channel::<Bytes>();
    let addr = serve(&rt, stop.clone(), move |req| {
        let v = v.clone();
        let page = page.clone();
        let result_tx = result_tx.clone();
        async move {
            match (req.method(), req.uri().path()) {
                (&Method::GET, "/latency.html") => {
                    server::full(StatusCode::OK, "text/html; charset=utf-8", page, false)
                }
                (&Method::POST, "/result") => {
                    let body = req
                        .into_body()
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    let _ = result_tx.send(body);
                    server::text(StatusCode::OK, "ok\n", false)
                }
                _ => v.handle(req).await,
            }
        }
    })?;

    let frames: Vec<Bytes> = (0..=255u8).map(coded_frame).collect();
    let published: Arc<Mutex<Vec<(u8, f64)>>> = Arc::default();
    {
        let published = published.clone();
        spawn_publisher(&rt, hub.clone(), stop.clone(), fps, move |i| {
            let code = (i % 256) as u8;
            published
                .lock()
                .unwrap()
                .push((code, unix_micros() as f64 / 1000.0));
            frames[code as usize].clone()
        });
    }

    let profile = tempfile_dir()?;
    let mut child = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={profile}"))
        .arg(format!("http://{addr}/latency.html"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let result = result_rx.recv_timeout(Duration::from_secs(seconds + 60));
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&profile);
    stop.cancel();
    let result = result.map_err(|_| anyhow::anyhow!("Chromium sent no result"))?;
    let events: serde_json::Value = serde_json::from_slice(&result)?;
    let published = published.lock().unwrap().clone();
    println!("fps={fps} seconds={seconds} stream_query={stream_query:?}");
    for kind in ["img", "wsArrive", "ws"] {
        let mut lat: Vec<f64> = Vec::new();
        for e in events[kind].as_array().into_iter().flatten() {
            let (Some(code), Some(t)) = (e[0].as_u64(), e[1].as_f64()) else {
                continue;
            };
            // The latest publish of that code before it was seen.
            if let Some((_, p)) = published
                .iter()
                .rev()
                .find(|(c, p)| u64::from(*c) == code && *p <= t + 1.0)
            {
                lat.push(t - p);
            }
        }
        // Skip the first second (page load).
        let skip = fps as usize;
        let mut lat: Vec<f64> = lat.into_iter().skip(skip).collect();
        lat.sort_by(f64::total_cmp);
        let pct = |p: f64| {
            lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
                .copied()
                .unwrap_or(f64::NAN)
        };
        let what = match kind {
            "img" => "<img src=/stream> visible",
            "wsArrive" => "/ws message arrived",
            _ => "/ws drawn on canvas",
        };
        println!(
            "{what:28} n={:4} p50={:7.1} ms p90={:7.1} ms p99={:7.1} ms",
            lat.len(),
            pct(0.5),
            pct(0.9),
            pct(0.99)
        );
    }
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<String> {
    let dir = std::env::temp_dir().join(format!("viewer-bench-chromium-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir.display().to_string())
}
