//! The `mjpeg-relay` binary: parse the configuration, start logging, run the
//! subsystem tree, and map the outcome to an exit status
//! (0 clean shutdown, 64 bad configuration, 1 anything else).
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use mjpeg_relay::config::{self, Cli, Command, Config, ConfigError, DemoSettings, Env, Source};
use mjpeg_relay::relay::{self, Listeners};
use mjpeg_relay::{healthcheck, telemetry};
use tokio_util::sync::CancellationToken;

const EX_USAGE: u8 = 64;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let rendered = e.render().to_string();
            let line = rendered.lines().next().unwrap_or("invalid arguments").trim();
            eprintln!("mjpeg-relay: {line} (see mjpeg-relay --help)");
            return ExitCode::from(EX_USAGE);
        }
    };
    let config = match cli.command {
        Some(Command::Healthcheck(args)) => return healthcheck(args),
        Some(Command::MockCamera(args)) => {
            let mut config = Config::new(Source::Demo(DemoSettings {
                fps: args.fps,
                width: args.width,
                height: args.height,
            }));
            config.port = args.port;
            config.bind = args.bind;
            config.bind_is_default = false;
            config.admin_port = None;
            config.shutdown_timeout = Duration::from_secs(2);
            config
        }
        None => match Env::from_process().and_then(|env| Config::from_sources(cli.relay, env)) {
            Ok(config) => config,
            Err(e) => return usage_error(&e),
        },
    };
    if config.drain_delay >= config.shutdown_timeout {
        return usage_error(&ConfigError::new(
            "--drain-delay",
            humantime::format_duration(config.drain_delay).to_string(),
            "a duration shorter than --shutdown-timeout",
        ));
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("mjpeg-relay: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The gRPC exporter needs the runtime; the HTTP one runs on SDK threads.
    let telemetry = {
        let _entered = runtime.enter();
        telemetry::init(config.log_format, config.quiet)
    };
    // Flushing telemetry is part of the shutdown budget.
    let flush_within = (config.shutdown_timeout / 2).min(Duration::from_secs(5));
    let code = runtime.block_on(async move {
        let listeners = match Listeners::bind(&config) {
            Ok(listeners) => listeners,
            Err(e) => return usage_error(&e),
        };
        // Handlers are in place before the "listening" line, so a SIGTERM
        // that follows it is always a graceful shutdown.
        let shutdown = CancellationToken::new();
        if let Err(e) = watch_signals(shutdown.clone()) {
            eprintln!("mjpeg-relay: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
        let viewer = listeners.viewer_addr().map(|a| a.to_string()).unwrap_or_default();
        let scheme = if config.tls.is_some() { "https" } else { "http" };
        match listeners.admin_addr() {
            Some(admin) => tracing::info!(
                "relaying {} — viewers: {scheme}://{viewer}/stream, admin: http://{admin}/readyz",
                config.source.display_name()
            ),
            None => tracing::info!(
                "serving {} at {scheme}://{viewer}/stream",
                config.source.display_name()
            ),
        }
        match relay::run(config, listeners, shutdown).await {
            Ok(()) => {
                tracing::info!("shut down cleanly");
                ExitCode::SUCCESS
            }
            Err(e) => {
                tracing::error!("stopped: {e}");
                eprintln!("mjpeg-relay: {e}");
                ExitCode::FAILURE
            }
        }
    });
    telemetry.shutdown(flush_within);
    code
}

/// SIGTERM or SIGINT starts a graceful shutdown; a second one exits at once
/// (status 130), for an operator who does not want to wait.
fn watch_signals(shutdown: CancellationToken) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        let mut received = 0;
        loop {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            received += 1;
            if received == 1 {
                tracing::info!("{name}: shutting down gracefully (send it again to exit at once)");
                shutdown.cancel();
            } else {
                eprintln!("mjpeg-relay: second {name}: exiting now");
                std::process::exit(130);
            }
        }
    });
    Ok(())
}

fn usage_error(e: &ConfigError) -> ExitCode {
    eprintln!("mjpeg-relay: {e}");
    ExitCode::from(EX_USAGE)
}

fn healthcheck(args: config::HealthcheckArgs) -> ExitCode {
    let raw = args
        .admin_port
        .or_else(|| std::env::var("MJPEG_RELAY_ADMIN_PORT").ok());
    let port = match raw.as_deref().map(config::parse_port) {
        None => config::DEFAULT_ADMIN_PORT,
        Some(Ok(port)) => port,
        Some(Err(expected)) => {
            return usage_error(&ConfigError::new(
                "--admin-port",
                raw.unwrap_or_default(),
                expected,
            ));
        }
    };
    match healthcheck::probe(&args.host, port, Duration::from_secs(3)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("mjpeg-relay healthcheck: {why}");
            ExitCode::FAILURE
        }
    }
}
