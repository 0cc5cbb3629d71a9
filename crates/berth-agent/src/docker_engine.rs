//! The runner's engine on the real Docker Engine: containers through the
//! Engine API (docker.rs), task namespaces held by the pause pool (awsvpc.rs).
use crate::engine::{Observed, RegistryAuth};
use bollard::models::ContainerCreateBody;

/// The runner's engine on the real Docker: containers through the Engine
/// API, awsvpc namespaces held by pause containers from the host's pool.
pub struct DockerEngine {
    pub docker: crate::docker::DockerRuntime,
    pub pause_pool: std::sync::Arc<crate::awsvpc::PausePool>,
    /// Times each call.
    pub metrics: std::sync::Arc<crate::metrics::AgentMetrics>,
}

#[async_trait::async_trait]
impl crate::engine::Engine for DockerEngine {
    async fn image_present(&self, image: &str) -> bool {
        let m = &self.metrics;
        m.docker_lookup("image_inspect", self.docker.image_present(image))
            .await
    }
    async fn pull(&self, image: &str, auth: Option<&RegistryAuth>) -> Result<(), String> {
        let m = &self.metrics;
        m.docker("image_pull", self.docker.pull(image, auth)).await
    }
    async fn repo_digest(&self, image: &str) -> Option<String> {
        let m = &self.metrics;
        m.docker_lookup("image_inspect", self.docker.repo_digest(image))
            .await
    }
    async fn create(&self, name: &str, body: ContainerCreateBody) -> Result<String, String> {
        let m = &self.metrics;
        m.docker("container_create", self.docker.create(name, body))
            .await
    }
    async fn start(&self, id: &str) -> Result<(), String> {
        let m = &self.metrics;
        m.docker("container_start", self.docker.start(id)).await
    }
    async fn stop(&self, id: &str, timeout_secs: i32) -> Result<(), String> {
        let m = &self.metrics;
        m.docker("container_stop", self.docker.stop(id, timeout_secs))
            .await
    }
    async fn inspect(&self, id: &str) -> Result<Observed, String> {
        let m = &self.metrics;
        m.docker("container_inspect", self.docker.inspect(id))
            .await
            .map_err(|e| crate::docker::message(&e))
    }
    async fn log_path(&self, id: &str) -> Option<std::path::PathBuf> {
        let m = &self.metrics;
        m.docker_lookup("container_inspect", self.docker.log_path(id))
            .await
    }
    async fn set_up_network(
        &self,
        ctx: &crate::container_config::TaskContext<'_>,
        existing: Option<&str>,
        network: &berth_api::agent::TaskNetwork,
    ) -> Result<String, String> {
        crate::awsvpc::set_up(&self.docker, &self.pause_pool, ctx, existing, network).await
    }
    async fn tear_down_network(
        &self,
        task_id: &str,
        holder: Option<&str>,
        network: &berth_api::agent::TaskNetwork,
    ) {
        crate::awsvpc::tear_down(&self.docker, task_id, holder, network).await
    }
}
