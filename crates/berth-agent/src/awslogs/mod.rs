//! The `awslogs` log driver, handled by berth: containers log to Docker's
//! json-file, and the agent ships each line to the server's Logs API as the
//! task's execution role (shipper.rs), resuming from the position last
//! acknowledged (positions.rs). Docker is never given `awslogs`.
pub mod batch;
pub mod json_file;
pub mod multiline;
pub mod options;
pub mod positions;
pub mod shipper;
