//! The subsystem tree: `upstream` (or `demo`), `viewers` and `admin` under one
//! tokio-graceful-shutdown `Toplevel`. Listeners are bound before the tree
//! starts, so a busy port is a configuration error, not a runtime failure.
//!
//! Shutdown order: readiness drops at once, then `--drain-delay`, then the
//! viewer listener closes and every stream ends with its closing boundary;
//! the admin port answers (503) until the viewers are gone.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_graceful_shutdown::errors::GracefulShutdownError;
use tokio_graceful_shutdown::{SubsystemBuilder, SubsystemHandle, Toplevel};
use tokio_util::sync::CancellationToken;

use crate::admin::{Admin, Readiness};
use crate::config::{Config, ConfigError, DemoSettings, Source, TlsFiles};
use crate::demo::Pattern;
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::server::{self, ViewerOptions, Viewers};
use crate::upstream::{self, Upstream};

/// The bound sockets of one relay.
#[derive(Debug)]
pub struct Listeners {
    /// Viewer port.
    pub viewer: TcpListener,
    /// Admin port, if the relay has one.
    pub admin: Option<TcpListener>,
}

impl Listeners {
    /// Binds the ports of `config`. Must run inside a tokio runtime.
    pub fn bind(config: &Config) -> Result<Self, ConfigError> {
        let viewer = bind_one(config, config.port, "--port")?;
        let admin = match config.admin_port {
            Some(port) => Some(bind_one(config, port, "--admin-port")?),
            None => None,
        };
        Ok(Self { viewer, admin })
    }

    /// Where viewers connect.
    pub fn viewer_addr(&self) -> io::Result<SocketAddr> {
        self.viewer.local_addr()
    }

    /// Where probes connect.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|l| l.local_addr().ok())
    }
}

fn bind_one(config: &Config, port: u16, flag: &str) -> Result<TcpListener, ConfigError> {
    let listen = |ip: IpAddr| -> io::Result<TcpListener> {
        let std = std::net::TcpListener::bind(SocketAddr::new(ip, port))?;
        std.set_nonblocking(true)?;
        TcpListener::from_std(std)
    };
    let result = match listen(config.bind) {
        // The default `::` on a host without IPv6: fall back to IPv4.
        Err(e) if config.bind_is_default && e.kind() != io::ErrorKind::AddrInUse => {
            listen(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
        }
        other => other,
    };
    result.map_err(|e| {
        let why = match e.kind() {
            io::ErrorKind::AddrInUse => format!("port {port} is in use; pick another with {flag}"),
            io::ErrorKind::PermissionDenied => {
                format!("no permission to listen on port {port}; use a port above 1023")
            }
            _ => format!("cannot listen on {}:{port} ({e})", config.bind),
        };
        ConfigError::new(flag, port.to_string(), why)
    })
}

/// How a run ended badly.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A subsystem failed; the tree shut down.
    #[error("{0}")]
    Failed(String),
}

/// Runs the relay until `shutdown` is cancelled (the binary cancels it on
/// SIGTERM/SIGINT). `Ok` means a clean shutdown.
pub async fn run(config: Config, listeners: Listeners, shutdown: CancellationToken) -> Result<(), RunError> {
    let hub = Arc::new(Hub::new(config.source_name.clone(), config.source.display_name()));
    // Every source, the primary first: (hub, where its frames come from).
    let mut sources = vec![(hub.clone(), config.source.clone())];
    for (name, url) in &config.named_sources {
        let named = Arc::new(Hub::new(name.clone(), url.redacted()));
        sources.push((named, Source::Camera(url.clone())));
    }
    let readiness = Readiness::new();
    let viewers_done = CancellationToken::new();
    let timeout = config.shutdown_timeout;
    let client = upstream::client(config.source_ca_cert.as_deref(), config.source_insecure)
        .map_err(|e| RunError::Failed(format!("cannot build the HTTP client: {e}")))?;

    let toplevel = Toplevel::new_with_shutdown_token(
        async move |s: &mut SubsystemHandle| {
            // Ingest runs until the viewers are gone, so streams stay live
            // through the drain delay.
            for (source_hub, source) in &sources {
                let ingest_stop = viewers_done.clone();
                let name = format!("upstream-{}", source_hub.name());
                match source.clone() {
                    Source::Camera(url) => {
                        let upstream = Upstream {
                            hub: source_hub.clone(),
                            url,
                            max_frame_size: config.max_frame_size,
                            stall_timeout: config.stall_timeout,
                            reconnect_min: config.reconnect_min,
                            reconnect_max: config.reconnect_max,
                            placeholder: config.placeholder,
                            mode: config.source_mode,
                            poll_interval: config.poll_interval,
                            on_demand: config.on_demand.then_some(config.linger),
                        };
                        let client = client.clone();
                        s.start(SubsystemBuilder::new(
                            name,
                            async move |_: &mut SubsystemHandle| {
                                upstream.run(client, ingest_stop).await;
                                Ok::<(), anyhow::Error>(())
                            },
                        ));
                    }
                    Source::Demo(settings) => {
                        let hub = source_hub.clone();
                        s.start(SubsystemBuilder::new(
                            "demo",
                            async move |_: &mut SubsystemHandle| {
                                demo_camera(hub, settings, ingest_stop).await
                            },
                        ));
                    }
                }
            }

            if config.ready_requires_source {
                readiness.require_source(hub.clone(), config.stall_timeout);
            }
            let metrics = Arc::new(Metrics::new(sources.iter().map(|(h, _)| h.clone()).collect()));
            crate::metrics::register_otel(&hub);
            let named = sources
                .iter()
                .map(|(h, _)| (h.name().to_string(), h.clone()))
                .collect();
            let viewers = Viewers::new(hub, CancellationToken::new(), ViewerOptions::from_config(&config))
                .with_sources(named);
            let (viewer_listener, drain_delay) = (listeners.viewer, config.drain_delay);
            let (ready, done) = (readiness.clone(), viewers_done.clone());
            let tls = config.tls.clone();
            s.start(SubsystemBuilder::new(
                "viewers",
                async move |s: &mut SubsystemHandle| {
                    serve_viewers(s, viewer_listener, tls, viewers, ready, drain_delay, done).await
                },
            ));
            if let Some(admin_listener) = listeners.admin {
                let admin = Admin { readiness, metrics };
                s.start(SubsystemBuilder::new(
                    "admin",
                    async move |s: &mut SubsystemHandle| {
                        serve_admin(s, admin_listener, admin, viewers_done).await
                    },
                ));
            }
        },
        shutdown,
    );
    match toplevel.handle_shutdown_requests(timeout).await {
        Ok(()) => Ok(()),
        Err(GracefulShutdownError::ShutdownTimeout(errors)) if errors.is_empty() => {
            // Viewers that would not take their closing boundary in time are
            // cut off; that is still the shutdown the operator asked for.
            tracing::warn!("some viewers were still connected after --shutdown-timeout; closed them");
            Ok(())
        }
        Err(e) => {
            let reasons: Vec<String> = e.get_subsystem_errors().iter().map(ToString::to_string).collect();
            Err(RunError::Failed(if reasons.is_empty() {
                e.to_string()
            } else {
                reasons.join("; ")
            }))
        }
    }
}

/// The `viewers` subsystem. The accept loop runs on its own task so it
/// keeps accepting while this waits out the drain delay.
async fn serve_viewers(
    s: &mut SubsystemHandle,
    listener: TcpListener,
    tls: Option<TlsFiles>,
    viewers: Viewers,
    readiness: Arc<Readiness>,
    drain_delay: Duration,
    done: CancellationToken,
) -> anyhow::Result<()> {
    let streams_end = viewers.shutdown.clone();
    let sessions = viewers.sessions.clone();
    let tls = match tls {
        Some(files) => Some(crate::tls::start(files, streams_end.clone())?),
        None => None,
    };
    let mut serving = tokio::spawn(server::serve_with(
        listener,
        tls,
        streams_end.clone(),
        move |req| {
            let viewers = viewers.clone();
            async move { viewers.handle(req).await }
        },
    ));
    readiness.set_serving();
    tokio::select! {
        _ = &mut serving => anyhow::bail!("the viewer listener stopped unexpectedly"),
        () = s.on_shutdown_requested() => {}
    }
    readiness.set_shutting_down();
    if !drain_delay.is_zero() {
        tracing::info!(
            "draining: not ready; streams end in {} ms",
            drain_delay.as_millis()
        );
        tokio::time::sleep(drain_delay).await;
    }
    streams_end.cancel();
    serving.await.context("viewer listener task")?;
    // WebSocket sessions send their close frames.
    sessions.close();
    sessions.wait().await;
    done.cancel();
    Ok(())
}

/// The `admin` subsystem: probes keep answering (503 once shutdown began)
/// until the viewers are gone.
async fn serve_admin(
    s: &mut SubsystemHandle,
    listener: TcpListener,
    admin: Admin,
    viewers_done: CancellationToken,
) -> anyhow::Result<()> {
    let stop = CancellationToken::new();
    let readiness = admin.readiness.clone();
    let mut serving = tokio::spawn(server::serve(listener, stop.clone(), move |req| {
        let admin = admin.clone();
        async move { admin.handle(req).await }
    }));
    tokio::select! {
        _ = &mut serving => anyhow::bail!("the admin listener stopped unexpectedly"),
        () = s.on_shutdown_requested() => {}
    }
    readiness.set_shutting_down();
    tokio::select! {
        _ = &mut serving => anyhow::bail!("the admin listener stopped unexpectedly"),
        () = viewers_done.cancelled() => {}
    }
    stop.cancel();
    serving.await.context("admin listener task")?;
    Ok(())
}

/// The built-in camera: renders the test pattern at `settings.fps` until
/// cancelled. Encoding runs on the blocking pool so viewers never wait on it.
pub async fn demo_camera(
    hub: Arc<Hub>,
    settings: DemoSettings,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let mut pattern = Pattern::new(settings);
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(settings.fps.max(1))));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut n = 0u64;
    loop {
        tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            _ = ticks.tick() => {}
        }
        n += 1;
        let (back, jpeg) = tokio::task::spawn_blocking(move || {
            let jpeg = pattern.render(n, SystemTime::now());
            (pattern, jpeg)
        })
        .await
        .context("demo camera renderer failed")?;
        pattern = back;
        hub.publish(jpeg);
    }
}
