//! MJPEG over HTTP multipart: the tolerant sans-io [`Parser`] that cuts a
//! camera's byte stream into JPEG frames, and the [`encode`] helpers that write
//! the multipart framing viewers receive. Nothing here touches a socket.

pub mod encode;
mod parser;

pub use parser::{Event, Parser, Skip, boundary_from_content_type};
