//! What the store holds besides the ECS shapes themselves: berth's own
//! records, and the keys of values scoped to an account, region or cluster.
//! Below both the index and the tasks it packs, so neither imports the other.
use berth_api::ecs::{Deployment, Service, Tag, Task, TaskDefinition};
use berth_model::Scope;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct Versioned<T> {
    pub mod_revision: u64,
    pub value: T,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskDefinitionRecord {
    pub task_definition: TaskDefinition,
    #[serde(default)]
    pub tags: Vec<Tag>,
}

/// A family's revision counter: revisions are never reused, even after deletion.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FamilyRecord {
    pub last_revision: i32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountSettingRecord {
    pub value: String,
}

/// A task with the task definition it was started from, so the agent can
/// run it even after that revision is deregistered or deleted: what the
/// store holds. The index holds it as an `IndexedTask`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskRecord {
    pub task: Task,
    pub task_definition: Arc<TaskDefinition>,
    /// The fleet host a FARGATE task runs on (ECS shows no instance for those).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet_host: Option<String>,
    /// When its scale-in protection ends (epoch seconds; ECS's Task shape has no place for it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protected_until: Option<f64>,
}

/// (scope, cluster name, id): tasks and container instances live in a cluster.
pub type ClusterScoped = (Scope, String, String);

/// A service with what its controller remembers between passes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceRecord {
    pub service: Service,
    /// The last deployment that completed (the circuit breaker's rollback target).
    #[serde(default)]
    pub last_completed: Option<Deployment>,
    /// The service was at its steady state at the last pass (the event is told once per arrival).
    #[serde(default)]
    pub steady: bool,
    /// Task ids already counted as failed launches, per deployment id.
    #[serde(default)]
    pub counted_failures: BTreeMap<String, BTreeSet<String>>,
}

/// An account's default VPC in a region was made once (see `NetworkKind::Defaults`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetworkDefaults {
    pub default_vpc_made: bool,
}

/// Who holds an address of the public pool: an account's ENI (its `{subnet}/{ip}`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicIpRecord {
    pub account: String,
    pub region: String,
    pub eni: String,
}

/// (scope, id): EC2 networking lives in an account and region.
pub type RegionScoped = (Scope, String);
