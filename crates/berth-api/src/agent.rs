//! The agent channel: berth's own JSON 1.1 operations (target prefix
//! `BerthAgentV1`), signed with SigV4 like every other call. The agent polls
//! for the full set of tasks desired on its instance and reports what it
//! observed, in ECS's own Task shape.
use crate::ecs::{Task, TaskDefinition};
use serde::{Deserialize, Serialize};

pub const TARGET_PREFIX: &str = "BerthAgentV1";
pub const POLL: &str = "Poll";
pub const REPORT: &str = "Report";

/// Waits until the desired set differs from `known`, up to `waitSeconds`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PollRequest {
    pub cluster: String,
    pub container_instance_arn: String,
    /// The fingerprint of the set the agent last received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_seconds: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PollResponse {
    pub fingerprint: String,
    /// The container instance's status; INACTIVE means deregistered.
    pub status: String,
    /// Every task on the instance that the control plane has not seen STOPPED.
    pub tasks: Vec<DesiredTask>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DesiredTask {
    /// As the control plane records it (desiredStatus, and the last reported state).
    pub task: Task,
    pub task_definition: TaskDefinition,
}

/// The actual state of some tasks, as the agent observed it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportRequest {
    pub cluster: String,
    pub container_instance_arn: String,
    pub tasks: Vec<Task>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportResponse {
    /// How many of the reported tasks changed the record.
    pub updated: usize,
}
