//! `/metrics`: Prometheus/OpenMetrics text for the admin port, built with
//! `prometheus-client`. Counters and gauges are read from the hub's atomics
//! at scrape time (a [`Collector`]), so the hot path only does the atomic
//! increments it already does; the two histograms are recorded where the
//! events happen. No per-viewer labels: cardinality stays fixed.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::hub::{Endpoint, Hub, SourceState};

/// `Content-Type` of `/metrics`.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every metric of one relay.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
}

impl Metrics {
    /// Metrics of the source behind `hub`.
    pub fn new(hub: Arc<Hub>) -> Self {
        let mut registry = Registry::default();
        registry.register(
            "mjpeg_relay_frame_size_bytes",
            "Size of frames received from the source",
            hub.counters.frame_sizes.clone(),
        );
        registry.register(
            "mjpeg_relay_time_to_first_frame_seconds",
            "Time from a viewer's request to its first frame",
            hub.counters.time_to_first_frame.clone(),
        );
        registry.register_collector(Box::new(HubCollector { hub }));
        Self { registry }
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[derive(Debug)]
struct HubCollector {
    hub: Arc<Hub>,
}

fn counter(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> std::fmt::Result {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: f64) -> std::fmt::Result {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

impl Collector for HubCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let hub = &self.hub;
        let c = &hub.counters;
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let status = hub.snapshot();

        counter(
            &mut encoder,
            "mjpeg_relay_frames_received",
            "Frames received from the source",
            load(&c.frames_in),
        )?;
        counter(
            &mut encoder,
            "mjpeg_relay_received_bytes",
            "JPEG bytes received from the source",
            load(&c.bytes_in),
        )?;
        counter(
            &mut encoder,
            "mjpeg_relay_frames_sent",
            "Frames written to viewers",
            load(&c.frames_out),
        )?;
        counter(
            &mut encoder,
            "mjpeg_relay_sent_bytes",
            "Bytes written to viewers, framing included",
            load(&c.bytes_out),
        )?;
        counter(
            &mut encoder,
            "mjpeg_relay_frames_skipped",
            "Frames slow viewers skipped because a newer frame replaced them (dropped for slow viewers)",
            load(&c.frames_skipped),
        )?;
        counter(
            &mut encoder,
            "mjpeg_relay_parts_dropped",
            "Source parts dropped (not JPEG, too large)",
            load(&c.parts_dropped),
        )?;
        counter(
            &mut encoder,
            "mjpeg_relay_upstream_reconnects",
            "Source connection attempts after the first",
            load(&c.reconnects),
        )?;
        gauge(
            &mut encoder,
            "mjpeg_relay_source_fps",
            "Frames per second from the source (last 2 s)",
            status.fps,
        )?;
        if let Some(age) = status.last_frame_age_s {
            gauge(
                &mut encoder,
                "mjpeg_relay_last_frame_age_seconds",
                "Age of the newest frame",
                age,
            )?;
        }
        gauge(
            &mut encoder,
            "mjpeg_relay_uptime_seconds",
            "Seconds since the relay started",
            hub.uptime().as_secs_f64(),
        )?;

        let mut states = encoder.encode_descriptor(
            "mjpeg_relay_upstream_state",
            "1 for the source connection's current state, 0 for the others",
            None,
            MetricType::Gauge,
        )?;
        for state in [
            SourceState::Connecting,
            SourceState::Streaming,
            SourceState::Reconnecting,
            SourceState::Unauthorized,
            SourceState::Idle,
        ] {
            let value = i64::from(status.state == state);
            ConstGauge::new(value).encode(states.encode_family(&[("state", state.as_str())])?)?;
        }

        let mut viewers = encoder.encode_descriptor(
            "mjpeg_relay_viewers",
            "Viewers connected now",
            None,
            MetricType::Gauge,
        )?;
        for endpoint in Endpoint::ALL {
            let value = load(&c.by_endpoint[endpoint as usize]) as i64;
            ConstGauge::new(value).encode(viewers.encode_family(&[("endpoint", endpoint.as_str())])?)?;
        }
        let mut sessions = encoder.encode_descriptor(
            "mjpeg_relay_viewer_sessions",
            "Viewer sessions started",
            None,
            MetricType::Counter,
        )?;
        for endpoint in Endpoint::ALL {
            let value = load(&c.sessions_by_endpoint[endpoint as usize]);
            ConstCounter::new(value).encode(sessions.encode_family(&[("endpoint", endpoint.as_str())])?)?;
        }

        let errors = c
            .upstream_errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut family = encoder.encode_descriptor(
            "mjpeg_relay_upstream_errors",
            "Source connection failures by kind",
            None,
            MetricType::Counter,
        )?;
        for kind in [
            "unreachable",
            "unauthorized",
            "http_status",
            "not_mjpeg",
            "stalled",
            "ended",
        ] {
            let value = errors.get(kind).copied().unwrap_or(0);
            ConstCounter::new(value).encode(family.encode_family(&[("kind", kind)])?)?;
        }

        let mut build = encoder.encode_descriptor(
            "mjpeg_relay_build_info",
            "Version of the running relay",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(1i64).encode(build.encode_family(&[("version", env!("CARGO_PKG_VERSION"))])?)?;
        Ok(())
    }
}

/// The same counters as OpenTelemetry instruments on the global meter (a
/// no-op meter when OTLP export is off), read from the hub at collection
/// time, so `/metrics` and OTLP always agree.
pub fn register_otel(hub: &Arc<Hub>) {
    let meter = opentelemetry::global::meter("mjpeg-relay");
    type Read = fn(&Hub) -> u64;
    let counters: [(&'static str, &'static str, Read); 7] = [
        (
            "mjpeg_relay_frames_received",
            "Frames received from the source",
            |h| h.counters.frames_in.load(Ordering::Relaxed),
        ),
        (
            "mjpeg_relay_received_bytes",
            "JPEG bytes received from the source",
            |h| h.counters.bytes_in.load(Ordering::Relaxed),
        ),
        ("mjpeg_relay_frames_sent", "Frames written to viewers", |h| {
            h.counters.frames_out.load(Ordering::Relaxed)
        }),
        ("mjpeg_relay_sent_bytes", "Bytes written to viewers", |h| {
            h.counters.bytes_out.load(Ordering::Relaxed)
        }),
        ("mjpeg_relay_frames_skipped", "Frames slow viewers skipped", |h| {
            h.counters.frames_skipped.load(Ordering::Relaxed)
        }),
        ("mjpeg_relay_upstream_reconnects", "Source reconnections", |h| {
            h.counters.reconnects.load(Ordering::Relaxed)
        }),
        ("mjpeg_relay_viewer_sessions", "Viewer sessions started", |h| {
            h.counters.viewer_sessions.load(Ordering::Relaxed)
        }),
    ];
    for (name, help, read) in counters {
        let hub = hub.clone();
        meter
            .u64_observable_counter(name)
            .with_description(help)
            .with_callback(move |observer| observer.observe(read(&hub), &[]))
            .build();
    }
    let viewers = hub.clone();
    meter
        .u64_observable_gauge("mjpeg_relay_viewers")
        .with_description("Viewers connected now")
        .with_callback(move |observer| {
            for endpoint in Endpoint::ALL {
                let value = viewers.counters.by_endpoint[endpoint as usize].load(Ordering::Relaxed);
                observer.observe(
                    value,
                    &[opentelemetry::KeyValue::new("endpoint", endpoint.as_str())],
                );
            }
        })
        .build();
    let source = hub.clone();
    meter
        .f64_observable_gauge("mjpeg_relay_source_fps")
        .with_description("Frames per second from the source")
        .with_callback(move |observer| observer.observe(source.snapshot().fps, &[]))
        .build();
    let state = hub.clone();
    meter
        .u64_observable_gauge("mjpeg_relay_upstream_state")
        .with_description("1 for the source connection's current state")
        .with_callback(move |observer| {
            let now = state.snapshot().state;
            for s in [
                SourceState::Connecting,
                SourceState::Streaming,
                SourceState::Reconnecting,
                SourceState::Unauthorized,
                SourceState::Idle,
            ] {
                observer.observe(
                    u64::from(now == s),
                    &[opentelemetry::KeyValue::new("state", s.as_str())],
                );
            }
        })
        .build();
}
