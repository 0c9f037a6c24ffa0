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
    telemetry::init_logging(config.log_format, config.quiet);

    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("mjpeg-relay: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let listeners = match Listeners::bind(&config) {
            Ok(listeners) => listeners,
            Err(e) => return usage_error(&e),
        };
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
        match relay::run(config, listeners, CancellationToken::new(), true).await {
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
    })
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
