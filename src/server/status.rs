//! `/status` (an HTML page for people) and `/status.json` (the same data for
//! scripts). The page is rendered with the current numbers, then keeps them
//! fresh by polling `/status.json` once a second; its thumbnail refreshes
//! from `/snapshot`, so looking at the status page does not count as a viewer.

use std::sync::atomic::Ordering;

use serde::Serialize;

use crate::hub::{Hub, SourceStatus};

/// Everything `/status.json` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The relay's version.
    pub version: &'static str,
    /// The upstream source.
    pub source: SourceStatus,
    /// Viewers connected now (named `clients` as in the original script).
    pub clients: u64,
    /// Viewer sessions ever started.
    pub viewer_sessions: u64,
    /// Frames written to viewers.
    pub frames_out: u64,
    /// Bytes written to viewers.
    pub bytes_out: u64,
    /// Frames slow viewers skipped.
    pub frames_skipped: u64,
    /// Seconds since start.
    pub uptime_s: u64,
    /// With several cameras: every source (the primary first) with its
    /// viewer count. Totals above cover all of them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<NamedSource>,
}

/// One camera of a multi-camera relay.
#[derive(Debug, Clone, Serialize)]
pub struct NamedSource {
    /// The source.
    #[serde(flatten)]
    pub source: SourceStatus,
    /// Viewers of this source now.
    pub clients: u64,
    /// Where to watch it.
    pub stream: String,
}

impl Status {
    /// The status of `hub` now.
    pub fn of(hub: &Hub) -> Self {
        let c = &hub.counters;
        Self {
            version: env!("CARGO_PKG_VERSION"),
            source: hub.snapshot(),
            clients: c.viewers.load(Ordering::Relaxed),
            viewer_sessions: c.viewer_sessions.load(Ordering::Relaxed),
            frames_out: c.frames_out.load(Ordering::Relaxed),
            bytes_out: c.bytes_out.load(Ordering::Relaxed),
            frames_skipped: c.frames_skipped.load(Ordering::Relaxed),
            uptime_s: hub.uptime().as_secs(),
            sources: Vec::new(),
        }
    }

    /// Lists every source and makes the viewer totals cover them all.
    pub fn add_sources<'a>(&mut self, hubs: impl IntoIterator<Item = &'a Hub>) {
        let (mut clients, mut sessions, mut frames, mut bytes, mut skipped) = (0, 0, 0, 0, 0);
        for hub in hubs {
            let c = &hub.counters;
            let viewers = c.viewers.load(Ordering::Relaxed);
            clients += viewers;
            sessions += c.viewer_sessions.load(Ordering::Relaxed);
            frames += c.frames_out.load(Ordering::Relaxed);
            bytes += c.bytes_out.load(Ordering::Relaxed);
            skipped += c.frames_skipped.load(Ordering::Relaxed);
            self.sources.push(NamedSource {
                source: hub.snapshot(),
                clients: viewers,
                stream: format!("/{}/stream", hub.name()),
            });
        }
        self.clients = clients;
        self.viewer_sessions = sessions;
        self.frames_out = frames;
        self.bytes_out = bytes;
        self.frames_skipped = skipped;
    }
}

/// `/status.json`.
pub fn status_json(status: &Status) -> String {
    serde_json::to_string_pretty(status).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn duration(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m {}s", s / 60, s % 60),
        s if s < 86400 => format!("{}h {}m", s / 3600, s / 60 % 60),
        s => format!("{}d {}h", s / 86400, s / 3600 % 24),
    }
}

/// `/status`.
pub fn html(status: &Status) -> String {
    let s = &status.source;
    let state = s.state.as_str();
    let error = s.last_error.as_deref().map(escape).unwrap_or_default();
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>mjpeg-relay status</title>
<style>
:root{{--bg:#0f1419;--card:#182029;--fg:#e6edf3;--dim:#8b98a5;--ok:#3fb950;--warn:#d29922;--bad:#f85149}}
*{{box-sizing:border-box}}body{{margin:0;font:15px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;background:var(--bg);color:var(--fg)}}
header{{padding:16px 20px;border-bottom:1px solid #2d333b;display:flex;gap:12px;align-items:center;flex-wrap:wrap}}
h1{{font-size:18px;margin:0}}.pill{{padding:2px 10px;border-radius:999px;font-weight:600;font-size:13px;background:#2d333b}}
.streaming{{background:var(--ok);color:#04260f}}.connecting,.reconnecting,.idle{{background:var(--warn);color:#2b1d00}}.unauthorized{{background:var(--bad);color:#2d0000}}
main{{padding:20px;display:grid;gap:16px;grid-template-columns:repeat(auto-fit,minmax(280px,1fr));max-width:1100px}}
.card{{background:var(--card);border-radius:10px;padding:16px}}.card h2{{font-size:13px;text-transform:uppercase;letter-spacing:.06em;color:var(--dim);margin:0 0 10px}}
dl{{display:grid;grid-template-columns:auto 1fr;gap:6px 14px;margin:0}}dt{{color:var(--dim)}}dd{{margin:0;font-variant-numeric:tabular-nums;word-break:break-all}}
img{{width:100%;border-radius:6px;background:#000;aspect-ratio:4/3;object-fit:contain}}.err{{color:var(--bad)}}footer{{padding:0 20px 20px;color:var(--dim);font-size:13px}}
a{{color:#58a6ff}}
</style></head><body>
<header><h1>mjpeg-relay</h1><span id="state" class="pill {state}">{state}</span><span id="url" style="color:var(--dim)">{url}</span></header>
<main>
<section class="card"><h2>Live</h2><img id="thumb" src="/snapshot" alt="newest frame"></section>
<section class="card"><h2>Source</h2><dl>
<dt>State</dt><dd id="state2">{state}</dd>
<dt>Frame rate</dt><dd><span id="fps">{fps:.1}</span> fps</dd>
<dt>Frames</dt><dd id="frames">{frames}</dd>
<dt>Received</dt><dd id="bytes_in">{bytes_in}</dd>
<dt>Bandwidth in</dt><dd id="bw_in">–</dd>
<dt>Frame size</dt><dd id="frame_size">{frame_size}</dd>
<dt>Reconnects</dt><dd id="reconnects">{reconnects}</dd>
<dt>Last error</dt><dd id="error" class="err">{error}</dd>
</dl></section>
<section class="card"><h2>Viewers</h2><dl>
<dt>Viewers now</dt><dd id="clients">{clients}</dd>
<dt>Sessions</dt><dd id="sessions">{sessions}</dd>
<dt>Sent</dt><dd id="bytes_out">{bytes_out}</dd>
<dt>Bandwidth out</dt><dd id="bw_out">–</dd>
<dt>Skipped frames</dt><dd id="skipped">{skipped}</dd>
<dt>Uptime</dt><dd id="uptime">{uptime}</dd>
</dl></section>
{sources_card}</main>
<footer>mjpeg-relay {version} · <a href="/stream">/stream</a> · <a href="/snapshot">/snapshot</a> · <a href="/status.json">/status.json</a></footer>
<script>
(function(){{
var prev=null;
function b(n){{var u=["B","KiB","MiB","GiB","TiB"],i=0;while(n>=1024&&i<4){{n/=1024;i++}}return i?n.toFixed(1)+" "+u[i]:n+" B"}}
function d(s){{return s<60?s+"s":s<3600?Math.floor(s/60)+"m "+s%60+"s":s<86400?Math.floor(s/3600)+"h "+Math.floor(s/60)%60+"m":Math.floor(s/86400)+"d "+Math.floor(s/3600)%24+"h"}}
function set(id,v){{document.getElementById(id).textContent=v}}
function tick(){{fetch("/status.json",{{cache:"no-store"}}).then(function(r){{return r.json()}}).then(function(j){{
var s=j.source,now=Date.now();
var p=document.getElementById("state");p.textContent=s.state;p.className="pill "+s.state;set("state2",s.state);
set("fps",s.fps.toFixed(1));set("frames",s.frames);set("bytes_in",b(s.bytes_in));
set("frame_size",s.last_frame_bytes==null?"–":b(s.last_frame_bytes));set("reconnects",s.reconnects);set("error",s.last_error||"");
set("clients",j.clients);set("sessions",j.viewer_sessions);set("bytes_out",b(j.bytes_out));set("skipped",j.frames_skipped);set("uptime",d(j.uptime_s));
if(prev){{var dt=(now-prev.t)/1000;set("bw_in",b(Math.round((s.bytes_in-prev.i)/dt))+"/s");set("bw_out",b(Math.round((j.bytes_out-prev.o)/dt))+"/s")}}
prev={{t:now,i:s.bytes_in,o:j.bytes_out}};
if(s.frames)document.getElementById("thumb").src="/snapshot?t="+now;
}}).catch(function(){{var p=document.getElementById("state");p.textContent="relay unreachable";p.className="pill unauthorized"}})}}
tick();setInterval(tick,1000);
}})();
</script>
</body></html>
"#,
        url = escape(&s.url),
        fps = s.fps,
        frames = s.frames,
        bytes_in = bytes(s.bytes_in),
        frame_size = s.last_frame_bytes.map_or("–".into(), |n| bytes(n as u64)),
        reconnects = s.reconnects,
        clients = status.clients,
        sessions = status.viewer_sessions,
        bytes_out = bytes(status.bytes_out),
        skipped = status.frames_skipped,
        uptime = duration(status.uptime_s),
        version = status.version,
        sources_card = sources_card(status),
    )
}

/// With several cameras: one row per source, linking to its stream.
fn sources_card(status: &Status) -> String {
    if status.sources.is_empty() {
        return String::new();
    }
    let rows: String = status
        .sources
        .iter()
        .map(|s| {
            format!(
                "<dt><a href=\"{stream}\">{name}</a></dt><dd><span class=\"pill {state}\">{state}</span> {fps:.1} fps · {clients} viewers · {url}</dd>\n",
                stream = escape(&s.stream),
                name = escape(&s.source.name),
                state = s.source.state.as_str(),
                fps = s.source.fps,
                clients = s.clients,
                url = escape(&s.source.url),
            )
        })
        .collect();
    format!("<section class=\"card\" style=\"grid-column:1/-1\"><h2>Cameras</h2><dl>{rows}</dl></section>\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_shows_numbers_and_escapes() {
        let hub = Hub::new("default", "http://cam/<x>");
        let page = html(&Status::of(&hub));
        assert!(page.contains("http://cam/&lt;x&gt;"));
        assert!(page.contains(r#"<dd id="clients">0</dd>"#));
        let json: serde_json::Value = serde_json::from_str(&status_json(&Status::of(&hub))).unwrap();
        assert_eq!(json["clients"], 0);
        assert_eq!(json["source"]["state"], "connecting");
    }

    #[test]
    fn human_units() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(duration(3725), "1h 2m");
    }
}
