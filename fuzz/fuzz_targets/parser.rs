//! Fuzzes the sans-io multipart parser; the property is in
//! `parser_check.rs`.
#![no_main]

mod parser_check;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| parser_check::check(input));
