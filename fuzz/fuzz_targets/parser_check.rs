//! The parser property the fuzzer checks, shared with `tests/fuzz_seeds.rs`
//! (which replays the seed corpus in every `cargo test`): arbitrary camera
//! bytes, split at arbitrary points, with an arbitrary declared boundary and
//! size limit. No panic; every frame is a JPEG (SOI … EOI) no larger than the
//! limit; the buffer stays bounded; and the events do not depend on how the
//! input was split.

use bytes::Bytes;
use mjpeg_relay::mjpeg::{Event, Parser};

fn run(boundary: Option<&str>, max: usize, data: &[u8], cuts: &[usize]) -> Vec<Event> {
    let mut parser = Parser::new(boundary, max);
    let mut events = Vec::new();
    let mut from = 0;
    for &cut in cuts.iter().chain(std::iter::once(&data.len())) {
        let cut = cut.clamp(from, data.len());
        parser.push(Bytes::copy_from_slice(&data[from..cut]));
        from = cut;
        while let Some(event) = parser.next() {
            if let Event::Frame(frame) = &event {
                assert!(frame.starts_with(&[0xFF, 0xD8]), "a frame without SOI");
                assert!(frame.len() <= max, "a frame above the limit");
            }
            events.push(event);
        }
        assert!(
            parser.buffered() <= max + 64 * 1024,
            "buffer grew to {}",
            parser.buffered()
        );
    }
    events
}

/// Checks one fuzzer input: its first four bytes choose the boundary, the
/// limit and the split points; the rest is what the camera sends.
pub fn check(input: &[u8]) {
    if input.len() < 4 {
        return;
    }
    let (head, data) = input.split_at(4);
    let boundary = match head[0] % 4 {
        0 => None,
        1 => Some("b"),
        2 => Some("--myboundary"),
        _ => Some("frame"),
    };
    let max = 64 + usize::from(head[1]) * 64;
    let step = usize::from(head[2]).max(1);
    let cuts: Vec<usize> = (1..data.len()).step_by(step).collect();
    let whole = run(boundary, max, data, &[]);
    let split = run(boundary, max, data, &cuts);
    assert_eq!(whole, split, "events depend on how the input is split");
}
