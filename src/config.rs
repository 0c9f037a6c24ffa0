//! The one [`Config`]: command-line flags (clap) merged over `MJPEG_RELAY_*`
//! environment variables (envy) merged over defaults, validated in one place.
//! A bad value becomes a [`ConfigError`] naming the flag or variable it came
//! from; `main` turns it into exit status 64. Secrets never reach `Debug` or
//! `Display` output.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde::Deserialize;
use url::Url;

/// Default viewer port.
pub const DEFAULT_PORT: u16 = 54321;
/// Default admin (probes, metrics) port.
pub const DEFAULT_ADMIN_PORT: u16 = 9090;
/// Prefix of every environment variable.
pub const ENV_PREFIX: &str = "MJPEG_RELAY_";

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "mjpeg-relay",
    version,
    about = "Relay one MJPEG camera to many viewers: /stream, /snapshot, /status on one port, \
             probes on another.",
    long_about = None,
    args_conflicts_with_subcommands = true,
    after_help = "Every flag can also be set by its environment variable; a flag beats its \
                  variable, which beats the default. Durations: 500ms, 5s, 2m. Sizes: 512KiB, 8MiB.\n\
                  OpenTelemetry export is configured by the standard OTEL_* variables."
)]
pub struct Cli {
    /// A subcommand, or none to run the relay.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The relay's flags.
    #[command(flatten)]
    pub relay: RelayArgs,
}

/// Subcommands besides the relay itself.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the built-in test-pattern camera as an MJPEG HTTP camera
    /// (/stream and /snapshot), e.g. for docker-compose and tests.
    MockCamera(MockCameraArgs),
    /// Probe a running relay's /livez on the admin port; exit 0 if live, 1
    /// if not (for container HEALTHCHECKs: the image has no curl).
    Healthcheck(HealthcheckArgs),
}

/// Flags of the relay. All are strings here and validated in [`Config::from_sources`],
/// so that errors name the flag or variable and exit 64.
#[derive(Debug, Args, Default)]
pub struct RelayArgs {
    /// MJPEG stream URL, http(s)://[user:pass@]host[:port]/path
    /// [env: MJPEG_RELAY_SOURCE]
    #[arg(value_name = "SOURCE_URL")]
    pub source: Option<String>,
    /// A named camera, repeatable: served at /NAME/stream, /NAME/snapshot,
    /// /NAME/ws; the first (or the SOURCE_URL) is also at /stream
    /// [env: MJPEG_RELAY_SOURCES=front=http://…,back=http://…]
    #[arg(long = "source", id = "named_source", value_name = "NAME=URL")]
    pub named_sources: Vec<String>,
    /// Relay the built-in test-pattern camera instead of a URL
    /// [env: MJPEG_RELAY_DEMO=true]
    #[arg(long)]
    pub demo: bool,
    /// Viewer port for /stream, /snapshot, /status; 0 picks a free port
    /// [env: MJPEG_RELAY_PORT] [default: 54321]
    #[arg(short, long, value_name = "PORT")]
    pub port: Option<String>,
    /// Listen address for both ports [env: MJPEG_RELAY_BIND] [default: :: (dual-stack)]
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<String>,
    /// Admin port for /livez, /readyz, /metrics; 0 picks a free port
    /// [env: MJPEG_RELAY_ADMIN_PORT] [default: 9090]
    #[arg(long, value_name = "PORT")]
    pub admin_port: Option<String>,
    /// Log warnings and errors only [env: MJPEG_RELAY_QUIET=true]
    #[arg(short, long)]
    pub quiet: bool,
    /// Log format: text or json [env: MJPEG_RELAY_LOG_FORMAT] [default: text]
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// How long SIGTERM waits for viewers to be released
    /// [env: MJPEG_RELAY_SHUTDOWN_TIMEOUT] [default: 10s]
    #[arg(long, value_name = "DURATION")]
    pub shutdown_timeout: Option<String>,
    /// After SIGTERM, how long /readyz reports 503 before streams end (lets
    /// load balancers stop routing first) [env: MJPEG_RELAY_DRAIN_DELAY] [default: 0s]
    #[arg(long, value_name = "DURATION")]
    pub drain_delay: Option<String>,
    /// User name for the camera (overrides the URL's)
    /// [env: MJPEG_RELAY_SOURCE_USER]
    #[arg(long, value_name = "USER")]
    pub source_user: Option<String>,
    /// Password for the camera (overrides the URL's); prefer the _FILE variable
    /// [env: MJPEG_RELAY_SOURCE_PASSWORD]
    #[arg(long, value_name = "PASSWORD")]
    pub source_password: Option<String>,
    /// File holding the camera password, e.g. a mounted Kubernetes secret
    /// [env: MJPEG_RELAY_SOURCE_PASSWORD_FILE]
    #[arg(long, value_name = "PATH")]
    pub source_password_file: Option<String>,
    /// Largest accepted frame; bigger parts are dropped with a warning
    /// [env: MJPEG_RELAY_MAX_FRAME_SIZE] [default: 8MiB]
    #[arg(long, value_name = "SIZE")]
    pub max_frame_size: Option<String>,
    /// No bytes from the camera for this long means the connection is dead
    /// [env: MJPEG_RELAY_STALL_TIMEOUT] [default: 10s]
    #[arg(long, value_name = "DURATION")]
    pub stall_timeout: Option<String>,

    // --- viewers (issue 8) ---
    /// Resend the last frame on /stream when the camera sent none for this
    /// long, so static scenes do not freeze browsers and proxies; off or 0
    /// disables [env: MJPEG_RELAY_IDLE_REPEAT] [default: 1s]
    #[arg(long, value_name = "DURATION")]
    pub idle_repeat: Option<String>,
    /// Highest frame rate sent to any viewer (/stream, /ws); a viewer's
    /// ?fps=N can only lower it [env: MJPEG_RELAY_MAX_FPS] [default: unlimited]
    #[arg(long, value_name = "FPS")]
    pub max_fps: Option<String>,
    /// PEM certificate chain: serve viewers over HTTPS (HTTP/2 via ALPN);
    /// reloaded on SIGHUP or when the file changes. Needs --tls-key
    /// [env: MJPEG_RELAY_TLS_CERT]
    #[arg(long, value_name = "PATH")]
    pub tls_cert: Option<String>,
    /// PEM private key for --tls-cert [env: MJPEG_RELAY_TLS_KEY]
    #[arg(long, value_name = "PATH")]
    pub tls_key: Option<String>,
    /// Allow cross-origin requests from these origins (comma-separated, or *)
    /// on the viewer port; answers CORS preflights [env: MJPEG_RELAY_CORS_ORIGIN]
    /// [default: off]
    #[arg(long, value_name = "ORIGINS")]
    pub cors_origin: Option<String>,

    // --- ingest (issue 5) ---
    /// First delay before reconnecting to the camera; doubles (with jitter)
    /// up to --reconnect-max [env: MJPEG_RELAY_RECONNECT_MIN] [default: 500ms]
    #[arg(long, value_name = "DURATION")]
    pub reconnect_min: Option<String>,
    /// Longest delay between reconnection attempts
    /// [env: MJPEG_RELAY_RECONNECT_MAX] [default: 30s]
    #[arg(long, value_name = "DURATION")]
    pub reconnect_max: Option<String>,
    /// PEM file of a CA to trust for an https:// camera (private CA)
    /// [env: MJPEG_RELAY_SOURCE_CA_CERT]
    #[arg(long, value_name = "PATH")]
    pub source_ca_cert: Option<String>,
    /// Accept any certificate from an https:// camera (self-signed); warns at
    /// start [env: MJPEG_RELAY_SOURCE_INSECURE=true]
    #[arg(long)]
    pub source_insecure: bool,

    /// While the camera is down (after it has sent frames), show viewers a
    /// "camera offline" picture: on or off [env: MJPEG_RELAY_PLACEHOLDER] [default: on]
    #[arg(long, value_name = "on|off")]
    pub placeholder: Option<String>,
    /// auto: an image/jpeg answer means a snapshot-only camera, polled;
    /// mjpeg: always a stream; snapshot: always poll single pictures
    /// [env: MJPEG_RELAY_SOURCE_MODE] [default: auto]
    #[arg(long, value_name = "auto|mjpeg|snapshot")]
    pub source_mode: Option<String>,
    /// Time between requests to a snapshot-only camera
    /// [env: MJPEG_RELAY_POLL_INTERVAL] [default: 200ms]
    #[arg(long, value_name = "DURATION")]
    pub poll_interval: Option<String>,
    /// Connect to the camera only while a viewer or snapshot request needs it
    /// [env: MJPEG_RELAY_ON_DEMAND=true]
    #[arg(long)]
    pub on_demand: bool,
    /// With --on-demand: keep the camera connection this long after the last
    /// viewer leaves [env: MJPEG_RELAY_LINGER] [default: 30s]
    #[arg(long, value_name = "DURATION")]
    pub linger: Option<String>,
    /// With --on-demand: how long /snapshot waits for a fresh frame before
    /// answering 504 [env: MJPEG_RELAY_SNAPSHOT_TIMEOUT] [default: 10s]
    #[arg(long, value_name = "DURATION")]
    pub snapshot_timeout: Option<String>,
    /// How often the "camera offline" picture is refreshed
    /// [env: MJPEG_RELAY_PLACEHOLDER_INTERVAL] [default: 1s]
    #[arg(long, value_name = "DURATION")]
    pub placeholder_interval: Option<String>,

    // --- operations (issue 6) ---
    /// /readyz also requires a frame from the source within --stall-timeout
    /// [env: MJPEG_RELAY_READY_REQUIRES_SOURCE=true]
    #[arg(long)]
    pub ready_requires_source: bool,
}

/// Flags of `mock-camera`.
#[derive(Debug, Args)]
pub struct MockCameraArgs {
    /// Port to serve the camera on
    #[arg(short, long, default_value_t = 8080)]
    pub port: u16,
    /// Listen address
    #[arg(long, default_value = "::")]
    pub bind: IpAddr,
    /// Frames per second
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=120))]
    pub fps: u32,
    /// Picture width in pixels
    #[arg(long, default_value_t = 640, value_parser = clap::value_parser!(u16).range(16..=4096))]
    pub width: u16,
    /// Picture height in pixels
    #[arg(long, default_value_t = 480, value_parser = clap::value_parser!(u16).range(16..=4096))]
    pub height: u16,
}

/// Flags of `healthcheck`.
#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// Admin port of the relay to probe [env: MJPEG_RELAY_ADMIN_PORT] [default: 9090]
    #[arg(long, value_name = "PORT")]
    pub admin_port: Option<String>,
    /// Host to probe
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
}

/// `MJPEG_RELAY_*` variables, read by envy (names are the lower-cased
/// suffixes). Raw strings: validation names the variable on error. Each
/// field is the variable of the flag of the same name in [`RelayArgs`].
#[allow(missing_docs)]
#[derive(Debug, Default, Deserialize)]
pub struct Env {
    pub source: Option<String>,
    pub sources: Option<String>,
    pub demo: Option<String>,
    pub port: Option<String>,
    pub bind: Option<String>,
    pub admin_port: Option<String>,
    pub quiet: Option<String>,
    pub log_format: Option<String>,
    pub shutdown_timeout: Option<String>,
    pub drain_delay: Option<String>,
    pub source_user: Option<String>,
    pub source_password: Option<String>,
    pub source_password_file: Option<String>,
    pub max_frame_size: Option<String>,
    pub stall_timeout: Option<String>,
    // viewers (issue 8)
    pub idle_repeat: Option<String>,
    pub max_fps: Option<String>,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    pub cors_origin: Option<String>,
    // ingest (issue 5)
    pub reconnect_min: Option<String>,
    pub reconnect_max: Option<String>,
    pub source_ca_cert: Option<String>,
    pub source_insecure: Option<String>,
    pub placeholder: Option<String>,
    pub placeholder_interval: Option<String>,
    pub source_mode: Option<String>,
    pub poll_interval: Option<String>,
    pub on_demand: Option<String>,
    pub linger: Option<String>,
    pub snapshot_timeout: Option<String>,
    // operations (issue 6)
    pub ready_requires_source: Option<String>,
}

impl Env {
    /// Reads the process environment.
    pub fn from_process() -> Result<Self, ConfigError> {
        envy::prefixed(ENV_PREFIX)
            .from_env()
            .map_err(|e| ConfigError::new(format!("{ENV_PREFIX}*"), "", e.to_string()))
    }
}

/// A configuration value that cannot be used: names where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The flag (`--port`) or variable (`MJPEG_RELAY_PORT`).
    pub origin: String,
    /// The bad value (never a secret).
    pub value: String,
    /// What is allowed.
    pub expected: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.value.is_empty() {
            write!(f, "{}: {}", self.origin, self.expected)
        } else {
            write!(
                f,
                "invalid value '{}' for {}: {}",
                self.value, self.origin, self.expected
            )
        }
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    /// A new error about `origin`.
    pub fn new(origin: impl Into<String>, value: impl Into<String>, expected: impl Into<String>) -> Self {
        Self {
            origin: origin.into(),
            value: value.into(),
            expected: expected.into(),
        }
    }
}

/// How the camera delivers pictures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceMode {
    /// Decided by the answer: `image/*` → snapshot polling, else a stream.
    Auto,
    /// Always a multipart stream.
    Mjpeg,
    /// Always single pictures, polled.
    Snapshot,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// A camera URL with its credentials held apart, so the URL can be shown.
#[derive(Clone, PartialEq, Eq)]
pub struct SourceUrl {
    /// The URL without user info.
    pub url: Url,
    /// User name, if any.
    pub user: Option<String>,
    /// Password, if any. Never printed.
    pub password: Option<String>,
}

impl SourceUrl {
    /// Parses `http(s)://[user:pass@]host[:port]/path`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut url = Url::parse(raw).map_err(|e| format!("not a URL ({e})"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("scheme '{}' is not http or https", url.scheme()));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("the URL has no host".into());
        }
        let decode = |s: &str| percent_decode(s);
        let user = (!url.username().is_empty()).then(|| decode(url.username()));
        let password = url.password().map(decode);
        // Infallible for http(s) URLs with a host.
        let _ = url.set_username("");
        let _ = url.set_password(None);
        Ok(Self { url, user, password })
    }

    /// The URL as it may be shown: `http://user:***@host/path`.
    pub fn redacted(&self) -> String {
        redact(&self.url, self.user.as_deref(), self.password.is_some())
    }
}

fn redact(url: &Url, user: Option<&str>, has_password: bool) -> String {
    let mut shown = url.clone();
    if let Some(user) = user {
        let _ = shown.set_username(user);
        if has_password {
            let _ = shown.set_password(Some("***"));
        }
    } else if has_password {
        let _ = shown.set_username("***");
    }
    shown.to_string().replace("%2A%2A%2A", "***")
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 3 <= bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl fmt::Debug for SourceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Display for SourceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Settings of the built-in test-pattern camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoSettings {
    /// Frames per second.
    pub fps: u32,
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
}

impl Default for DemoSettings {
    fn default() -> Self {
        Self {
            fps: 30,
            width: 640,
            height: 480,
        }
    }
}

/// Where frames come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// An MJPEG camera over HTTP(S).
    Camera(SourceUrl),
    /// The built-in test pattern.
    Demo(DemoSettings),
}

impl Source {
    /// How the source is shown on status pages and in logs (no secrets).
    pub fn display_name(&self) -> String {
        match self {
            Source::Camera(url) => url.redacted(),
            Source::Demo(d) => format!("built-in demo camera ({}x{} @ {} fps)", d.width, d.height, d.fps),
        }
    }
}

/// The validated configuration of one relay.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where frames come from (the source served at `/stream`).
    pub source: Source,
    /// Name of `source` (`default` unless it came from `--source NAME=URL`).
    pub source_name: String,
    /// Further named cameras, each at `/NAME/stream` etc.
    pub named_sources: Vec<(String, SourceUrl)>,
    /// Viewer port (0: any free port).
    pub port: u16,
    /// Listen address of both ports.
    pub bind: IpAddr,
    /// Whether `bind` was left at its default (dual-stack `::`), so an IPv4-only
    /// host may fall back to `0.0.0.0`.
    pub bind_is_default: bool,
    /// Admin port; `None` runs no admin server (mock camera).
    pub admin_port: Option<u16>,
    /// Warnings and errors only.
    pub quiet: bool,
    /// Log format.
    pub log_format: LogFormat,
    /// How long shutdown may take.
    pub shutdown_timeout: Duration,
    /// How long readiness is down before streams end.
    pub drain_delay: Duration,
    /// Largest accepted frame.
    pub max_frame_size: usize,
    /// No camera bytes for this long → reconnect.
    pub stall_timeout: Duration,

    // --- viewers (issue 8) ---
    /// Resend the last frame on `/stream` after this long without a new one.
    pub idle_repeat: Option<Duration>,
    /// Frame-rate cap for every viewer.
    pub max_fps: Option<f64>,
    /// Certificate and key files: HTTPS (and HTTP/2) on the viewer port.
    pub tls: Option<TlsFiles>,
    /// Origins allowed to make cross-origin requests.
    pub cors_origin: Option<CorsOrigins>,

    // --- ingest (issue 5) ---
    /// First reconnection delay.
    pub reconnect_min: Duration,
    /// Longest reconnection delay.
    pub reconnect_max: Duration,
    /// Extra CA (PEM) trusted for https cameras.
    pub source_ca_cert: Option<PathBuf>,
    /// Accept any camera certificate.
    pub source_insecure: bool,
    /// Feed-lost picture refresh interval; `None` is off.
    pub placeholder: Option<Duration>,
    /// Stream or snapshot polling.
    pub source_mode: SourceMode,
    /// Time between snapshot requests.
    pub poll_interval: Duration,
    /// Connect only while frames are wanted.
    pub on_demand: bool,
    /// On-demand: how long the connection outlives the last viewer.
    pub linger: Duration,
    /// On-demand: how long `/snapshot` waits for a fresh frame.
    pub snapshot_timeout: Duration,

    // --- operations (issue 6) ---
    /// `/readyz` also needs a fresh frame (within `stall_timeout`).
    pub ready_requires_source: bool,
}

/// The certificate chain and private key of the viewer port (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// Private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// `--cors-origin`: any origin, or a list of exact origins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigins {
    /// `*`: every origin.
    Any,
    /// Exact origins such as `https://dash.example.com`.
    List(Vec<String>),
}

impl CorsOrigins {
    /// Parses `*` or `https://a.example,http://b.example:8080`.
    pub fn parse(s: &str) -> Result<Self, String> {
        const EXPECTED: &str = "* or comma-separated origins such as https://dash.example.com";
        let s = s.trim();
        if s == "*" {
            return Ok(Self::Any);
        }
        let mut list = Vec::new();
        for origin in s.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            let url = Url::parse(origin).map_err(|_| EXPECTED.to_string())?;
            let valid = matches!(url.scheme(), "http" | "https")
                && url.host_str().is_some()
                && url.path() == "/"
                && !origin.ends_with('/')
                && url.query().is_none();
            if !valid {
                return Err(EXPECTED.into());
            }
            list.push(origin.to_ascii_lowercase());
        }
        if list.is_empty() {
            return Err(EXPECTED.into());
        }
        Ok(Self::List(list))
    }

    /// Whether a request from `origin` may read the answer.
    pub fn allows(&self, origin: &str) -> bool {
        match self {
            Self::Any => true,
            Self::List(list) => list.iter().any(|o| o.eq_ignore_ascii_case(origin)),
        }
    }
}

/// `off`/`0` → `None`, else a duration above zero.
pub fn parse_optional_duration(s: &str) -> Result<Option<Duration>, String> {
    match s.to_ascii_lowercase().as_str() {
        "off" | "0" | "none" | "false" => Ok(None),
        _ => {
            let d = parse_duration(s).map_err(|_| "a duration such as 500ms or 1s, or off".to_string())?;
            Ok((!d.is_zero()).then_some(d))
        }
    }
}

impl Config {
    /// Defaults for `source`: what a run with no flags and no variables gets.
    pub fn new(source: Source) -> Self {
        Self {
            source,
            source_name: "default".into(),
            named_sources: Vec::new(),
            port: DEFAULT_PORT,
            bind: IpAddr::from([0u16; 8]),
            bind_is_default: true,
            admin_port: Some(DEFAULT_ADMIN_PORT),
            quiet: false,
            log_format: LogFormat::Text,
            shutdown_timeout: Duration::from_secs(10),
            drain_delay: Duration::ZERO,
            max_frame_size: 8 << 20,
            stall_timeout: Duration::from_secs(10),
            idle_repeat: Some(Duration::from_secs(1)),
            max_fps: None,
            tls: None,
            cors_origin: None,
            reconnect_min: Duration::from_millis(500),
            reconnect_max: Duration::from_secs(30),
            source_ca_cert: None,
            source_insecure: false,
            placeholder: Some(Duration::from_secs(1)),
            source_mode: SourceMode::Auto,
            poll_interval: Duration::from_millis(200),
            on_demand: false,
            linger: Duration::from_secs(30),
            snapshot_timeout: Duration::from_secs(10),
            ready_requires_source: false,
        }
    }

    /// Merges flags over variables over defaults and validates the result.
    pub fn from_sources(args: RelayArgs, env: Env) -> Result<Self, ConfigError> {
        let mut config = Self::new(Source::Demo(DemoSettings::default()));
        let pick = |flag: Option<String>, var: Option<String>, flag_name: &str, var_name: &str| {
            pick(flag, var, flag_name, var_name)
        };

        if let Some(v) = pick(args.port, env.port, "--port", "PORT") {
            config.port = v.parse_with(parse_port)?;
        }
        if let Some(v) = pick(args.admin_port, env.admin_port, "--admin-port", "ADMIN_PORT") {
            config.admin_port = Some(v.parse_with(parse_port)?);
        }
        if let Some(v) = pick(args.bind, env.bind, "--bind", "BIND") {
            config.bind = v.parse_with(|s| {
                s.trim_matches(['[', ']'])
                    .parse::<IpAddr>()
                    .map_err(|_| "an IP address such as ::, 0.0.0.0 or 127.0.0.1".into())
            })?;
            config.bind_is_default = false;
        }
        config.quiet = args.quiet || flag_env(env.quiet, "QUIET")?;
        if let Some(v) = pick(args.log_format, env.log_format, "--log-format", "LOG_FORMAT") {
            config.log_format = v.parse_with(|s| match s.to_ascii_lowercase().as_str() {
                "text" => Ok(LogFormat::Text),
                "json" => Ok(LogFormat::Json),
                _ => Err("text or json".into()),
            })?;
        }
        if let Some(v) = pick(
            args.shutdown_timeout,
            env.shutdown_timeout,
            "--shutdown-timeout",
            "SHUTDOWN_TIMEOUT",
        ) {
            config.shutdown_timeout = v.parse_with(parse_duration)?;
        }
        if let Some(v) = pick(args.drain_delay, env.drain_delay, "--drain-delay", "DRAIN_DELAY") {
            config.drain_delay = v.parse_with(parse_duration)?;
        }
        if let Some(v) = pick(
            args.stall_timeout,
            env.stall_timeout,
            "--stall-timeout",
            "STALL_TIMEOUT",
        ) {
            config.stall_timeout = v.parse_with(parse_duration)?;
            if config.stall_timeout.is_zero() {
                return Err(ConfigError::new(
                    v.origin,
                    v.value,
                    "a duration above zero such as 10s",
                ));
            }
        }
        if let Some(v) = pick(
            args.max_frame_size,
            env.max_frame_size,
            "--max-frame-size",
            "MAX_FRAME_SIZE",
        ) {
            config.max_frame_size = v.parse_with(parse_size)?;
            if config.max_frame_size < 1024 {
                return Err(ConfigError::new(v.origin, v.value, "a size of at least 1KiB"));
            }
        }

        // --- viewers (issue 8) ---
        if let Some(v) = pick(args.idle_repeat, env.idle_repeat, "--idle-repeat", "IDLE_REPEAT") {
            config.idle_repeat = v.parse_with(parse_optional_duration)?;
        }
        if let Some(v) = pick(args.max_fps, env.max_fps, "--max-fps", "MAX_FPS") {
            config.max_fps = v.parse_with(|s| match s.parse::<f64>() {
                Ok(fps) if fps.is_finite() && fps > 0.0 && fps <= 1000.0 => Ok(Some(fps)),
                _ => Err("a frame rate above 0 and at most 1000, such as 10 or 0.5".into()),
            })?;
        }
        let cert = pick(args.tls_cert, env.tls_cert, "--tls-cert", "TLS_CERT");
        let key = pick(args.tls_key, env.tls_key, "--tls-key", "TLS_KEY");
        config.tls = match (cert, key) {
            (None, None) => None,
            (Some(c), None) => return Err(ConfigError::new(c.origin, "", "needs --tls-key as well")),
            (None, Some(k)) => return Err(ConfigError::new(k.origin, "", "needs --tls-cert as well")),
            (Some(cert), Some(key)) => {
                let files = TlsFiles {
                    cert: PathBuf::from(&cert.value),
                    key: PathBuf::from(&key.value),
                };
                // Fail at start, naming the flag, rather than at the first handshake.
                crate::tls::load(&files).map_err(|e| match e {
                    crate::tls::LoadError::Cert(why) => ConfigError::new(cert.origin, cert.value, why),
                    crate::tls::LoadError::Key(why) => ConfigError::new(key.origin, key.value, why),
                })?;
                Some(files)
            }
        };
        if let Some(v) = pick(args.cors_origin, env.cors_origin, "--cors-origin", "CORS_ORIGIN") {
            config.cors_origin = Some(v.parse_with(CorsOrigins::parse)?);
        }
        if let Some(v) = pick(
            args.reconnect_min,
            env.reconnect_min,
            "--reconnect-min",
            "RECONNECT_MIN",
        ) {
            config.reconnect_min = v.parse_with(parse_duration)?;
            if config.reconnect_min.is_zero() {
                return Err(ConfigError::new(
                    v.origin,
                    v.value,
                    "a duration above zero such as 500ms",
                ));
            }
        }
        if let Some(v) = pick(
            args.reconnect_max,
            env.reconnect_max,
            "--reconnect-max",
            "RECONNECT_MAX",
        ) {
            config.reconnect_max = v.parse_with(parse_duration)?;
            if config.reconnect_max < config.reconnect_min {
                return Err(ConfigError::new(
                    v.origin,
                    v.value,
                    "a duration no shorter than --reconnect-min",
                ));
            }
        }
        if let Some(v) = pick(
            args.source_ca_cert,
            env.source_ca_cert,
            "--source-ca-cert",
            "SOURCE_CA_CERT",
        ) {
            let path = PathBuf::from(&v.value);
            let pem = std::fs::read(&path).map_err(|e| {
                ConfigError::new(
                    v.origin.clone(),
                    v.value.clone(),
                    format!("a readable PEM file ({e})"),
                )
            })?;
            if reqwest::Certificate::from_pem_bundle(&pem).map_or(true, |certs| certs.is_empty()) {
                return Err(ConfigError::new(
                    v.origin,
                    v.value,
                    "a PEM file with at least one CA certificate",
                ));
            }
            config.source_ca_cert = Some(path);
        }
        config.source_insecure = args.source_insecure || flag_env(env.source_insecure, "SOURCE_INSECURE")?;
        if let Some(v) = pick(
            args.placeholder_interval,
            env.placeholder_interval,
            "--placeholder-interval",
            "PLACEHOLDER_INTERVAL",
        ) {
            let interval = v.parse_with(parse_duration)?;
            if interval < Duration::from_millis(100) {
                return Err(ConfigError::new(
                    v.origin,
                    v.value,
                    "a duration of at least 100ms",
                ));
            }
            config.placeholder = Some(interval);
        }
        if let Some(v) = pick(args.placeholder, env.placeholder, "--placeholder", "PLACEHOLDER") {
            let on = v.parse_with(|s| match s.to_ascii_lowercase().as_str() {
                "on" | "true" | "1" => Ok(true),
                "off" | "false" | "0" => Ok(false),
                _ => Err("on or off".into()),
            })?;
            if !on {
                config.placeholder = None;
            }
        }
        if let Some(v) = pick(args.source_mode, env.source_mode, "--source-mode", "SOURCE_MODE") {
            config.source_mode = v.parse_with(|s| match s.to_ascii_lowercase().as_str() {
                "auto" => Ok(SourceMode::Auto),
                "mjpeg" => Ok(SourceMode::Mjpeg),
                "snapshot" => Ok(SourceMode::Snapshot),
                _ => Err("auto, mjpeg or snapshot".into()),
            })?;
        }
        if let Some(v) = pick(
            args.poll_interval,
            env.poll_interval,
            "--poll-interval",
            "POLL_INTERVAL",
        ) {
            config.poll_interval = v.parse_with(parse_duration)?;
            if config.poll_interval < Duration::from_millis(10) {
                return Err(ConfigError::new(v.origin, v.value, "a duration of at least 10ms"));
            }
        }
        config.on_demand = args.on_demand || flag_env(env.on_demand, "ON_DEMAND")?;
        if let Some(v) = pick(args.linger, env.linger, "--linger", "LINGER") {
            config.linger = v.parse_with(parse_duration)?;
        }
        if let Some(v) = pick(
            args.snapshot_timeout,
            env.snapshot_timeout,
            "--snapshot-timeout",
            "SNAPSHOT_TIMEOUT",
        ) {
            config.snapshot_timeout = v.parse_with(parse_duration)?;
            if config.snapshot_timeout.is_zero() {
                return Err(ConfigError::new(
                    v.origin,
                    v.value,
                    "a duration above zero such as 10s",
                ));
            }
        }
        config.ready_requires_source =
            args.ready_requires_source || flag_env(env.ready_requires_source, "READY_REQUIRES_SOURCE")?;

        let demo = args.demo || flag_env(env.demo, "DEMO")?;
        let source = pick(args.source, env.source, "SOURCE_URL", "SOURCE");
        let mut named = named_sources(args.named_sources, env.sources)?;
        if !demo && source.is_none() && !named.is_empty() {
            // The first named camera is the one at /stream.
            let (name, url) = named.remove(0);
            config.source = Source::Camera(url);
            config.source_name = name;
            config.named_sources = named;
            return Ok(config);
        }
        config.named_sources = named;
        config.source = match (demo, source) {
            (true, Some(v)) => {
                return Err(ConfigError::new(
                    v.origin,
                    "",
                    "give either a source URL or --demo, not both",
                ));
            }
            (true, None) => Source::Demo(DemoSettings::default()),
            (false, None) => {
                return Err(ConfigError::new(
                    "SOURCE_URL",
                    "",
                    format!(
                        "a camera URL is required (or --demo); set it as the argument or {ENV_PREFIX}SOURCE"
                    ),
                ));
            }
            (false, Some(v)) => {
                let origin = v.origin.clone();
                let mut url = SourceUrl::parse(&v.value).map_err(|why| {
                    // The value may hold a password: show it redacted when we can.
                    ConfigError::new(
                        origin.clone(),
                        redact_raw(&v.value),
                        format!("{why}; expected http(s)://[user:pass@]host[:port]/path"),
                    )
                })?;
                if let Some(user) = pick(args.source_user, env.source_user, "--source-user", "SOURCE_USER") {
                    url.user = Some(user.value);
                }
                let password_file = pick(
                    args.source_password_file,
                    env.source_password_file,
                    "--source-password-file",
                    "SOURCE_PASSWORD_FILE",
                );
                if let Some(file) = password_file {
                    let path = PathBuf::from(&file.value);
                    let secret = std::fs::read_to_string(&path).map_err(|e| {
                        ConfigError::new(
                            file.origin.clone(),
                            file.value.clone(),
                            format!("a readable file ({e})"),
                        )
                    })?;
                    url.password = Some(secret.trim_end_matches(['\r', '\n']).to_string());
                } else if let Some(password) = pick(
                    args.source_password,
                    env.source_password,
                    "--source-password",
                    "SOURCE_PASSWORD",
                ) {
                    url.password = Some(password.value);
                }
                Source::Camera(url)
            }
        };
        Ok(config)
    }
}

/// Names that would clash with the viewer routes.
const RESERVED_NAMES: [&str; 7] = [
    "stream",
    "snapshot",
    "status",
    "status.json",
    "ws",
    "view",
    "metrics",
];

/// `--source NAME=URL` (repeatable) or `MJPEG_RELAY_SOURCES=a=URL,b=URL`.
fn named_sources(flags: Vec<String>, var: Option<String>) -> Result<Vec<(String, SourceUrl)>, ConfigError> {
    let (items, origin): (Vec<String>, String) = if !flags.is_empty() {
        (flags, "--source".into())
    } else {
        let list = var.unwrap_or_default();
        let items = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        (items, format!("{ENV_PREFIX}SOURCES"))
    };
    let mut out: Vec<(String, SourceUrl)> = Vec::new();
    for item in items {
        let bad = |why: String| ConfigError::new(origin.clone(), redact_raw(&item), why);
        let (name, url) = item
            .split_once('=')
            .ok_or_else(|| bad("NAME=URL, e.g. front=http://camera/video".into()))?;
        let name = name.trim();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            || RESERVED_NAMES.contains(&name)
        {
            return Err(bad(format!(
                "a name of letters, digits, - and _ other than {}",
                RESERVED_NAMES.join(", ")
            )));
        }
        if out.iter().any(|(n, _)| n == name) {
            return Err(bad(format!("a name not used twice ('{name}' is)")));
        }
        let url = SourceUrl::parse(url.trim())
            .map_err(|why| bad(format!("{why}; expected NAME=http(s)://host/path")))?;
        out.push((name.to_string(), url));
    }
    Ok(out)
}

/// A raw value and the flag or variable it came from.
struct Raw {
    value: String,
    origin: String,
}

impl Raw {
    fn parse_with<T>(&self, parse: impl FnOnce(&str) -> Result<T, String>) -> Result<T, ConfigError> {
        parse(self.value.trim())
            .map_err(|expected| ConfigError::new(self.origin.clone(), self.value.clone(), expected))
    }
}

fn pick(flag: Option<String>, var: Option<String>, flag_name: &str, var_name: &str) -> Option<Raw> {
    match (flag, var) {
        (Some(value), _) => Some(Raw {
            value,
            origin: flag_name.to_string(),
        }),
        (None, Some(value)) if !value.is_empty() => Some(Raw {
            value,
            origin: format!("{ENV_PREFIX}{var_name}"),
        }),
        _ => None,
    }
}

fn flag_env(value: Option<String>, var_name: &str) -> Result<bool, ConfigError> {
    match value
        .as_deref()
        .map(str::trim)
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("") | Some("false") | Some("0") | Some("no") | Some("off") => Ok(false),
        Some("true") | Some("1") | Some("yes") | Some("on") => Ok(true),
        Some(_) => Err(ConfigError::new(
            format!("{ENV_PREFIX}{var_name}"),
            value.unwrap_or_default(),
            "true or false",
        )),
    }
}

/// A URL with any password replaced, for error messages.
fn redact_raw(raw: &str) -> String {
    match (raw.find("://"), raw.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &raw[scheme_end + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &raw[..scheme_end + 3], &raw[at..])
        }
        _ => raw.to_string(),
    }
}

/// A TCP port, 0 meaning "any free port".
pub fn parse_port(s: &str) -> Result<u16, String> {
    s.parse::<u16>()
        .map_err(|_| "a port number from 0 to 65535 (0 picks a free port)".into())
}

/// `500ms`, `5s`, `2m`, `1h30m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|_| "a duration such as 500ms, 5s or 2m".into())
}

/// `512KiB`, `8MiB`, `1GiB`, `1000` (bytes), `2MB` (decimal).
pub fn parse_size(s: &str) -> Result<usize, String> {
    const EXPECTED: &str = "a size such as 512KiB, 8MiB or 1000000";
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let number: u64 = number.parse().map_err(|_| EXPECTED.to_string())?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "k" => 1 << 10,
        "mib" | "m" => 1 << 20,
        "gib" | "g" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => return Err(EXPECTED.into()),
    };
    number
        .checked_mul(factor)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| EXPECTED.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(source: &str) -> RelayArgs {
        RelayArgs {
            source: Some(source.into()),
            ..Default::default()
        }
    }

    #[test]
    fn defaults() {
        let c = Config::from_sources(args("http://cam/stream"), Env::default()).unwrap();
        assert_eq!(c.port, 54321);
        assert_eq!(c.admin_port, Some(9090));
        assert_eq!(c.bind.to_string(), "::");
        assert_eq!(c.shutdown_timeout, Duration::from_secs(10));
        assert_eq!(c.max_frame_size, 8 << 20);
        assert_eq!(c.log_format, LogFormat::Text);
    }

    #[test]
    fn flag_beats_env_beats_default() {
        let env = Env {
            port: Some("1234".into()),
            admin_port: Some("2345".into()),
            ..Default::default()
        };
        let mut a = args("http://cam/");
        a.port = Some("4321".into());
        let c = Config::from_sources(a, env).unwrap();
        assert_eq!(c.port, 4321);
        assert_eq!(c.admin_port, Some(2345));
    }

    #[test]
    fn errors_name_flag_or_variable() {
        let mut a = args("http://cam/");
        a.port = Some("99999".into());
        let e = Config::from_sources(a, Env::default()).unwrap_err();
        assert_eq!(e.origin, "--port");
        let env = Env {
            shutdown_timeout: Some("soon".into()),
            ..Default::default()
        };
        let e = Config::from_sources(args("http://cam/"), env).unwrap_err();
        assert_eq!(e.origin, "MJPEG_RELAY_SHUTDOWN_TIMEOUT");
        assert!(e.to_string().contains("'soon'"), "{e}");
        let e = Config::from_sources(RelayArgs::default(), Env::default()).unwrap_err();
        assert_eq!(e.origin, "SOURCE_URL");
        let e = Config::from_sources(args("ftp://cam/"), Env::default()).unwrap_err();
        assert!(e.to_string().contains("not http"), "{e}");
    }

    #[test]
    fn credentials_are_split_out_and_redacted() {
        let c =
            Config::from_sources(args("http://admin:s3cr%40t@cam:8080/video?x=1"), Env::default()).unwrap();
        let Source::Camera(url) = &c.source else { panic!() };
        assert_eq!(url.user.as_deref(), Some("admin"));
        assert_eq!(url.password.as_deref(), Some("s3cr@t"));
        assert_eq!(url.url.as_str(), "http://cam:8080/video?x=1");
        assert_eq!(url.redacted(), "http://admin:***@cam:8080/video?x=1");
        let debug = format!("{c:?}");
        assert!(!debug.contains("s3cr"), "{debug}");
        let e = Config::from_sources(args("http://admin:s3cr3t@"), Env::default()).unwrap_err();
        assert!(!e.to_string().contains("s3cr3t"), "{e}");
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("5").is_err());
        assert_eq!(parse_size("512KiB"), Ok(512 * 1024));
        assert_eq!(parse_size("8MiB"), Ok(8 << 20));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("-1").is_err());
    }

    #[test]
    fn env_booleans() {
        let env = Env {
            demo: Some("true".into()),
            ..Default::default()
        };
        let c = Config::from_sources(RelayArgs::default(), env).unwrap();
        assert!(matches!(c.source, Source::Demo(_)));
        let env = Env {
            demo: Some("maybe".into()),
            ..Default::default()
        };
        let e = Config::from_sources(RelayArgs::default(), env).unwrap_err();
        assert_eq!(e.origin, "MJPEG_RELAY_DEMO");
    }

    // --- viewers (issue 8) ---
    #[test]
    fn viewer_flags() {
        let c = Config::from_sources(args("http://cam/"), Env::default()).unwrap();
        assert_eq!(c.idle_repeat, Some(Duration::from_secs(1)));
        assert_eq!(c.max_fps, None);
        assert!(c.tls.is_none() && c.cors_origin.is_none());
        let env = Env {
            idle_repeat: Some("off".into()),
            max_fps: Some("12.5".into()),
            cors_origin: Some("*".into()),
            ..Default::default()
        };
        let c = Config::from_sources(args("http://cam/"), env).unwrap();
        assert_eq!(c.idle_repeat, None);
        assert_eq!(c.max_fps, Some(12.5));
        assert_eq!(c.cors_origin, Some(CorsOrigins::Any));
        let mut a = args("http://cam/");
        a.idle_repeat = Some("250ms".into());
        a.cors_origin = Some("https://a.example,http://b.example:81".into());
        let c = Config::from_sources(a, Env::default()).unwrap();
        assert_eq!(c.idle_repeat, Some(Duration::from_millis(250)));
        assert!(c.cors_origin.as_ref().unwrap().allows("http://b.example:81"));
        assert!(!c.cors_origin.as_ref().unwrap().allows("http://b.example"));
    }

    #[test]
    fn viewer_flag_errors_name_the_flag() {
        let bad = |f: fn(&mut RelayArgs)| {
            let mut a = args("http://cam/");
            f(&mut a);
            Config::from_sources(a, Env::default()).unwrap_err()
        };
        assert_eq!(
            bad(|a| a.idle_repeat = Some("soon".into())).origin,
            "--idle-repeat"
        );
        assert_eq!(bad(|a| a.max_fps = Some("0".into())).origin, "--max-fps");
        assert_eq!(
            bad(|a| a.cors_origin = Some("dash.example".into())).origin,
            "--cors-origin"
        );
        assert_eq!(
            bad(|a| a.cors_origin = Some("https://a.example/path".into())).origin,
            "--cors-origin"
        );
        assert_eq!(
            bad(|a| a.tls_cert = Some("/nope.crt".into())).origin,
            "--tls-cert"
        );
        let e = bad(|a| {
            a.tls_cert = Some("/nope.crt".into());
            a.tls_key = Some("/nope.key".into());
        });
        assert_eq!(e.origin, "--tls-cert");
        assert!(e.to_string().contains("readable"), "{e}");
    }
}
