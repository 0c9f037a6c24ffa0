//! OpenTelemetry export from the real binary to in-process OTLP receivers,
//! over both protocols: a hyper handler decoding http/protobuf bodies, and a
//! tonic gRPC server (opentelemetry-proto's generated services). Metrics are
//! exported by the periodic reader only at shutdown here (its interval is a
//! minute), so receiving them proves the flush at SIGTERM.

mod common;

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message;

/// What a receiver saw.
#[derive(Debug, Default)]
struct Received {
    spans: BTreeSet<String>,
    /// (span name, attribute key, attribute value as text)
    span_attributes: BTreeSet<(String, String, String)>,
    metrics: BTreeSet<String>,
    /// Resource attributes (key, value as text) of exported spans.
    resource: BTreeSet<(String, String)>,
    /// Trace ids of received spans, as lower-case hex.
    trace_ids: BTreeSet<String>,
}

type Shared = Arc<Mutex<Received>>;

fn text(value: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        _ => String::new(),
    }
}

fn record_traces(into: &Shared, request: ExportTraceServiceRequest) {
    let mut r = into.lock().unwrap();
    for resource in request.resource_spans {
        for kv in resource.resource.iter().flat_map(|r| r.attributes.iter()) {
            r.resource.insert((kv.key.clone(), text(&kv.value)));
        }
        for scope in resource.scope_spans {
            for span in scope.spans {
                for kv in &span.attributes {
                    r.span_attributes
                        .insert((span.name.clone(), kv.key.clone(), text(&kv.value)));
                }
                r.trace_ids
                    .insert(span.trace_id.iter().map(|b| format!("{b:02x}")).collect());
                r.spans.insert(span.name);
            }
        }
    }
}

fn record_metrics(into: &Shared, request: ExportMetricsServiceRequest) {
    let mut r = into.lock().unwrap();
    for resource in request.resource_metrics {
        for scope in resource.scope_metrics {
            for metric in scope.metrics {
                r.metrics.insert(metric.name);
            }
        }
    }
}

/// An OTLP/HTTP receiver: POST /v1/traces and /v1/metrics with protobuf bodies.
async fn http_receiver() -> (SocketAddr, Shared) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Shared = Arc::default();
    let shared = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let seen = shared.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let seen = seen.clone();
                    async move {
                        let path = req.uri().path().to_string();
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let reply = match path.as_str() {
                            "/v1/traces" => {
                                record_traces(&seen, ExportTraceServiceRequest::decode(body).unwrap());
                                ExportTraceServiceResponse::default().encode_to_vec()
                            }
                            "/v1/metrics" => {
                                record_metrics(&seen, ExportMetricsServiceRequest::decode(body).unwrap());
                                ExportMetricsServiceResponse::default().encode_to_vec()
                            }
                            _ => Vec::new(),
                        };
                        let mut resp = http::Response::new(Full::new(bytes::Bytes::from(reply)));
                        resp.headers_mut().insert(
                            "content-type",
                            http::HeaderValue::from_static("application/x-protobuf"),
                        );
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    (addr, seen)
}

struct Grpc(Shared);

#[tonic::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        record_traces(&self.0, request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        record_metrics(&self.0, request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

/// An OTLP/gRPC receiver.
async fn grpc_receiver() -> (SocketAddr, Shared) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Shared = Arc::default();
    let incoming = futures_util::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(tcp, _)| tcp);
        Some((accepted, listener))
    });
    let server = tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(Grpc(seen.clone())))
        .add_service(MetricsServiceServer::new(Grpc(seen.clone())))
        .serve_with_incoming(incoming);
    tokio::spawn(server);
    (addr, seen)
}

/// Runs the real relay against an in-test camera with OTLP pointed at
/// `endpoint`, serves a viewer and a snapshot, stops it with SIGTERM and
/// returns what the receiver got.
async fn run_relay_exporting(protocol: &str, endpoint: String, seen: Shared) {
    let camera = TestCamera::start(jpegs(3, 64, 48), 20, Behaviour::Stream).await;
    // A password in the URL: it must reach the camera only.
    let url = camera.url().replace("http://", "http://viewer:hunter2@");
    let mut relay = {
        let mut cmd_env = vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
            ("OTEL_SERVICE_NAME", "relay-under-test"),
            ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=otlp-test"),
            ("MJPEG_RELAY_LOG_FORMAT", "json"),
        ];
        cmd_env.push(("MJPEG_RELAY_SOURCE", url.as_str()));
        RelayProcess::spawn_with_env(&[], &cmd_env)
    };
    let mut viewer = Viewer::connect(relay.viewer(), "/stream").await;
    for _ in 0..3 {
        viewer.next_frame().await.unwrap();
    }
    drop(viewer);
    let snapshot = reqwest::get(relay.url("/snapshot")).await.unwrap();
    assert_eq!(snapshot.status(), 200);
    for page in [
        relay.admin_url("/metrics"),
        relay.url("/status"),
        relay.url("/status.json"),
    ] {
        let text = reqwest::get(&page).await.unwrap().text().await.unwrap();
        assert!(!text.contains("hunter2"), "{page} shows the password");
    }
    relay.terminate();
    let (code, log) =
        tokio::task::spawn_blocking(move || (relay.wait_exit(Duration::from_secs(15)), relay.log()))
            .await
            .unwrap();
    assert_eq!(code, 0, "{log}");
    assert!(!log.contains("hunter2"), "the log shows the password");
    assert!(log.contains("exporting OpenTelemetry"), "{log}");
    let r = std::mem::take(&mut *seen.lock().unwrap());
    for span in ["viewer.session", "http.request", "upstream.connect"] {
        assert!(
            r.spans.contains(span),
            "{protocol}: no {span} span; got {:?}",
            r.spans
        );
    }
    assert!(
        r.span_attributes
            .contains(&("viewer.session".into(), "endpoint".into(), "stream".into())),
        "{:?}",
        r.span_attributes
    );
    assert!(
        r.span_attributes
            .iter()
            .any(|(s, k, v)| s == "viewer.session" && k == "frames" && v.parse::<u64>().unwrap_or(0) >= 3)
    );
    assert!(
        r.span_attributes
            .iter()
            .any(|(s, k, _)| s == "upstream.connect" && k == "outcome")
    );
    assert!(!r.span_attributes.iter().any(|(_, _, v)| v.contains("hunter2")));
    for metric in [
        "mjpeg_relay_frames_received",
        "mjpeg_relay_frames_sent",
        "mjpeg_relay_viewers",
        "mjpeg_relay_upstream_state",
    ] {
        assert!(
            r.metrics.contains(metric),
            "{protocol}: no {metric} metric; got {:?}",
            r.metrics
        );
    }
    for attribute in [
        ("service.name", "relay-under-test"),
        ("deployment.environment", "otlp-test"),
    ] {
        assert!(
            r.resource.contains(&(attribute.0.into(), attribute.1.into())),
            "{protocol}: no resource attribute {attribute:?}; got {:?}",
            r.resource
        );
    }
    drop(r);
    camera.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_http_protobuf_receives_spans_and_metrics_flushed_at_sigterm() {
    let (addr, seen) = http_receiver().await;
    run_relay_exporting("http/protobuf", format!("http://{addr}"), seen).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_grpc_receives_spans_and_metrics_flushed_at_sigterm() {
    let (addr, seen) = grpc_receiver().await;
    run_relay_exporting("grpc", format!("http://{addr}"), seen).await;
}

#[test]
fn no_endpoint_means_no_exporter() {
    let mut relay = RelayProcess::spawn(&["--demo"]);
    relay.terminate();
    assert_eq!(relay.wait_exit(Duration::from_secs(10)), 0);
    assert!(
        !relay.log().contains("exporting OpenTelemetry"),
        "{}",
        relay.log()
    );
}

/// `OTEL_SDK_DISABLED=true` wins over an endpoint: no exporter, nothing sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_disabled_means_no_exporter_even_with_an_endpoint() {
    let (addr, seen) = http_receiver().await;
    let endpoint = format!("http://{addr}");
    let mut relay = RelayProcess::spawn_with_env(
        &["--demo"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_SDK_DISABLED", "true"),
        ],
    );
    let snapshot = reqwest::get(relay.url("/snapshot")).await.unwrap();
    assert!(snapshot.status() == 200 || snapshot.status() == 503);
    relay.terminate();
    let (code, log) =
        tokio::task::spawn_blocking(move || (relay.wait_exit(Duration::from_secs(10)), relay.log()))
            .await
            .unwrap();
    assert_eq!(code, 0, "{log}");
    assert!(!log.contains("exporting OpenTelemetry"), "{log}");
    let r = seen.lock().unwrap();
    assert!(
        r.spans.is_empty() && r.metrics.is_empty(),
        "exported anyway: {r:?}"
    );
}
