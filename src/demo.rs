//! The built-in test-pattern camera: real JPEGs showing scrolling colour bars,
//! a bouncing square, a clock and a frame counter, so a person sees at once
//! that the picture is live. Used by `--demo`, by `mjpeg-relay mock-camera`
//! and by the tests. Each frame carries its capture time in a JPEG comment
//! (`mjpeg-relay-ts=<unix micros>`) so latency can be measured end to end.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use font8x8::UnicodeFonts;
use jpeg_encoder::{ColorType, Encoder};

use crate::config::DemoSettings;

/// Marker before the timestamp in the JPEG comment.
pub const TIMESTAMP_TAG: &[u8] = b"mjpeg-relay-ts=";

/// Renders test-pattern frames.
#[derive(Debug, Clone)]
pub struct Pattern {
    width: usize,
    height: usize,
    rgb: Vec<u8>,
}

const BARS: [[u8; 3]; 8] = [
    [235, 235, 235],
    [235, 235, 16],
    [16, 235, 235],
    [16, 235, 16],
    [235, 16, 235],
    [235, 16, 16],
    [16, 16, 235],
    [16, 16, 16],
];

impl Pattern {
    /// A renderer for pictures of the given size.
    pub fn new(settings: DemoSettings) -> Self {
        let (width, height) = (settings.width as usize, settings.height as usize);
        Self {
            width,
            height,
            rgb: vec![0; width * height * 3],
        }
    }

    /// Frame number `n`, stamped with `now`, as a JPEG.
    pub fn render(&mut self, n: u64, now: SystemTime) -> Bytes {
        let (w, h) = (self.width, self.height);
        // Scrolling colour bars.
        let shift = (n as usize * 4) % w;
        for x in 0..w {
            let bar = BARS[((x + shift) % w) * BARS.len() / w];
            for y in 0..h {
                let i = (y * w + x) * 3;
                self.rgb[i..i + 3].copy_from_slice(&bar);
            }
        }
        // A bouncing square.
        let side = (h / 6).max(4);
        let (span_x, span_y) = (w.saturating_sub(side).max(1), h.saturating_sub(side).max(1));
        let bounce = |t: usize, span: usize| {
            let p = t % (2 * span);
            if p < span { p } else { 2 * span - p }
        };
        let (sx, sy) = (bounce(n as usize * 7, span_x), bounce(n as usize * 5, span_y));
        self.fill(sx, sy, side, side, [255, 128, 0]);

        let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        let clock = clock_text(since_epoch);
        let scale = (h / 120).clamp(1, 6);
        let line = 8 * scale + 2 * scale;
        self.fill(0, 0, w, line * 3 + 2 * scale, [0, 0, 0]);
        self.text(scale, scale, scale, "mjpeg-relay demo", [255, 255, 255]);
        self.text(scale, scale + line, scale, &clock, [0, 255, 0]);
        self.text(
            scale,
            scale + 2 * line,
            scale,
            &format!("frame {n:06}"),
            [255, 255, 0],
        );

        encode(&self.rgb, w, h, since_epoch)
    }

    /// The feed-lost card: "camera offline", since when, and the retry
    /// countdown, as a JPEG of this pattern's size.
    pub fn render_offline(&mut self, since: SystemTime, retry_in: Duration) -> Bytes {
        let (w, h) = (self.width, self.height);
        self.fill(0, 0, w, h, [32, 32, 40]);
        self.fill(0, h / 2 - h / 6, w, h / 3, [140, 20, 20]);
        let since_epoch = since.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        let lines = [
            "CAMERA OFFLINE".to_string(),
            format!("since {} UTC", &clock_text(since_epoch)[..8]),
            format!("retrying in {} s", retry_in.as_secs_f64().ceil() as u64),
        ];
        let longest = lines.iter().map(String::len).max().unwrap_or(1);
        let scale = (w / (longest * 8 + 2)).clamp(1, (h / 40).max(1)).max(1);
        let line = 10 * scale;
        let top = (h / 2).saturating_sub(line * 3 / 2);
        for (i, text) in lines.iter().enumerate() {
            let x = w.saturating_sub(text.len() * 8 * scale) / 2;
            self.text(x, top + i * line, scale, text, [255, 255, 255]);
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        encode(&self.rgb, w, h, now)
    }

    fn fill(&mut self, x0: usize, y0: usize, w: usize, h: usize, rgb: [u8; 3]) {
        for y in y0..(y0 + h).min(self.height) {
            for x in x0..(x0 + w).min(self.width) {
                let i = (y * self.width + x) * 3;
                self.rgb[i..i + 3].copy_from_slice(&rgb);
            }
        }
    }

    fn text(&mut self, x0: usize, y0: usize, scale: usize, text: &str, rgb: [u8; 3]) {
        for (k, c) in text.chars().enumerate() {
            let Some(glyph) = font8x8::BASIC_FONTS.get(c) else {
                continue;
            };
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..8 {
                    if bits & (1 << col) != 0 {
                        self.fill(x0 + (k * 8 + col) * scale, y0 + row * scale, scale, scale, rgb);
                    }
                }
            }
        }
    }
}

/// `HH:MM:SS.mmm UTC`.
fn clock_text(since_epoch: Duration) -> String {
    let secs = since_epoch.as_secs();
    format!(
        "{:02}:{:02}:{:02}.{:03} UTC",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60,
        since_epoch.subsec_millis()
    )
}

/// Encodes an RGB picture as a baseline JPEG with a timestamp comment.
fn encode(rgb: &[u8], w: usize, h: usize, stamp: Duration) -> Bytes {
    let mut out = Vec::with_capacity(w * h / 4);
    let encoder = Encoder::new(&mut out, 80);
    // Sizes are bounded by DemoSettings (u16) and the buffer matches them, so
    // encoding into a Vec cannot fail.
    if encoder.encode(rgb, w as u16, h as u16, ColorType::Rgb).is_err() {
        return Bytes::new();
    }
    let comment = format!("mjpeg-relay-ts={}", stamp.as_micros());
    let len = (comment.len() + 2) as u16;
    let mut segment = vec![0xFF, 0xFE];
    segment.extend_from_slice(&len.to_be_bytes());
    segment.extend_from_slice(comment.as_bytes());
    out.splice(2..2, segment);
    Bytes::from(out)
}

/// Width and height from a JPEG's start-of-frame marker.
pub fn dimensions(jpeg: &[u8]) -> Option<(u16, u16)> {
    let mut i = 2;
    while i + 9 < jpeg.len() {
        if jpeg[i] != 0xFF {
            return None;
        }
        let marker = jpeg[i + 1];
        let len = usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
        if matches!(marker, 0xC0..=0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF) {
            let h = u16::from_be_bytes([jpeg[i + 5], jpeg[i + 6]]);
            let w = u16::from_be_bytes([jpeg[i + 7], jpeg[i + 8]]);
            return (w > 0 && h > 0).then_some((w, h));
        }
        i += 2 + len;
    }
    None
}

/// The capture time stamped into a demo frame, if it has one.
pub fn timestamp(jpeg: &[u8]) -> Option<SystemTime> {
    let at = memchr::memmem::find(jpeg.get(..256)?, TIMESTAMP_TAG)? + TIMESTAMP_TAG.len();
    let digits = jpeg[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    let micros: u64 = std::str::from_utf8(&jpeg[at..at + digits]).ok()?.parse().ok()?;
    Some(UNIX_EPOCH + Duration::from_micros(micros))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_distinct_valid_jpegs_with_timestamps() {
        let mut p = Pattern::new(DemoSettings {
            fps: 30,
            width: 160,
            height: 120,
        });
        let now = SystemTime::now();
        let a = p.render(1, now);
        let b = p.render(2, now);
        assert!(a.starts_with(&[0xFF, 0xD8]) && a.ends_with(&[0xFF, 0xD9]));
        assert_ne!(a, b);
        let stamp = timestamp(&a).unwrap();
        let diff = now.duration_since(stamp).unwrap_or_else(|e| e.duration());
        assert!(diff < Duration::from_millis(1), "{diff:?}");
    }

    #[test]
    fn offline_card_has_the_requested_size() {
        let mut p = Pattern::new(DemoSettings {
            fps: 1,
            width: 320,
            height: 240,
        });
        let card = p.render_offline(SystemTime::now(), Duration::from_secs(3));
        assert_eq!(dimensions(&card), Some((320, 240)));
        assert_eq!(dimensions(&p.render(1, SystemTime::now())), Some((320, 240)));
    }

    #[test]
    fn clock() {
        assert_eq!(clock_text(Duration::from_millis(3_723_045)), "01:02:03.045 UTC");
    }
}
