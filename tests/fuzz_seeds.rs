//! Replays the fuzzer's seed corpus (`fuzz/seeds/parser`, including every
//! past finding's reproducer) through the fuzzer's own property, so each
//! `cargo test` guards the parser fixes without cargo-fuzz.

#[path = "../fuzz/fuzz_targets/parser_check.rs"]
mod parser_check;

#[test]
fn every_fuzz_seed_keeps_the_parser_property() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/parser");
    let mut seeds = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let input = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| parser_check::check(&input));
        assert!(
            outcome.is_ok(),
            "seed {} breaks the parser property",
            path.display()
        );
        seeds += 1;
    }
    assert!(seeds >= 8, "only {seeds} seeds in {}", dir.display());
}
