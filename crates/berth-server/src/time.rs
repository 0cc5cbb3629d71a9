//! Wall-clock helpers: epoch seconds, and SigV4's basic ISO 8601 form.
use std::time::{SystemTime, UNIX_EPOCH};

pub fn now_secs_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

pub fn now_secs() -> i64 {
    now_secs_f64() as i64
}

pub use berth_api::amz_date::{format_amz_date, parse_amz_date};

/// Where the control plane reads the time: the system's, or a test's hand.
pub trait Clock: Send + Sync {
    /// For durations (presence, timeouts): never goes backwards.
    fn instant(&self) -> std::time::Instant;
    /// Epoch seconds, as ECS timestamps are.
    fn epoch_secs(&self) -> f64;
}

/// The machine's clocks.
pub struct SystemClock;

impl Clock for SystemClock {
    fn instant(&self) -> std::time::Instant {
        std::time::Instant::now()
    }
    fn epoch_secs(&self) -> f64 {
        now_secs_f64()
    }
}

/// A clock that moves only when told to, so tests of timeouts need no sleeping.
pub struct ManualClock {
    start: std::time::Instant,
    epoch: f64,
    offset: std::sync::Mutex<std::time::Duration>,
}

impl ManualClock {
    pub fn new(epoch: f64) -> ManualClock {
        ManualClock {
            start: std::time::Instant::now(),
            epoch,
            offset: Default::default(),
        }
    }

    pub fn advance(&self, by: std::time::Duration) {
        *self.offset.lock().unwrap_or_else(|p| p.into_inner()) += by;
    }

    fn offset(&self) -> std::time::Duration {
        *self.offset.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Clock for ManualClock {
    fn instant(&self) -> std::time::Instant {
        self.start + self.offset()
    }
    fn epoch_secs(&self) -> f64 {
        self.epoch + self.offset().as_secs_f64()
    }
}
