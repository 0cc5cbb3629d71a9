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

/// A registry login for one pull (Docker's X-Registry-Auth).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryAuth {
    pub username: String,
    pub password: String,
    /// The registry's host[:port].
    pub server: String,
}

/// What a task's runner asks of the container engine.
#[async_trait::async_trait]
pub trait Engine: Send + Sync {
    async fn image_present(&self, image: &str) -> bool;
    /// Pulls the image; the error is the engine's own message.
    async fn pull(&self, image: &str, auth: Option<&RegistryAuth>) -> Result<(), String>;
    /// The digest of the manifest a pulled image came from, as ECS reports `imageDigest`.
    async fn repo_digest(&self, _image: &str) -> Option<String> {
        None
    }
    /// Creates the container, or finds the one made earlier under that name.
    async fn create(&self, name: &str, body: ContainerCreateBody) -> Result<String, String>;
    async fn start(&self, id: &str) -> Result<(), String>;
    /// SIGTERM, then SIGKILL after `timeout_secs`.
    async fn stop(&self, id: &str, timeout_secs: i32) -> Result<(), String>;
    async fn inspect(&self, id: &str) -> Result<Observed, String>;
    /// Where the engine keeps a container's json-file log, when it keeps one.
    async fn log_path(&self, _id: &str) -> Option<std::path::PathBuf> {
        None
    }
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

/// An engine in memory for the runner's tests: containers are entries in a
/// map, and the test says which pull fails and which container exits.
#[cfg(test)]
pub mod fake {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Mutex;

    #[derive(Default)]
    pub struct FakeEngine {
        /// Images whose pull fails, with the engine's message.
        pub failing_pulls: Mutex<HashMap<String, String>>,
        /// Container name -> what it is now.
        pub containers: Mutex<HashMap<String, Observed>>,
        /// Every call, in order: "create NAME", "start NAME", "stop NAME", ...
        pub calls: Mutex<Vec<String>>,
        /// Container name -> the image it was created from.
        pub images: Mutex<HashMap<String, String>>,
        /// When set, pulls wait for it to be notified (one permit each).
        pub pull_gate: Mutex<Option<std::sync::Arc<tokio::sync::Semaphore>>>,
    }

    impl FakeEngine {
        fn log(&self, call: String) {
            self.calls.lock().unwrap().push(call);
        }

        pub fn calls(&self) -> Vec<String> {
            self.calls.lock().unwrap().clone()
        }

        /// Moves a container on, as the engine would report it next.
        pub fn set(&self, name: &str, change: impl FnOnce(&mut Observed)) {
            let mut all = self.containers.lock().unwrap();
            change(all.get_mut(name).expect("the container exists"));
        }
    }

    #[async_trait::async_trait]
    impl Engine for FakeEngine {
        async fn image_present(&self, _image: &str) -> bool {
            false
        }
        async fn pull(&self, image: &str, auth: Option<&RegistryAuth>) -> Result<(), String> {
            match auth {
                Some(a) => self.log(format!("pull {image} as {}@{}", a.username, a.server)),
                None => self.log(format!("pull {image}")),
            }
            let gate = self.pull_gate.lock().unwrap().clone();
            if let Some(gate) = gate {
                let _ = gate.acquire().await;
            }
            match self.failing_pulls.lock().unwrap().get(image) {
                Some(message) => Err(message.clone()),
                None => Ok(()),
            }
        }
        async fn create(&self, name: &str, body: ContainerCreateBody) -> Result<String, String> {
            self.log(format!("create {name}"));
            self.images
                .lock()
                .unwrap()
                .insert(name.to_string(), body.image.unwrap_or_default());
            let mut all = self.containers.lock().unwrap();
            all.entry(name.to_string())
                .or_insert_with(|| Observed::created(name));
            Ok(name.to_string())
        }
        async fn start(&self, id: &str) -> Result<(), String> {
            self.log(format!("start {id}"));
            self.set(id, |o| o.phase = Phase::Running);
            Ok(())
        }
        async fn stop(&self, id: &str, timeout_secs: i32) -> Result<(), String> {
            self.log(format!("stop {id} {timeout_secs}"));
            self.set(id, |o| {
                o.phase = Phase::Exited;
                o.exit_code = Some(137);
            });
            Ok(())
        }
        async fn inspect(&self, id: &str) -> Result<Observed, String> {
            let all = self.containers.lock().unwrap();
            all.get(id)
                .cloned()
                .ok_or_else(|| format!("No such container: {id}"))
        }
        async fn set_up_network(
            &self,
            ctx: &TaskContext<'_>,
            _existing: Option<&str>,
            _network: &TaskNetwork,
        ) -> Result<String, String> {
            self.log(format!("network {}", ctx.task_id));
            Ok(format!("pause-{}", ctx.task_id))
        }
        async fn tear_down_network(&self, task_id: &str, _holder: Option<&str>, _n: &TaskNetwork) {
            self.log(format!("unplumb {task_id}"));
        }
    }
}
