//! The multipart framing written to viewers. The boundary line goes out right
//! after each frame (so a browser can show the frame without waiting for the
//! next one), the part headers just before the next frame.

use bytes::Bytes;

/// The boundary token used on every `/stream` response.
pub const BOUNDARY: &str = "mjpegrelayboundary";

/// `Content-Type` of a `/stream` response.
pub const CONTENT_TYPE: &str = "multipart/x-mixed-replace; boundary=mjpegrelayboundary";

/// Written once when a stream starts: the first delimiter line.
pub const OPENING: Bytes = Bytes::from_static(b"--mjpegrelayboundary\r\n");

/// Written after each frame: the end of the part and the next delimiter line.
pub const AFTER_FRAME: Bytes = Bytes::from_static(b"\r\n--mjpegrelayboundary\r\n");

/// Written when a stream ends cleanly (shutdown): the close delimiter.
pub const CLOSING: Bytes = Bytes::from_static(b"--mjpegrelayboundary--\r\n");

/// The headers of one JPEG part, up to and including the blank line.
pub fn part_headers(len: usize) -> Bytes {
    Bytes::from(format!(
        "Content-Type: image/jpeg\r\nContent-Length: {len}\r\n\r\n"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_agree_with_the_boundary() {
        assert!(CONTENT_TYPE.ends_with(BOUNDARY));
        assert_eq!(OPENING, format!("--{BOUNDARY}\r\n").as_bytes());
        assert_eq!(AFTER_FRAME, format!("\r\n--{BOUNDARY}\r\n").as_bytes());
        assert_eq!(CLOSING, format!("--{BOUNDARY}--\r\n").as_bytes());
        assert_eq!(
            part_headers(42),
            "Content-Type: image/jpeg\r\nContent-Length: 42\r\n\r\n".as_bytes()
        );
    }
}
