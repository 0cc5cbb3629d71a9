//! The agent channel: berth's own JSON 1.1 operations (target prefix
//! `BerthAgentV1`), signed with SigV4 like every other call. The agent polls
//! for the full set of tasks desired on its instance and reports what it
//! observed, in ECS's own Task shape.
use crate::ecs::{Task, TaskDefinition};
use serde::{Deserialize, Serialize};

pub const TARGET_PREFIX: &str = "BerthAgentV1";
pub const POLL: &str = "Poll";
pub const REPORT: &str = "Report";
/// A session of a task's role (task or execution), for the host running the task.
pub const TASK_CREDENTIALS: &str = "TaskCredentials";

/// Which of a task's roles a credentials request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TaskRole {
    /// `taskRoleArn`: what the task's containers act as.
    Task,
    /// `executionRoleArn`: what the agent acts as on the task's behalf.
    Execution,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskCredentialsRequest {
    pub task_arn: String,
    pub role: TaskRole,
    /// The asking instance (EC2 mode), or
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_instance_arn: Option<String>,
    /// the asking fleet host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_id: Option<String>,
}

/// As the ECS agent's credentials endpoint serves them (expiration in epoch seconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskCredentialsResponse {
    pub role_arn: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    pub expiration: i64,
}

/// The longest the server holds a poll open when nothing changes.
pub const MAX_POLL_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

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
    /// The security groups of this instance's awsvpc tasks, per VPC, resolved to addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub firewalls: Vec<VpcFirewall>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DesiredTask {
    /// As the control plane records it (desiredStatus, and the last reported state).
    pub task: Task,
    pub task_definition: TaskDefinition,
    /// The task's own interface (awsvpc), with what plumbing it needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<TaskNetwork>,
}

/// Where an awsvpc task's ENI goes: its VPC and subnet, address and MAC.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskNetwork {
    pub eni_id: String,
    pub vpc_id: String,
    pub subnet_id: String,
    /// The subnet's CIDR block, e.g. 172.31.0.0/20.
    pub subnet_cidr: String,
    pub private_ip: String,
    pub mac: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_ip: Option<String>,
}

/// Every rule for the ENIs of one VPC on an instance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VpcFirewall {
    pub vpc_id: String,
    pub enis: Vec<EniRules>,
}

/// What one ENI may receive and send: its groups' rules, merged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EniRules {
    pub eni_id: String,
    pub ip: String,
    pub ingress: Vec<Allow>,
    pub egress: Vec<Allow>,
}

/// One allowed flow: protocol ("-1" all, "tcp", "udp", "icmp" or a number),
/// port range (tcp/udp only), and peers as IPv4 CIDRs (a source group's
/// members already resolved to their addresses).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Allow {
    pub protocol: String,
    pub from_port: i32,
    pub to_port: i32,
    pub peers: Vec<String>,
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

/// Fleet hosts (`berth agent --fleet`) belong to the platform: they run
/// FARGATE tasks of any account, and use these operations, signed with the
/// fleet's own keys.
pub const FLEET_REGISTER: &str = "FleetRegister";
pub const FLEET_POLL: &str = "FleetPoll";
pub const FLEET_REPORT: &str = "FleetReport";

/// A fleet host announcing itself and what it offers (again after a restart).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FleetRegisterRequest {
    /// Chosen by the host once and kept in its data dir.
    pub host_id: String,
    /// CPU units (1024 per core) and MiB of memory for tasks.
    pub cpu: i64,
    pub memory: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FleetRegisterResponse {
    pub host_id: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FleetPollRequest {
    pub host_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_seconds: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FleetReportRequest {
    pub host_id: String,
    pub tasks: Vec<Task>,
}
