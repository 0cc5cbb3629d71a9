//! Wire shapes for the APIs berth speaks. Pure: no IO, no async.
pub mod agent;
pub mod amz_date;
pub mod ec2;
pub mod ecr;
pub mod ecs;
pub mod error;
pub mod logs;
pub mod pagination;
pub mod query;
pub mod secretsmanager;
pub mod sigv4;
pub mod ssm;
pub mod sts;
pub mod validate;

pub use error::{ApiError, ErrorCode};
