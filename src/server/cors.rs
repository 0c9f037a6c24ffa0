//! CORS for the viewer port (`--cors-origin`, off by default): answers
//! preflights (`OPTIONS` with `Access-Control-Request-Method`) and adds
//! `Access-Control-Allow-Origin` to answers for allowed origins, so a
//! dashboard on another origin can `fetch()` snapshots and status or draw
//! `/stream` into a canvas. `<img>` embedding needs no CORS at all.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};

use crate::config::CorsOrigins;

use super::{Body, empty, text};

const ALLOW_METHODS: HeaderValue = HeaderValue::from_static("GET, HEAD, OPTIONS");
const EXPOSE: HeaderValue = HeaderValue::from_static("Content-Length, Content-Type, Retry-After");
/// Browsers may cache a preflight this many seconds.
const MAX_AGE: HeaderValue = HeaderValue::from_static("600");

/// The answer to an `OPTIONS` request when CORS is on.
pub fn preflight(cors: &CorsOrigins, request: &HeaderMap) -> Response<Body> {
    let origin = request.get(header::ORIGIN);
    let method = request.get(header::ACCESS_CONTROL_REQUEST_METHOD);
    let (Some(origin), Some(method)) = (origin, method) else {
        // A plain OPTIONS (no preflight): say what is allowed.
        let mut resp = Response::new(empty());
        *resp.status_mut() = StatusCode::NO_CONTENT;
        resp.headers_mut().insert(header::ALLOW, ALLOW_METHODS);
        return resp;
    };
    let allowed_method = matches!(method.as_bytes(), b"GET" | b"HEAD");
    if !allowed(cors, origin) || !allowed_method {
        let why = if allowed_method {
            "origin not allowed by --cors-origin\n"
        } else {
            "method not allowed: use GET or HEAD\n"
        };
        return text(StatusCode::FORBIDDEN, why, false);
    }
    let mut resp = Response::new(empty());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    let h = resp.headers_mut();
    allow_origin(cors, origin, h);
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, ALLOW_METHODS);
    if let Some(asked) = request.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
        // Viewer routes read no request headers that matter; any is fine.
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
    }
    h.insert(header::ACCESS_CONTROL_MAX_AGE, MAX_AGE);
    h.append(
        header::VARY,
        HeaderValue::from_static("Access-Control-Request-Method"),
    );
    h.append(
        header::VARY,
        HeaderValue::from_static("Access-Control-Request-Headers"),
    );
    resp
}

/// Adds the CORS headers of an ordinary answer.
pub fn decorate(
    cors: &CorsOrigins,
    method: &Method,
    origin: Option<&HeaderValue>,
    resp: &mut Response<Body>,
) {
    if method == Method::OPTIONS {
        return;
    }
    let h = resp.headers_mut();
    if matches!(cors, CorsOrigins::List(_)) {
        // Caches must not hand one origin's answer to another.
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    if let Some(origin) = origin.filter(|o| allowed(cors, o)) {
        allow_origin(cors, origin, h);
        h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSE);
    }
}

fn allowed(cors: &CorsOrigins, origin: &HeaderValue) -> bool {
    origin.to_str().is_ok_and(|o| cors.allows(o))
}

fn allow_origin(cors: &CorsOrigins, origin: &HeaderValue, h: &mut HeaderMap) {
    let value = match cors {
        CorsOrigins::Any => HeaderValue::from_static("*"),
        CorsOrigins::List(_) => origin.clone(),
    };
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
}
