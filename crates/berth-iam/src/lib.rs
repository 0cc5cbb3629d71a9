//! The IAM policy language, as AWS defines it: documents parsed and checked once
//! ([`Policy::parse`]), then evaluated per call ([`evaluate`], or [`PolicySet`] for one caller's
//! policies together) without allocating.
//! AWS's managed policies that ECS users attach by ARN are in [`managed`].
pub mod condition;
pub mod context;
pub mod eval;
pub mod managed;
pub mod pattern;
pub mod policy;
pub mod set;

pub use context::Context;
pub use eval::{evaluate, evaluate_resource_policy, Caller, Decision, Named, Request};
pub use policy::{Kind, Policy, PolicyError};
pub use set::PolicySet;
