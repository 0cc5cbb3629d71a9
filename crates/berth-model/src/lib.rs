//! ECS domain rules over the ECS wire shapes. Pure: no IO, no async.
//!
//! The ECS shapes generated in berth-api are the domain vocabulary; this
//! crate owns what ECS says about them: names, ARNs, defaults, validation.
pub mod account_setting;
pub mod arn;
pub mod attributes;
pub mod awsvpc;
pub mod cluster;
pub mod container_instance;
pub mod ecr;
pub mod ecr_lifecycle;
pub mod fargate;
pub mod iam;
pub mod logs_filter;
pub mod names;
pub mod resources;
pub mod scope;
pub mod secrets;
pub mod service;
pub mod tags;
pub mod task;
pub mod task_definition;
pub mod task_protection;
pub mod task_status;
pub mod unhonoured;
pub mod vpc;

pub use scope::Scope;
