//! The container engine as the task runner needs it: the subset of Docker
//! the agent uses to run a task, behind a trait, so the runner's lifecycle
//! can be tested against an engine that fails a pull, exits a container or
//! never becomes healthy on cue. `DockerEngine` is the only real one.
use crate::container_config::TaskContext;
use berth_api::agent::TaskNetwork;
use berth_api::ecs::NetworkBinding;
use bollard::models::ContainerCreateBody;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    Created,
    Running,
    Exited,
}

/// One container as the lifecycle sees it.
#[derive(Debug, Clone)]
pub struct Observed {
    pub id: String,
    pub phase: Phase,
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
    pub error: Option<String>,
    /// "HEALTHY", "UNHEALTHY" or "UNKNOWN" when the container has a health check.
    pub health: Option<String>,
    pub bindings: Vec<NetworkBinding>,
    pub image_digest: Option<String>,
}

impl Observed {
    /// A container Docker has just created and not started.
    pub fn created(id: &str) -> Observed {
        Observed {
            id: id.to_string(),
            phase: Phase::Created,
            exit_code: None,
            oom_killed: false,
            error: None,
            health: None,
            bindings: vec![],
            image_digest: None,
        }
    }
}

/// What a task's runner asks of the container engine.
#[async_trait::async_trait]
pub trait Engine: Send + Sync {
    async fn image_present(&self, image: &str) -> bool;
    /// Pulls the image; the error is the engine's own message.
    async fn pull(&self, image: &str) -> Result<(), String>;
    /// Creates the container, or finds the one made earlier under that name.
    async fn create(&self, name: &str, body: ContainerCreateBody) -> Result<String, String>;
    async fn start(&self, id: &str) -> Result<(), String>;
    /// SIGTERM, then SIGKILL after `timeout_secs`.
    async fn stop(&self, id: &str, timeout_secs: i32) -> Result<(), String>;
    async fn inspect(&self, id: &str) -> Result<Observed, String>;
    /// The task's network namespace with its ENI plumbed in; answers the id
    /// of the container that holds the namespace (`existing` when adopted).
    async fn set_up_network(
        &self,
        ctx: &TaskContext<'_>,
        existing: Option<&str>,
        network: &TaskNetwork,
    ) -> Result<String, String>;
    async fn tear_down_network(&self, task_id: &str, holder: Option<&str>, network: &TaskNetwork);
}
