//! CloudWatch Logs (issue 19): log groups, streams and events.
pub mod event_store;
