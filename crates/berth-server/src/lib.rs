//! berth's control plane: the HTTP front door, SigV4, the ECS and STS
//! handlers, and the in-memory view of the store they read from.
pub mod agent;
pub mod auth;
pub mod authz;
pub mod config;
pub mod connection_limits;
pub mod console;
pub mod context;
pub mod controller;
pub mod coverage;
pub mod ec2;
pub mod ecr;
pub mod ecs;
pub mod fleet;
pub mod forwarding;
pub mod http;
pub mod iam;
pub mod ids;
pub mod json_service;
pub mod launch;
pub mod logs;
pub mod lookup;
pub mod metrics;
pub mod peer_http;
pub mod polling;
pub mod read_leases;
pub mod registry;
pub mod sealing;
pub mod secretsmanager;
pub mod ssm;
pub mod state;
pub mod sts;
pub mod task_credentials;
pub mod task_enis;
#[cfg(test)]
pub(crate) mod testing;
pub mod throttling;
pub mod time;

pub use config::{AccountConfig, Config, KeyConfig};
pub use http::{router, AppState};
