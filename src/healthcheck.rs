//! The `healthcheck` subcommand: GET `/livez` on the admin port with a plain
//! HTTP/1.0 request (no client library, no runtime) and report the answer.
//! The distroless image has no curl; Docker's `HEALTHCHECK` runs this.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// `Ok` if `http://host:port/livez` answers 200 within `timeout`.
pub fn probe(host: &str, port: u16, timeout: Duration) -> Result<(), String> {
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("no address for {host}"))?;
    let mut tcp =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    tcp.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    tcp.set_write_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    tcp.write_all(format!("GET /livez HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
        .map_err(|e| format!("cannot send the probe: {e}"))?;
    let mut head = [0u8; 64];
    let n = tcp
        .read(&mut head)
        .map_err(|e| format!("no answer from {addr}: {e}"))?;
    let status_line = String::from_utf8_lossy(&head[..n]);
    let status = status_line.lines().next().unwrap_or("").to_string();
    if status.split_whitespace().nth(1) == Some("200") {
        Ok(())
    } else {
        Err(format!("{addr}/livez answered '{status}'"))
    }
}
