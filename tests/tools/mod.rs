//! External test tools (ffmpeg, GStreamer, Chromium, Python modules): a test
//! that needs a missing one is skipped on a laptop and fails under
//! `CI=true`. `scripts/test.sh` installs them all.
#![allow(dead_code)]

use std::process::{Command, Stdio};

fn missing(what: &str) -> bool {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{what} is required under CI=true: run scripts/test.sh, which installs the test tools");
    }
    eprintln!("skipping: {what} is not installed (scripts/test.sh installs it)");
    false
}

/// `true` if `name` runs (`name version_arg` exits 0).
pub fn require_tool(name: &str, version_arg: &str) -> bool {
    let found = Command::new(name)
        .arg(version_arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    found || missing(name)
}

/// `true` if python3 can import `module`.
pub fn require_python_module(module: &str) -> bool {
    if !require_tool("python3", "--version") {
        return false;
    }
    let found = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    found || missing(&format!("python3 module {module}"))
}

/// `true` if headless Chromium can be driven (chromium, chromedriver,
/// selenium), as the browser tests do.
pub fn require_chromium() -> bool {
    require_tool("chromium", "--version")
        && require_tool("chromedriver", "--version")
        && require_python_module("selenium")
}
