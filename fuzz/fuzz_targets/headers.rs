//! Fuzzes the response-header parsing (multipart boundary, Digest challenge);
//! the property is in `headers_check.rs`.
#![no_main]

mod headers_check;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| headers_check::check(input));
