//! Logging and OpenTelemetry: one `tracing` subscriber writing text or JSON
//! lines to stderr, plus, when `OTEL_EXPORTER_OTLP_ENDPOINT` (or a
//! per-signal endpoint) is set, OTLP export of spans and metrics over
//! `grpc` (tonic) or `http/protobuf` (reqwest's blocking client, on the SDK's
//! own threads) as `OTEL_EXPORTER_OTLP_PROTOCOL` says. Only the standard
//! `OTEL_*` variables configure it; with no endpoint (or
//! `OTEL_SDK_DISABLED=true`) no exporter exists and nothing is slowed down.
//! Export runs on background threads, so a slow collector never blocks
//! viewers; [`Telemetry::shutdown`] flushes within a deadline.

use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogFormat;

/// The installed exporters; flush them with [`Telemetry::shutdown`].
#[derive(Debug, Default)]
pub struct Telemetry {
    tracer_provider: Option<SdkTracerProvider>,
    meter_provider: Option<SdkMeterProvider>,
}

/// Which OTLP transport to use, from `OTEL_EXPORTER_OTLP_PROTOCOL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// gRPC (tonic).
    Grpc,
    /// HTTP with protobuf bodies.
    HttpProtobuf,
}

/// Whether OTLP export is configured, and over which protocol.
pub fn otlp_protocol() -> Option<Protocol> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    if var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return None;
    }
    let endpoint = [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    ]
    .iter()
    .any(|name| var(name).is_some());
    if !endpoint {
        return None;
    }
    Some(match var("OTEL_EXPORTER_OTLP_PROTOCOL").as_deref() {
        Some("grpc") => Protocol::Grpc,
        _ => Protocol::HttpProtobuf,
    })
}

/// Installs the global subscriber (and OTLP exporters when configured).
/// Call with the tokio runtime entered: the gRPC exporter needs it.
/// `RUST_LOG` overrides the level when set.
pub fn init(format: LogFormat, quiet: bool) -> Telemetry {
    let default = if quiet { "warn" } else { "info" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let mut telemetry = Telemetry::default();
    let mut export_error = None;
    if let Some(protocol) = otlp_protocol() {
        match exporters(protocol) {
            Ok((tracer, meter)) => {
                opentelemetry::global::set_meter_provider(meter.clone());
                telemetry = Telemetry {
                    tracer_provider: Some(tracer),
                    meter_provider: Some(meter),
                };
            }
            Err(e) => export_error = Some(e),
        }
    }
    let otel_layer = telemetry
        .tracer_provider
        .as_ref()
        .map(|provider| tracing_opentelemetry::layer().with_tracer(provider.tracer("mjpeg-relay")));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false);
    let registry = tracing_subscriber::registry().with(filter).with(otel_layer);
    // Already installed (tests run several relays in one process): keep it.
    let _ = match format {
        LogFormat::Text => registry.with(fmt).try_init(),
        LogFormat::Json => registry
            .with(fmt.json().flatten_event(true).with_current_span(true))
            .try_init(),
    };
    if let Some(e) = export_error {
        tracing::warn!("OpenTelemetry export is off: {e}");
    } else if let Some(protocol) = otlp_protocol().filter(|_| telemetry.tracer_provider.is_some()) {
        tracing::info!("exporting OpenTelemetry traces and metrics over OTLP ({protocol:?})");
    }
    telemetry
}

/// Logging only (tests and subcommands).
pub fn init_logging(format: LogFormat, quiet: bool) {
    let default = if quiet { "warn" } else { "info" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false);
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match format {
        LogFormat::Text => registry.with(fmt).try_init(),
        LogFormat::Json => registry.with(fmt.json().flatten_event(true)).try_init(),
    };
}

fn resource() -> Resource {
    let instance = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    // Resource::builder() also reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES.
    let mut builder = Resource::builder().with_attributes([
        KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
        KeyValue::new(
            "service.instance.id",
            format!("{instance}-{}", std::process::id()),
        ),
    ]);
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        builder = builder.with_service_name("mjpeg-relay");
    }
    builder.build()
}

fn exporters(protocol: Protocol) -> Result<(SdkTracerProvider, SdkMeterProvider), String> {
    crate::install_crypto_provider();
    let (spans, metrics) = match protocol {
        Protocol::Grpc => (
            opentelemetry_otlp::SpanExporter::builder().with_tonic().build(),
            opentelemetry_otlp::MetricExporter::builder().with_tonic().build(),
        ),
        Protocol::HttpProtobuf => (
            opentelemetry_otlp::SpanExporter::builder().with_http().build(),
            opentelemetry_otlp::MetricExporter::builder().with_http().build(),
        ),
    };
    let spans = spans.map_err(|e| format!("cannot build the OTLP span exporter ({e})"))?;
    let metrics = metrics.map_err(|e| format!("cannot build the OTLP metric exporter ({e})"))?;
    let resource = resource();
    let tracer = SdkTracerProvider::builder()
        .with_batch_exporter(spans)
        .with_resource(resource.clone())
        .build();
    let meter = SdkMeterProvider::builder()
        .with_periodic_exporter(metrics)
        .with_resource(resource)
        .build();
    Ok((tracer, meter))
}

/// Records the span's OpenTelemetry trace id in its `trace_id` field (which
/// the span must declare), so JSON log lines inside it carry the id that
/// finds the trace. Nothing is recorded when export is off.
pub fn record_trace_id(span: &tracing::Span) {
    use opentelemetry::trace::TraceContextExt as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let context = span.context();
    let trace_id = context.span().span_context().trace_id();
    if trace_id != opentelemetry::trace::TraceId::INVALID {
        span.record("trace_id", tracing::field::display(trace_id));
    }
}

impl Telemetry {
    /// Whether OTLP export is on.
    pub fn exporting(&self) -> bool {
        self.tracer_provider.is_some()
    }

    /// Flushes and stops the exporters, waiting at most `timeout` in all.
    /// Call outside async code, with the runtime still alive.
    pub fn shutdown(self, timeout: Duration) {
        let (Some(tracer), Some(meter)) = (self.tracer_provider, self.meter_provider) else {
            return;
        };
        let done = std::sync::mpsc::channel::<()>();
        let worker = std::thread::spawn(move || {
            if let Err(e) = tracer.shutdown() {
                eprintln!("mjpeg-relay: flushing traces failed: {e}");
            }
            if let Err(e) = meter.shutdown() {
                eprintln!("mjpeg-relay: flushing metrics failed: {e}");
            }
            let _ = done.0.send(());
        });
        if done.1.recv_timeout(timeout).is_err() {
            eprintln!(
                "mjpeg-relay: telemetry was not flushed within {} ms; exiting anyway",
                timeout.as_millis()
            );
            return;
        }
        let _ = worker.join();
    }
}
