//! Helpers the agent's real-Docker tests share.
use berth_agent::docker::DockerRuntime;
use bollard::models::{ContainerCreateBody, HostConfig};

/// A running container of berth's pause image with no network but loopback: (id, pid).
pub async fn pause_container(docker: &DockerRuntime, image: &str) -> (String, i64) {
    let name = format!("berth-test-pause-{}", uuid::Uuid::new_v4().simple());
    let body = ContainerCreateBody {
        image: Some(image.to_string()),
        host_config: Some(HostConfig {
            network_mode: Some("none".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let id = docker.create(&name, body).await.expect("create");
    docker.start(&id).await.expect("start");
    let pid = docker
        .inner()
        .inspect_container(&id, None)
        .await
        .expect("inspect")
        .state
        .and_then(|s| s.pid)
        .expect("pid");
    (id, pid)
}
