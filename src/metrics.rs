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
    /// Metrics of every source, each series labelled `source="NAME"`.
    pub fn new(hubs: Vec<Arc<Hub>>) -> Self {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(HubCollector { hubs }));
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
    hubs: Vec<Arc<Hub>>,
}

type Read = fn(&Hub) -> u64;

fn load(a: &std::sync::atomic::AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

impl HubCollector {
    /// One family, one series per source.
    fn per_source(
        &self,
        encoder: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        kind: MetricType,
        value: impl Fn(&Hub) -> Option<f64>,
    ) -> std::fmt::Result {
        let mut family = encoder.encode_descriptor(name, help, None, kind)?;
        for hub in &self.hubs {
            let Some(v) = value(hub) else { continue };
            let labels = [("source", hub.name())];
            match kind {
                MetricType::Counter => ConstCounter::new(v as u64).encode(family.encode_family(&labels)?)?,
                _ => ConstGauge::new(v).encode(family.encode_family(&labels)?)?,
            }
        }
        Ok(())
    }
}

const STATES: [SourceState; 5] = [
    SourceState::Connecting,
    SourceState::Streaming,
    SourceState::Reconnecting,
    SourceState::Unauthorized,
    SourceState::Idle,
];

const ERROR_KINDS: [&str; 6] = [
    "unreachable",
    "unauthorized",
    "http_status",
    "not_mjpeg",
    "stalled",
    "ended",
];

impl Collector for HubCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let counters: [(&str, &str, Read); 7] = [
            (
                "mjpeg_relay_frames_received",
                "Frames received from the source",
                |h| load(&h.counters.frames_in),
            ),
            (
                "mjpeg_relay_received_bytes",
                "JPEG bytes received from the source",
                |h| load(&h.counters.bytes_in),
            ),
            ("mjpeg_relay_frames_sent", "Frames written to viewers", |h| {
                load(&h.counters.frames_out)
            }),
            (
                "mjpeg_relay_sent_bytes",
                "Bytes written to viewers, framing included",
                |h| load(&h.counters.bytes_out),
            ),
            (
                "mjpeg_relay_frames_skipped",
                "Frames slow viewers skipped because a newer frame replaced them (dropped for slow viewers)",
                |h| load(&h.counters.frames_skipped),
            ),
            (
                "mjpeg_relay_parts_dropped",
                "Source parts dropped (not JPEG, too large)",
                |h| load(&h.counters.parts_dropped),
            ),
            (
                "mjpeg_relay_upstream_reconnects",
                "Source connection attempts after the first",
                |h| load(&h.counters.reconnects),
            ),
        ];
        for (name, help, read) in counters {
            self.per_source(&mut encoder, name, help, MetricType::Counter, |h| {
                Some(read(h) as f64)
            })?;
        }
        let snapshots: Vec<_> = self
            .hubs
            .iter()
            .map(|h| (h.name().to_string(), h.snapshot()))
            .collect();
        let of = |hub: &Hub| {
            snapshots
                .iter()
                .find(|(n, _)| n == hub.name())
                .map(|(_, s)| s.clone())
        };
        self.per_source(
            &mut encoder,
            "mjpeg_relay_source_fps",
            "Frames per second from the source (last 2 s)",
            MetricType::Gauge,
            |h| of(h).map(|s| s.fps),
        )?;
        self.per_source(
            &mut encoder,
            "mjpeg_relay_last_frame_age_seconds",
            "Age of the newest camera frame",
            MetricType::Gauge,
            |h| of(h).and_then(|s| s.last_frame_age_s),
        )?;

        let mut states = encoder.encode_descriptor(
            "mjpeg_relay_upstream_state",
            "1 for the source connection's current state, 0 for the others",
            None,
            MetricType::Gauge,
        )?;
        for hub in &self.hubs {
            let now = of(hub).map(|s| s.state);
            for state in STATES {
                let labels = [("source", hub.name()), ("state", state.as_str())];
                ConstGauge::new(i64::from(now == Some(state))).encode(states.encode_family(&labels)?)?;
            }
        }

        let mut viewers = encoder.encode_descriptor(
            "mjpeg_relay_viewers",
            "Viewers connected now",
            None,
            MetricType::Gauge,
        )?;
        for hub in &self.hubs {
            for endpoint in Endpoint::ALL {
                let labels = [("source", hub.name()), ("endpoint", endpoint.as_str())];
                let value = load(&hub.counters.by_endpoint[endpoint as usize]) as i64;
                ConstGauge::new(value).encode(viewers.encode_family(&labels)?)?;
            }
        }
        let mut sessions = encoder.encode_descriptor(
            "mjpeg_relay_viewer_sessions",
            "Viewer sessions started",
            None,
            MetricType::Counter,
        )?;
        for hub in &self.hubs {
            for endpoint in Endpoint::ALL {
                let labels = [("source", hub.name()), ("endpoint", endpoint.as_str())];
                let value = load(&hub.counters.sessions_by_endpoint[endpoint as usize]);
                ConstCounter::new(value).encode(sessions.encode_family(&labels)?)?;
            }
        }

        let mut errors = encoder.encode_descriptor(
            "mjpeg_relay_upstream_errors",
            "Source connection failures by kind",
            None,
            MetricType::Counter,
        )?;
        for hub in &self.hubs {
            let counts = hub
                .counters
                .upstream_errors
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            for kind in ERROR_KINDS {
                let labels = [("source", hub.name()), ("kind", kind)];
                ConstCounter::new(counts.get(kind).copied().unwrap_or(0))
                    .encode(errors.encode_family(&labels)?)?;
            }
        }

        let mut sizes = encoder.encode_descriptor(
            "mjpeg_relay_frame_size_bytes",
            "Size of frames received from the source",
            None,
            MetricType::Histogram,
        )?;
        for hub in &self.hubs {
            hub.counters
                .frame_sizes
                .encode(sizes.encode_family(&[("source", hub.name())])?)?;
        }
        let mut first = encoder.encode_descriptor(
            "mjpeg_relay_time_to_first_frame_seconds",
            "Time from a viewer's request to its first frame",
            None,
            MetricType::Histogram,
        )?;
        for hub in &self.hubs {
            hub.counters
                .time_to_first_frame
                .encode(first.encode_family(&[("source", hub.name())])?)?;
        }

        let uptime = self.hubs.first().map_or(0.0, |h| h.uptime().as_secs_f64());
        let metric = ConstGauge::new(uptime);
        metric.encode(encoder.encode_descriptor(
            "mjpeg_relay_uptime_seconds",
            "Seconds since the relay started",
            None,
            metric.metric_type(),
        )?)?;
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
