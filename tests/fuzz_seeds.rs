//! Replays the fuzzers' seed corpora (`fuzz/seeds/*`, including every past
//! finding's reproducer) through the fuzzers' own properties, so each
//! `cargo test` guards the fixes without cargo-fuzz.

#[path = "../fuzz/fuzz_targets/headers_check.rs"]
mod headers_check;
#[path = "../fuzz/fuzz_targets/parser_check.rs"]
mod parser_check;

/// Runs `check` on every seed of `target`; returns how many there were.
fn replay(target: &str, check: fn(&[u8])) -> usize {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let mut seeds = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let input = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| check(&input));
        assert!(
            outcome.is_ok(),
            "seed {} breaks the {target} property",
            path.display()
        );
        seeds += 1;
    }
    seeds
}

#[test]
fn every_parser_seed_keeps_the_parser_property() {
    assert!(replay("parser", parser_check::check) >= 8);
}

#[test]
fn every_header_seed_keeps_the_header_property() {
    assert!(replay("headers", headers_check::check) >= 6);
}
