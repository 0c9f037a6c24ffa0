//! The tolerant, sans-io multipart parser: feed it bytes as they arrive with
//! [`Parser::push`], take frames out with [`Parser::next`]. It never blocks,
//! never touches a socket, and gives the same frames however the input is
//! split into chunks.
//!
//! Cameras bend the multipart rules in many ways, so the parser trusts the
//! bytes over the declarations: the boundary is learned from the body when the
//! `Content-Type` disagrees, a `Content-Length` is used only when the part it
//! delimits really ends in a JPEG end-of-image marker, and anything it cannot
//! make sense of is skipped up to the next boundary line.

use bytes::{Buf, Bytes, BytesMut};

/// Headers longer than this are not headers: the parser resyncs.
const MAX_HEADER_BYTES: usize = 16 * 1024;

/// What [`Parser::next`] hands out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A complete JPEG, byte for byte as the camera sent it.
    Frame(Bytes),
    /// A part that was dropped, and why.
    Skipped(Skip),
}

/// Why a part was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// The part is not a JPEG (wrong `Content-Type` or no start-of-image marker).
    NotJpeg,
    /// The part grew past the size limit before it ended.
    TooLarge,
    /// The part headers were unreadable or too long.
    BadHeaders,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Looking for a delimiter line (before the first part, between parts,
    /// and after anything unreadable).
    Seek,
    /// Reading part headers up to the blank line.
    Headers,
    /// Reading a part body.
    Body,
    /// Dropping an oversized part up to the next delimiter.
    Discard,
}

/// Pending input. While the input is consumed chunk by chunk it stays in the
/// caller's `Bytes` (frames are slices of it, no copy); only data that spans
/// chunks is gathered into an owned buffer, once.
#[derive(Debug, Default)]
struct Input {
    shared: Bytes,
    owned: BytesMut,
}

impl Input {
    fn push(&mut self, chunk: Bytes) {
        if chunk.is_empty() {
            return;
        }
        if self.owned.is_empty() && self.shared.is_empty() {
            self.shared = chunk;
            return;
        }
        if !self.shared.is_empty() {
            let shared = std::mem::take(&mut self.shared);
            self.owned.reserve(shared.len() + chunk.len());
            self.owned.extend_from_slice(&shared);
        }
        self.owned.extend_from_slice(&chunk);
    }

    fn as_slice(&self) -> &[u8] {
        if self.owned.is_empty() {
            &self.shared
        } else {
            &self.owned
        }
    }

    fn len(&self) -> usize {
        self.as_slice().len()
    }

    fn split_to(&mut self, n: usize) -> Bytes {
        if self.owned.is_empty() {
            self.shared.split_to(n)
        } else {
            self.owned.split_to(n).freeze()
        }
    }

    fn advance(&mut self, n: usize) {
        if self.owned.is_empty() {
            self.shared.advance(n);
        } else {
            self.owned.advance(n);
        }
    }
}

/// Headers of the part being read.
#[derive(Debug, Default)]
struct Part {
    content_length: Option<usize>,
    not_jpeg: bool,
    header_bytes: usize,
}

/// The multipart parser. See the module docs.
#[derive(Debug)]
pub struct Parser {
    /// The delimiter, `--` + boundary, once known.
    delimiter: Option<Vec<u8>>,
    input: Input,
    state: State,
    part: Part,
    /// Bytes of the input already searched without a match (so a byte at a
    /// time input is not searched again and again).
    scanned: usize,
    /// True until the first part starts: a stream may begin with part
    /// headers and no delimiter at all.
    at_start: bool,
    /// The start of the current line was dropped as junk.
    in_long_line: bool,
    /// Parts read so far (frames and skipped parts).
    parts: u64,
    max_part: usize,
}

impl Parser {
    /// A parser for a stream whose `Content-Type` declared `boundary` (if
    /// any), dropping parts larger than `max_part` bytes.
    pub fn new(boundary: Option<&str>, max_part: usize) -> Self {
        Self {
            delimiter: boundary.map(delimiter_for),
            input: Input::default(),
            state: State::Seek,
            part: Part::default(),
            scanned: 0,
            at_start: true,
            in_long_line: false,
            parts: 0,
            max_part,
        }
    }

    /// The boundary in use (declared, or learned from the body).
    pub fn boundary(&self) -> Option<&[u8]> {
        self.delimiter.as_deref().map(|d| &d[2..])
    }

    /// Bytes buffered and not yet handed out.
    pub fn buffered(&self) -> usize {
        self.input.len()
    }

    /// Feeds the next bytes from the camera.
    pub fn push(&mut self, chunk: impl Into<Bytes>) {
        self.input.push(chunk.into());
    }

    /// The next frame or skipped part, or `None` when more input is needed.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<Event> {
        loop {
            let progress = match self.state {
                State::Seek => self.seek(),
                State::Headers => self.headers(),
                State::Body => match self.body() {
                    Step::Event(event) => return Some(event),
                    Step::NeedMore => false,
                },
                State::Discard => self.discard(),
            };
            if !progress {
                return None;
            }
        }
    }

    fn goto(&mut self, state: State) {
        self.state = state;
        self.scanned = 0;
        if state == State::Headers {
            self.part = Part::default();
        }
    }

    /// Looks for a delimiter line and consumes it. Learns the boundary from
    /// the body when none was declared or the declared one is not used.
    fn seek(&mut self) -> bool {
        loop {
            let data = self.input.as_slice();
            let Some(eol) = memchr::memchr(b'\n', &data[self.scanned..]).map(|i| i + self.scanned) else {
                if data.len() > MAX_HEADER_BYTES {
                    // A line this long is neither a delimiter nor a header.
                    self.input.advance(data.len());
                    self.in_long_line = true;
                    self.scanned = 0;
                } else {
                    self.scanned = data.len();
                }
                return false;
            };
            let whole_line = !std::mem::take(&mut self.in_long_line);
            let line = trim_line(&data[..eol]);
            let line = (whole_line && line.len() <= MAX_HEADER_BYTES).then(|| line.to_vec());
            self.input.advance(eol + 1);
            self.scanned = 0;
            let Some(line) = line else { continue };
            if self.delimiter_line(&line) {
                self.at_start = false;
                self.goto(State::Headers);
                return true;
            }
            if self.at_start && is_header_line(&line) {
                // No delimiter before the first part: this line is a header.
                self.at_start = false;
                self.goto(State::Headers);
                self.header(&line);
                return true;
            }
            if !line.is_empty() {
                self.at_start = false;
            }
        }
    }

    /// Whether `line` opens a part, learning the boundary if needed. A close
    /// delimiter (`--b--`) does not open a part.
    fn delimiter_line(&mut self, line: &[u8]) -> bool {
        if line.len() < 3 || !line.starts_with(b"--") {
            return false;
        }
        if let Some(d) = &self.delimiter {
            if line == d.as_slice() {
                return true;
            }
            if line.len() == d.len() + 2 && line.starts_with(d) && line.ends_with(b"--") {
                return false;
            }
        }
        if line.ends_with(b"--") && line.len() > 4 {
            return false;
        }
        // An undeclared or different boundary: the body is the truth, but
        // only before the first part (a camera that declared the wrong
        // one), and only for a plausible token (RFC 2046: at most 70
        // printable characters), never for a junk line inside a stream.
        let token = &line[2..];
        let plausible = token.len() <= 70 && token.iter().all(|b| b.is_ascii_graphic() || *b == b' ');
        if !plausible || (self.delimiter.is_some() && self.parts > 0) {
            return false;
        }
        self.delimiter = Some(line.to_vec());
        true
    }

    fn headers(&mut self) -> bool {
        let data = self.input.as_slice();
        let Some(eol) = memchr::memchr(b'\n', data) else {
            if data.len() > MAX_HEADER_BYTES {
                self.goto(State::Seek);
                return true;
            }
            return false;
        };
        let line = trim_line(&data[..eol]).to_vec();
        self.input.advance(eol + 1);
        self.part.header_bytes += eol + 1;
        if self.part.header_bytes > MAX_HEADER_BYTES {
            self.goto(State::Seek);
            return true;
        }
        if line.is_empty() {
            self.goto(State::Body);
        } else if self.delimiter.as_deref() == Some(line.as_slice()) {
            // A repeated delimiter line: still before the headers.
            self.part = Part::default();
        } else {
            self.header(&line);
        }
        true
    }

    fn header(&mut self, line: &[u8]) {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return;
        };
        let name = &line[..colon];
        let value = trim(&line[colon + 1..]);
        if name.eq_ignore_ascii_case(b"content-length") {
            self.part.content_length = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
        } else if name.eq_ignore_ascii_case(b"content-type") {
            let image = value.len() >= 6 && value[..6].eq_ignore_ascii_case(b"image/");
            self.part.not_jpeg = !image;
        }
    }

    fn body(&mut self) -> Step {
        let data = self.input.as_slice();
        // A delimiter line that starts inside a declared length always ends
        // the part (the length lies): the result must not depend on whether
        // the rest of the length had arrived yet.
        let delimiter_at = self.delimiter.as_deref().and_then(|delimiter| {
            let from = self.scanned.saturating_sub(delimiter.len());
            find_delimiter(data, delimiter, from)
        });
        let delimited = delimiter_at.map(|at| strip_eol(&data[..at]));
        // The declared length, when no delimiter cuts it short (nor may yet:
        // a delimiter's first bytes inside it wait for the rest) and the
        // bytes agree with it.
        if let Some(len) = self.part.content_length.filter(|&len| len <= self.max_part) {
            let inside = |at: Option<usize>| at.is_some_and(|at| at < len);
            if data.len() >= len
                && !inside(delimiter_at)
                && !inside(self.delimiter.as_deref().and_then(|d| partial_delimiter(data, d)))
            {
                if self.part.not_jpeg || ends_with_eoi(&data[..len]) {
                    return self.emit(len);
                }
                // The length lies: the next delimiter (or, with no boundary
                // known, the first end-of-image marker) ends the part
                // instead, searched from the start of the part: while the
                // length was awaited nothing was searched.
                self.part.content_length = None;
                self.scanned = 0;
            }
        }
        let end = match (&self.delimiter, self.part.content_length) {
            (Some(_), _) => delimited,
            // Headers, no length and no delimiter ever seen: the part ends at
            // EOI. (With a length, wait for it: a JPEG may hold an inner EOI,
            // e.g. in an EXIF thumbnail.)
            (None, None) => {
                let from = self.scanned.saturating_sub(1);
                memchr::memmem::find(&data[from..], &[0xFF, 0xD9]).map(|i| from + i + 2)
            }
            (None, Some(_)) => None,
        };
        if let Some(end) = end {
            if end > self.max_part {
                // Complete, but over the limit: dropped like an endless part.
                self.parts += 1;
                self.input.advance(end);
                self.goto(State::Seek);
                return Step::Event(Event::Skipped(Skip::TooLarge));
            }
            return self.emit(end);
        }
        // The tail may be the start of the next delimiter line: only data
        // beyond the limit plus that much proves the part too large (so the
        // verdict does not depend on how much of the delimiter has arrived).
        let slack = self.delimiter.as_ref().map_or(0, |d| d.len() + 2);
        if data.len() > self.max_part + slack {
            self.parts += 1;
            self.goto(State::Discard);
            return Step::Event(Event::Skipped(Skip::TooLarge));
        }
        self.scanned = data.len();
        Step::NeedMore
    }

    /// Hands out the first `len` buffered bytes as the current part.
    fn emit(&mut self, len: usize) -> Step {
        self.parts += 1;
        let mut part = self.input.split_to(len);
        let event = if self.part.not_jpeg || !part.starts_with(&[0xFF, 0xD8]) {
            Event::Skipped(Skip::NotJpeg)
        } else {
            // Blank lines or padding after the end-of-image marker are not
            // part of the picture (extra CRLFs between parts, padded lengths).
            let end = jpeg_end(&part);
            part.truncate(end);
            Event::Frame(part)
        };
        self.goto(State::Seek);
        Step::Event(event)
    }

    /// Drops bytes up to the next delimiter line.
    fn discard(&mut self) -> bool {
        let data = self.input.as_slice();
        let Some(delimiter) = self.delimiter.clone() else {
            // No boundary known: the part ends where a whole-input parse
            // would have ended it, at its declared length or else at its
            // first end-of-image marker (so the split does not matter).
            if let Some(left) = self.part.content_length {
                let drop = left.min(data.len());
                self.input.advance(drop);
                self.part.content_length = Some(left - drop);
                if left == drop {
                    self.goto(State::Seek);
                    return true;
                }
                return false;
            }
            return match memchr::memmem::find(data, &[0xFF, 0xD9]) {
                Some(at) => {
                    self.input.advance(at + 2);
                    self.goto(State::Seek);
                    true
                }
                None => {
                    // Keep a trailing 0xFF: it may start the marker.
                    let keep = usize::from(data.last() == Some(&0xFF));
                    self.input.advance(data.len() - keep);
                    false
                }
            };
        };
        // The first byte was already judged (by `body`, or as a later byte
        // of the previous buffer): it is not where a delimiter starts, and
        // whether a line starts there is no longer known.
        let from = usize::from(!data.is_empty());
        match find_delimiter(data, &delimiter, from) {
            Some(at) => {
                self.input.advance(at);
                self.goto(State::Seek);
                true
            }
            None => {
                let keep = delimiter.len() + 1;
                let drop = data.len().saturating_sub(keep);
                self.input.advance(drop);
                false
            }
        }
    }
}

enum Step {
    Event(Event),
    NeedMore,
}

/// The boundary parameter of a `Content-Type` such as
/// `multipart/x-mixed-replace; boundary="--frame"`, unquoted, with any
/// leading `--` removed (cameras often include it by mistake; the parser
/// learns the exact form from the body anyway).
pub fn boundary_from_content_type(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("boundary") {
            return None;
        }
        let value = value.trim().trim_matches('"').trim();
        let value = value.strip_prefix("--").unwrap_or(value);
        (!value.is_empty()).then(|| value.to_string())
    })
}

fn delimiter_for(boundary: &str) -> Vec<u8> {
    let boundary = boundary.strip_prefix("--").unwrap_or(boundary);
    let mut d = b"--".to_vec();
    d.extend_from_slice(boundary.as_bytes());
    d
}

/// Position of `delimiter` at the start of a line in `data`, searching from
/// `from`.
fn find_delimiter(data: &[u8], delimiter: &[u8], from: usize) -> Option<usize> {
    let finder = memchr::memmem::Finder::new(delimiter);
    let mut at = from;
    while let Some(i) = finder.find(&data[at..]).map(|i| i + at) {
        if i == 0 || data[i - 1] == b'\n' {
            return Some(i);
        }
        at = i + 1;
    }
    None
}

/// Where the buffered data ends in the first bytes of a delimiter line that
/// has not fully arrived (the earliest such line start).
fn partial_delimiter(data: &[u8], delimiter: &[u8]) -> Option<usize> {
    let from = (data.len() + 1).saturating_sub(delimiter.len());
    (from..data.len()).find(|&p| (p == 0 || data[p - 1] == b'\n') && delimiter.starts_with(&data[p..]))
}

/// Length of `body` without the line break that precedes a delimiter.
fn strip_eol(body: &[u8]) -> usize {
    let body = body.strip_suffix(b"\n").unwrap_or(body);
    body.strip_suffix(b"\r").unwrap_or(body).len()
}

/// Whether a JPEG ends with its end-of-image marker, allowing the trailing
/// whitespace some cameras count in `Content-Length`.
fn ends_with_eoi(part: &[u8]) -> bool {
    part[..jpeg_end(part)].ends_with(&[0xFF, 0xD9])
}

/// Length of `part` without whitespace or NUL padding after its final
/// end-of-image marker (the whole length if it does not end in one).
fn jpeg_end(part: &[u8]) -> usize {
    let end = part
        .iter()
        .rposition(|&b| !matches!(b, b'\r' | b'\n' | b' ' | 0))
        .map_or(0, |i| i + 1);
    if part[..end].ends_with(&[0xFF, 0xD9]) {
        end
    } else {
        part.len()
    }
}

fn is_header_line(line: &[u8]) -> bool {
    match line.iter().position(|&b| b == b':') {
        Some(colon) if colon > 0 => line[..colon]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-'),
        _ => false,
    }
}

fn trim_line(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn trim(value: &[u8]) -> &[u8] {
    let start = value
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &value[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 1 << 20;

    fn jpeg(n: u8, len: usize) -> Vec<u8> {
        let mut v = vec![0xFF, 0xD8, 0xFF, 0xE0];
        v.extend((0..len).map(|i| (i as u8).wrapping_mul(n) | 1));
        v.extend([0xFF, 0xD9]);
        v
    }

    /// Feeds `input` in chunks of `size` and collects every event.
    fn parse(boundary: Option<&str>, input: &[u8], size: usize) -> Vec<Event> {
        parse_limited(boundary, MAX, input, size)
    }

    /// Events from `input` fed in chunks of `size`, with a part limit.
    fn parse_limited(boundary: Option<&str>, max: usize, input: &[u8], size: usize) -> Vec<Event> {
        let mut parser = Parser::new(boundary, max);
        let mut events = Vec::new();
        for chunk in input.chunks(size.max(1)) {
            parser.push(Bytes::copy_from_slice(chunk));
            while let Some(event) = parser.next() {
                events.push(event);
            }
        }
        events
    }

    /// The same events whatever the chunking.
    fn parse_all_ways(boundary: Option<&str>, input: &[u8]) -> Vec<Event> {
        let whole = parse(boundary, input, usize::MAX);
        for size in [1, 2, 3, 7, 64, 1000] {
            assert_eq!(parse(boundary, input, size), whole, "chunks of {size}");
        }
        whole
    }

    fn frames(events: &[Event]) -> Vec<Vec<u8>> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Frame(f) => Some(f.to_vec()),
                Event::Skipped(_) => None,
            })
            .collect()
    }

    fn stream(parts: &[(&str, &[u8])], boundary: &str, eol: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for (headers, body) in parts {
            out.extend(format!("--{boundary}{eol}{headers}{eol}").as_bytes());
            out.extend(*body);
            out.extend(eol.as_bytes());
        }
        out
    }

    #[test]
    fn content_length_parts_crlf() {
        let (a, b, c) = (jpeg(3, 100), jpeg(5, 2000), jpeg(7, 10));
        let parts: Vec<(String, &[u8])> = [&a, &b, &c]
            .iter()
            .map(|j| {
                (
                    format!("Content-Type: image/jpeg\r\nContent-Length: {}\r\n", j.len()),
                    j.as_slice(),
                )
            })
            .collect();
        let parts: Vec<(&str, &[u8])> = parts.iter().map(|(h, b)| (h.as_str(), *b)).collect();
        let input = stream(&parts, "frame", "\r\n");
        let events = parse_all_ways(Some("frame"), &input);
        assert_eq!(frames(&events), vec![a, b, c]);
    }

    #[test]
    fn parts_without_content_length_lf_only() {
        let (a, b) = (jpeg(3, 300), jpeg(9, 50));
        let input = stream(
            &[
                ("content-type:image/jpeg\n", &a),
                ("CONTENT-TYPE: image/jpeg\nX-Timestamp: 12\n", &b),
            ],
            "xyz",
            "\n",
        );
        let mut input = input;
        input.extend(b"--xyz\n");
        let events = parse_all_ways(Some("xyz"), &input);
        assert_eq!(frames(&events), vec![a, b]);
    }

    #[test]
    fn quoted_and_dashed_boundaries_and_preamble() {
        let a = jpeg(11, 64);
        let mut input = b"This is a preamble.\r\nIgnore me.\r\n".to_vec();
        input.extend(stream(
            &[("Content-Type: image/jpeg\r\nContent-Length: 70\r\n", &a)],
            "--myboundary",
            "\r\n",
        ));
        for declared in ["\"--myboundary\"", "--myboundary", "myboundary", "\"myboundary\""] {
            let ct = format!("multipart/x-mixed-replace; boundary={declared}");
            let b = boundary_from_content_type(&ct);
            let events = parse_all_ways(b.as_deref(), &input);
            assert_eq!(frames(&events), vec![a.clone()], "declared {declared}");
        }
    }

    #[test]
    fn boundary_param_forms() {
        assert_eq!(
            boundary_from_content_type("multipart/x-mixed-replace;boundary=abc").as_deref(),
            Some("abc")
        );
        assert_eq!(
            boundary_from_content_type("multipart/x-mixed-replace; boundary = \"a b\"").as_deref(),
            Some("a b")
        );
        assert_eq!(
            boundary_from_content_type("multipart/mixed; charset=x; BOUNDARY=--z").as_deref(),
            Some("z")
        );
        assert_eq!(boundary_from_content_type("image/jpeg"), None);
    }

    #[test]
    fn undeclared_boundary_is_learned() {
        let (a, b) = (jpeg(2, 40), jpeg(4, 41));
        let input = stream(
            &[
                ("Content-Type: image/jpeg\r\n", &a),
                ("Content-Type: image/jpeg\r\n", &b),
            ],
            "ipcamera",
            "\r\n",
        );
        let mut input = input;
        input.extend(b"--ipcamera\r\n");
        assert_eq!(frames(&parse_all_ways(None, &input)), vec![a.clone(), b.clone()]);
        // Declared one thing, sends another.
        assert_eq!(frames(&parse_all_ways(Some("other"), &input)), vec![a, b]);
    }

    #[test]
    fn wrong_content_length_trusts_the_boundary() {
        let (a, b) = (jpeg(2, 500), jpeg(6, 500));
        let input = stream(
            &[
                ("Content-Length: 100\r\n", &a),
                ("Content-Length:  9999 \r\n", &b),
            ],
            "b",
            "\r\n",
        );
        let mut input = input;
        input.extend(b"--b--\r\n");
        assert_eq!(frames(&parse_all_ways(Some("b"), &input)), vec![a, b]);
    }

    #[test]
    fn non_jpeg_parts_are_skipped_and_counted() {
        let a = jpeg(2, 50);
        let input = stream(
            &[
                ("Content-Type: text/plain\r\nContent-Length: 5\r\n", b"hello"),
                ("Content-Type: image/jpeg\r\nContent-Length: 56\r\n", &a),
            ],
            "b",
            "\r\n",
        );
        let events = parse_all_ways(Some("b"), &input);
        assert_eq!(
            events,
            vec![Event::Skipped(Skip::NotJpeg), Event::Frame(Bytes::from(a))]
        );
    }

    #[test]
    fn oversized_part_is_dropped_and_parser_resyncs() {
        let big = jpeg(3, 5000);
        let small = jpeg(5, 10);
        let input = stream(
            &[
                ("Content-Type: image/jpeg\r\n", &big),
                ("Content-Type: image/jpeg\r\n", &small),
            ],
            "b",
            "\r\n",
        );
        let mut input = input;
        input.extend(b"--b\r\n");
        let mut parser = Parser::new(Some("b"), 1000);
        let mut events = Vec::new();
        for chunk in input.chunks(3) {
            parser.push(Bytes::copy_from_slice(chunk));
            while let Some(e) = parser.next() {
                events.push(e);
            }
            assert!(parser.buffered() < 1100, "buffer stays bounded");
        }
        assert_eq!(
            events,
            vec![Event::Skipped(Skip::TooLarge), Event::Frame(Bytes::from(small))]
        );
    }

    #[test]
    fn a_complete_part_over_the_limit_is_dropped() {
        // Found by the fuzzer: the limit was checked only while no
        // delimiter had been seen, so a whole oversized part got through.
        let big = jpeg(1, 100);
        let small = jpeg(2, 10);
        let mut input = b"--b\r\nContent-Type: image/jpeg\r\n\r\n".to_vec();
        input.extend(&big);
        input.extend(b"\r\n--b\r\n\r\n");
        input.extend(&small);
        input.extend(b"\r\n--b\r\n");
        let mut parser = Parser::new(Some("b"), 64);
        parser.push(Bytes::from(input));
        let mut events = Vec::new();
        while let Some(e) = parser.next() {
            events.push(e);
        }
        assert_eq!(
            events,
            vec![Event::Skipped(Skip::TooLarge), Event::Frame(Bytes::from(small))]
        );
    }

    #[test]
    fn a_delimiter_inside_a_lying_length_ends_the_part_however_split() {
        // Found by the fuzzer: the length covers the next delimiter and
        // happens to end in EOI; whole and split input must agree.
        let (a, b) = (jpeg(1, 30), jpeg(2, 5));
        let mut body = a.clone();
        body.extend(b"\r\n--b\r\n");
        body.extend(&b);
        let mut input = format!("--b\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        input.extend(&body);
        input.extend(b"\r\n--b--\r\n");
        let events = parse_all_ways(Some("b"), &input);
        assert_eq!(frames(&events)[0], a);
    }

    #[test]
    fn an_oversized_part_without_any_boundary_is_dropped_the_same_however_split() {
        // Found by the fuzzer.
        let mut input = b"Content-Length: 9999\r\n\r\n".to_vec();
        input.extend(jpeg(1, 200));
        input.extend(b"\r\n--b\r\nContent-Length: 16\r\n\r\n");
        input.extend(jpeg(2, 10));
        input.extend(b"\r\n--b--\r\n");
        let once = parse_limited(None, 64, &input, usize::MAX);
        assert_eq!(once.first(), Some(&Event::Skipped(Skip::TooLarge)));
        for size in [1, 2, 3, 7, 64] {
            assert_eq!(parse_limited(None, 64, &input, size), once, "chunks of {size}");
        }
    }

    #[test]
    fn fuzz_finding_boundaryless_oversized_part_is_split_independent() {
        // The fuzzer's input: 4 control bytes (no boundary, limit 64, cuts
        // every 110 bytes), then a stream that never declares a boundary.
        let input = include_bytes!("../../fuzz/seeds/parser/regression-boundaryless-oversized-split");
        let data = &input[4..];
        let run = |cuts: &[usize]| {
            let mut parser = Parser::new(None, 64);
            let mut events = Vec::new();
            let mut from = 0;
            for &cut in cuts.iter().chain(std::iter::once(&data.len())) {
                parser.push(Bytes::copy_from_slice(&data[from..cut]));
                from = cut;
                while let Some(e) = parser.next() {
                    events.push(e);
                }
            }
            events
        };
        let cuts: Vec<usize> = (1..data.len()).step_by(110).collect();
        assert_eq!(run(&[]), run(&cuts));
    }

    #[test]
    fn fuzz_finding_junk_dash_line_is_not_learned_as_a_boundary() {
        let input = include_bytes!("../../fuzz/seeds/parser/regression-learned-junk-boundary");
        let data = &input[4..];
        let run = |cuts: &[usize]| {
            let mut parser = Parser::new(Some("b"), 64);
            let mut events = Vec::new();
            let mut from = 0;
            for &cut in cuts.iter().chain(std::iter::once(&data.len())) {
                parser.push(Bytes::copy_from_slice(&data[from..cut]));
                from = cut;
                while let Some(e) = parser.next() {
                    events.push(e);
                }
            }
            events
        };
        assert_eq!(run(&[]), run(&[1]));
    }

    #[test]
    fn a_part_exactly_at_the_limit_is_judged_the_same_however_split() {
        // Sixth fuzz finding: a part of exactly the limit, its delimiter
        // arriving in pieces, was called too large before the delimiter was
        // complete.
        let a = jpeg(1, 58); // 64 bytes
        assert_eq!(a.len(), 64);
        let mut input = b"--b\r\n\r\n".to_vec();
        input.extend(&a);
        input.extend(b"\r\n--b--\r\n");
        for size in [1, 2, 3, 7, 64, 70, 71, 72, 73] {
            assert_eq!(
                parse_limited(Some("b"), 64, &input, size),
                vec![Event::Frame(Bytes::from(a.clone()))],
                "chunks of {size}"
            );
        }
    }

    #[test]
    fn a_delimiter_lookalike_inside_a_dropped_part_is_not_a_line_start() {
        // Seventh fuzz finding: while dropping an oversized part, the kept
        // tail could begin right at a `--b` in the middle of a line, which
        // then passed for a delimiter in some splits and not in others.
        let mut input = b"--b\r\n\r\n\xFF\xD8".to_vec();
        input.extend([0x1e; 80]);
        input.extend(b"--b\n\r\n");
        input.extend(jpeg(3, 10));
        input.extend(b"\r\n--b\r\n\r\n");
        let b = jpeg(2, 10);
        input.extend(&b);
        input.extend(b"\r\n--b--\r\n");
        let expected = vec![Event::Skipped(Skip::TooLarge), Event::Frame(Bytes::from(b))];
        for size in [1, 2, 3, 5, 90, input.len()] {
            assert_eq!(
                parse_limited(Some("b"), 64, &input, size),
                expected,
                "chunks of {size}"
            );
        }
    }

    #[test]
    fn a_delimiter_arriving_inside_a_declared_length_still_cuts_it() {
        // Eighth fuzz finding: `Content-Length: 8` over a 5-byte part. Had
        // only the first `-` of the next delimiter arrived, the length was
        // trusted and the delimiter line lost, and the next part with it.
        let a = jpeg(4, 10);
        let mut input =
            b"--b\r\nContent-Type: text/plain\r\nContent-Length: 8\r\n\r\nhello\r\n--b\r\n\r\n".to_vec();
        input.extend(&a);
        input.extend(b"\r\n--b--\r\n");
        let events = parse_all_ways(Some("b"), &input);
        assert_eq!(
            events,
            vec![Event::Skipped(Skip::NotJpeg), Event::Frame(Bytes::from(a))]
        );
    }

    #[test]
    fn a_part_with_a_true_length_is_out_as_soon_as_its_last_byte_arrives() {
        // Most cameras send the delimiter before each part, so the one after
        // a frame comes only with the next frame: waiting for it would add a
        // frame of latency.
        let a = jpeg(5, 10);
        for tail in [&b""[..], b"\r\n"] {
            let mut parser = Parser::new(Some("b"), MAX);
            parser.push(Bytes::from(format!("--b\r\nContent-Length: {}\r\n\r\n", a.len())));
            assert_eq!(parser.next(), None);
            let mut body = a.clone();
            body.extend(tail);
            parser.push(Bytes::from(body));
            assert_eq!(parser.next(), Some(Event::Frame(Bytes::from(a.clone()))));
        }
    }

    #[test]
    fn a_lying_length_without_a_boundary_falls_back_to_the_first_eoi() {
        // Ninth fuzz finding: no boundary, a Content-Length past the JPEG's
        // end. Fed whole, the part ended at its end-of-image marker; a byte
        // at a time, the marker search began where the length had been
        // awaited, past the marker, and the part was lost.
        let a = jpeg(6, 10);
        let b = jpeg(7, 10);
        let mut input = format!(
            "Content-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
            a.len() + 20
        )
        .into_bytes();
        input.extend(&a);
        input.extend(b"\r\nX-Junk: 1\r\n\r\n");
        input.extend(&b);
        let events = parse_all_ways(None, &input);
        assert_eq!(events.first(), Some(&Event::Frame(Bytes::from(a))));
    }

    #[test]
    fn endless_garbage_stays_bounded() {
        let mut parser = Parser::new(Some("b"), 4096);
        for _ in 0..1000 {
            parser.push(Bytes::from(vec![b'x'; 1000]));
            while parser.next().is_some() {}
            assert!(parser.buffered() <= MAX_HEADER_BYTES + 1000);
        }
    }

    #[test]
    fn stream_starting_with_headers_and_extra_blank_lines() {
        let (a, b) = (jpeg(1, 20), jpeg(2, 30));
        let mut input =
            format!("Content-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n", a.len()).into_bytes();
        input.extend(&a);
        input.extend(b"\r\n\r\n\r\n--b\r\n--b\r\nContent-Type: image/jpeg\r\n\r\n");
        input.extend(&b);
        input.extend(b"\r\n--b\r\n");
        assert_eq!(frames(&parse_all_ways(Some("b"), &input)), vec![a, b]);
    }

    #[test]
    fn extra_blank_lines_and_padding_after_the_jpeg_are_not_part_of_it() {
        let (a, b) = (jpeg(1, 40), jpeg(2, 40));
        let mut input = b"--b\n\n".to_vec();
        input.extend(&a);
        input.extend(b"\n\n\r\n--b\r\nContent-Length: 50\r\n\r\n");
        input.extend(&b);
        input.extend(b"\r\n\0\0\r\n--b--\r\n");
        assert_eq!(frames(&parse_all_ways(Some("b"), &input)), vec![a, b]);
    }

    #[test]
    fn truncated_frame_is_never_emitted() {
        let a = jpeg(1, 100);
        let input = stream(&[("Content-Length: 106\r\n", &a)], "b", "\r\n");
        let cut = &input[..input.len() - 20];
        assert!(frames(&parse_all_ways(Some("b"), cut)).is_empty());
    }

    #[test]
    fn single_chunk_frame_is_not_copied() {
        let a = jpeg(1, 100);
        let input = Bytes::from(stream(&[("Content-Length: 106\r\n", &a)], "b", "\r\n"));
        let mut parser = Parser::new(Some("b"), MAX);
        parser.push(input.clone());
        let Some(Event::Frame(frame)) = parser.next() else {
            panic!("no frame")
        };
        let range = input.as_ptr_range();
        assert!(range.contains(&frame.as_ptr()), "frame is a slice of the input");
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// One part: its JPEG-like body and how its headers are written.
        fn part() -> impl Strategy<Value = (Vec<u8>, bool, bool, bool)> {
            (
                proptest::collection::vec(any::<u8>(), 0..600),
                any::<bool>(), // Content-Length given
                any::<bool>(), // CRLF (else LF)
                any::<bool>(), // an extra header
            )
                .prop_map(|(payload, with_len, crlf, extra)| {
                    let mut body = vec![0xFF, 0xD8];
                    body.extend(payload);
                    body.extend([0xFF, 0xD9]);
                    (body, with_len, crlf, extra)
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(200))]
            /// Random valid streams, split at random points, yield exactly
            /// their frames.
            #[test]
            fn random_streams_split_anywhere_yield_their_frames(
                parts in proptest::collection::vec(part(), 1..6),
                cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
            ) {
                let mut stream = b"preamble\r\n".to_vec();
                for (body, with_len, crlf, extra) in &parts {
                    let eol = if *crlf { "\r\n" } else { "\n" };
                    stream.extend(format!("--propboundary{eol}Content-Type: image/jpeg{eol}").as_bytes());
                    if *with_len {
                        stream.extend(format!("Content-Length: {}{eol}", body.len()).as_bytes());
                    }
                    if *extra {
                        stream.extend(format!("X-Timestamp: 12345{eol}").as_bytes());
                    }
                    stream.extend(eol.as_bytes());
                    stream.extend(body);
                    stream.extend(eol.as_bytes());
                }
                stream.extend(b"--propboundary--\r\n");

                let mut points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
                points.push(0);
                points.push(stream.len());
                points.sort_unstable();
                points.dedup();
                let mut parser = Parser::new(Some("propboundary"), MAX);
                let mut got = Vec::new();
                for pair in points.windows(2) {
                    parser.push(Bytes::copy_from_slice(&stream[pair[0]..pair[1]]));
                    while let Some(event) = parser.next() {
                        got.push(event);
                    }
                }
                let want: Vec<Event> = parts.iter().map(|(b, ..)| Event::Frame(Bytes::from(b.clone()))).collect();
                prop_assert_eq!(got, want);
            }
        }
    }
}
