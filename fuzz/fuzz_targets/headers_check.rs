//! The header-parsing property the `headers` fuzz target checks, shared with
//! `tests/fuzz_seeds.rs`: whatever a camera puts in its `Content-Type` or
//! `WWW-Authenticate` header, parsing never panics, a boundary found is a
//! non-empty piece of the header, and a Digest answer is a valid header value.

use mjpeg_relay::mjpeg::{Parser, boundary_from_content_type};
use mjpeg_relay::upstream::parse_digest_challenge;

/// Checks one fuzzer input, taken as the value of a response header.
pub fn check(input: &[u8]) {
    // What reqwest hands over: a header value that `to_str` accepts.
    let Ok(value) = http::HeaderValue::from_bytes(input) else {
        return;
    };
    let Ok(text) = value.to_str() else {
        return;
    };
    if let Some(boundary) = boundary_from_content_type(text) {
        assert!(!boundary.is_empty(), "an empty boundary from {text:?}");
        assert!(
            text.contains(boundary.as_str()),
            "{boundary:?} is not in {text:?}"
        );
        let _ = Parser::new(Some(&boundary), 1024);
    }
    if let Some(mut prompt) = parse_digest_challenge(text) {
        for uri in ["/video", "/cgi-bin/mjpg?x=1"] {
            let context = digest_auth::AuthContext::new("viewer", "p@ss:word", uri);
            if let Ok(answer) = prompt.respond(&context) {
                let header = answer.to_header_string();
                assert!(
                    http::HeaderValue::from_str(&header).is_ok(),
                    "the answer to {text:?} is not a header value: {header:?}"
                );
            }
        }
    }
}
