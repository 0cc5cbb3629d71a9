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
