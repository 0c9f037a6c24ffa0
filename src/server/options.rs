//! The viewer-side settings that shape every answer: frame-rate caps,
//! idle repeat and CORS. Built once from the [`Config`]; read per request.

use std::time::Duration;

use crate::config::{Config, CorsOrigins};

/// Settings of the viewer routes.
#[derive(Debug, Clone, Default)]
pub struct ViewerOptions {
    /// Resend the last frame on `/stream` after this long without a new one.
    pub idle_repeat: Option<Duration>,
    /// Frame-rate cap for everyone (`--max-fps`).
    pub max_fps: Option<f64>,
    /// Origins allowed to read answers cross-origin (`--cors-origin`).
    pub cors: Option<CorsOrigins>,
    /// On-demand ingest: `/snapshot` waits this long for a fresh frame.
    pub on_demand_snapshot: Option<Duration>,
}

impl ViewerOptions {
    /// The options of `config`.
    pub fn from_config(config: &Config) -> Self {
        Self {
            idle_repeat: config.idle_repeat,
            max_fps: config.max_fps,
            cors: config.cors_origin.clone(),
            on_demand_snapshot: config.on_demand.then_some(config.snapshot_timeout),
        }
    }

    /// Minimum time between two frames for a viewer that asked for `fps`
    /// (`?fps=N`): the lower of its rate and `--max-fps`.
    pub fn min_interval(&self, fps: Option<f64>) -> Option<Duration> {
        let fps = match (fps, self.max_fps) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }?;
        Some(Duration::from_secs_f64(1.0 / fps))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lower_rate_wins() {
        let mut o = ViewerOptions::default();
        assert_eq!(o.min_interval(None), None);
        assert_eq!(o.min_interval(Some(4.0)), Some(Duration::from_millis(250)));
        o.max_fps = Some(2.0);
        assert_eq!(o.min_interval(None), Some(Duration::from_millis(500)));
        assert_eq!(o.min_interval(Some(4.0)), Some(Duration::from_millis(500)));
        assert_eq!(o.min_interval(Some(1.0)), Some(Duration::from_secs(1)));
    }
}
