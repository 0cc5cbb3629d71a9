//! The Docker Engine API through bollard: the few calls the agent makes,
//! with answers reduced to what the task lifecycle needs.
use crate::container_config::{LABEL_CONTAINER_INSTANCE, LABEL_CONTAINER_NAME, LABEL_TASK_ARN};
use berth_api::ecs::NetworkBinding;
use bollard::errors::Error as BollardError;
use bollard::models::{ContainerCreateBody, ContainerStateStatusEnum, HealthStatusEnum};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, EventsOptionsBuilder,
    InspectContainerOptions, ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
    StopContainerOptionsBuilder,
};
use bollard::Docker;
use futures_util::StreamExt;
use std::collections::HashMap;

/// Long enough for a stopTimeout and a slow pull; streams reconnect past it.
const REQUEST_TIMEOUT_SECS: u64 = 3600;

pub use crate::engine::{Observed, Phase};

/// A container labelled for some task of this instance.
#[derive(Debug, Clone)]
pub struct Owned {
    pub id: String,
    pub task_arn: String,
    pub container_name: String,
    pub running: bool,
}

/// Where the Docker Engine answers unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

#[derive(Clone)]
pub struct DockerRuntime {
    docker: Docker,
}

/// Follows a create-image stream (pull or import) to its end; the error is Docker's own message.
async fn drain(
    stream: impl futures_util::Stream<Item = Result<bollard::models::CreateImageInfo, BollardError>>,
) -> Result<(), String> {
    let mut stream = std::pin::pin!(stream);
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                if let Some(e) = info.error_detail.and_then(|d| d.message) {
                    return Err(e);
                }
            }
            Err(e) => return Err(message(&e)),
        }
    }
    Ok(())
}

pub fn message(e: &BollardError) -> String {
    match e {
        BollardError::DockerResponseServerError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

fn status_of(e: &BollardError) -> Option<u16> {
    match e {
        BollardError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// What the task metadata endpoint tells of a container, read from Docker.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerFacts {
    pub id: String,
    pub image_id: String,
    pub created: Option<String>,
    pub started_at: Option<String>,
    pub labels: std::collections::BTreeMap<String, String>,
    /// (Docker network name, IPv4 address) of each network it is on.
    pub addresses: Vec<(String, String)>,
}

/// What the host offers, read from Docker.
pub struct HostInfo {
    pub cpus: i64,
    pub memory_mib: i64,
    pub docker_version: String,
    pub architecture: String,
}

impl DockerRuntime {
    pub async fn connect() -> Result<DockerRuntime, BollardError> {
        DockerRuntime::connect_to(std::path::Path::new(DEFAULT_SOCKET)).await
    }

    /// The Docker Engine answering at `socket`.
    pub async fn connect_to(socket: &std::path::Path) -> Result<DockerRuntime, BollardError> {
        let docker = Docker::connect_with_socket(
            &socket.to_string_lossy(),
            REQUEST_TIMEOUT_SECS,
            bollard::API_DEFAULT_VERSION,
        )?
        .negotiate_version()
        .await?;
        Ok(DockerRuntime { docker })
    }

    pub async fn host_info(&self) -> Result<HostInfo, BollardError> {
        let info = self.docker.info().await?;
        Ok(HostInfo {
            cpus: info.ncpu.unwrap_or(1),
            memory_mib: info.mem_total.unwrap_or(0) / (1024 * 1024),
            docker_version: info.server_version.unwrap_or_default(),
            architecture: info.architecture.unwrap_or_else(|| "x86_64".into()),
        })
    }

    pub async fn image_present(&self, image: &str) -> bool {
        self.docker.inspect_image(image).await.is_ok()
    }

    /// The registry's digest of the manifest `image` was pulled by (`RepoDigests`).
    pub async fn repo_digest(&self, image: &str) -> Option<String> {
        let (repository, _) = split_tag(image);
        let repository = repository.split('@').next().unwrap_or(repository);
        let found = self.docker.inspect_image(image).await.ok()?;
        found.repo_digests?.into_iter().find_map(|d| {
            let (repo, digest) = d.split_once('@')?;
            (repo == repository).then(|| digest.to_string())
        })
    }

    /// Pulls `image`; the error is Docker's own message.
    pub async fn pull(
        &self,
        image: &str,
        auth: Option<&crate::engine::RegistryAuth>,
    ) -> Result<(), String> {
        let (from, tag) = split_tag(image);
        let opts = CreateImageOptionsBuilder::default()
            .from_image(from)
            .tag(tag)
            .build();
        let credentials = auth.map(|a| bollard::auth::DockerCredentials {
            username: Some(a.username.clone()),
            password: Some(a.password.clone()),
            serveraddress: Some(a.server.clone()),
            ..Default::default()
        });
        drain(self.docker.create_image(Some(opts), None, credentials)).await
    }

    /// Imports berth's pause image (`pause::image()`) unless Docker has it:
    /// from the binary embedded in berth, never from a registry.
    pub async fn ensure_pause_image(&self) -> Result<String, String> {
        let image = crate::pause::image();
        if self.image_present(&image).await {
            return Ok(image);
        }
        let opts = CreateImageOptionsBuilder::default()
            .from_src("-")
            .repo(crate::pause::REPOSITORY)
            .tag(&crate::pause::tag())
            .changes(vec![r#"ENTRYPOINT ["/pause"]"#.to_string()])
            .build();
        let body = bollard::body_full(crate::pause::rootfs_tar().into());
        drain(self.docker.create_image(Some(opts), Some(body), None)).await?;
        Ok(image)
    }

    /// Every container (running or not) carrying all of `labels` (`name` or `name=value`).
    async fn labelled_with(
        &self,
        labels: Vec<String>,
    ) -> Result<Vec<bollard::models::ContainerSummary>, BollardError> {
        let filters = HashMap::from([("label".to_string(), labels)]);
        let opts = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        self.docker.list_containers(Some(opts)).await
    }

    /// The ids of every task that has a container on this host, whichever agent made it.
    pub async fn task_ids_on_host(
        &self,
    ) -> Result<std::collections::HashSet<String>, BollardError> {
        let list = self.labelled_with(vec![LABEL_TASK_ARN.to_string()]).await?;
        Ok(list
            .into_iter()
            .filter_map(|c| {
                let arn = c.labels?.get(LABEL_TASK_ARN)?.clone();
                Some(arn.rsplit('/').next()?.to_string())
            })
            .collect())
    }

    /// The names of the volumes whose name holds `part`.
    pub async fn volume_names(&self, part: &str) -> Result<Vec<String>, BollardError> {
        let filters = HashMap::from([("name".to_string(), vec![part.to_string()])]);
        let opts = bollard::query_parameters::ListVolumesOptionsBuilder::default()
            .filters(&filters)
            .build();
        let list = self.docker.list_volumes(Some(opts)).await?;
        Ok(list
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.name)
            .collect())
    }

    /// Removes a volume; `false` when it is in use or gone.
    pub async fn remove_volume(&self, name: &str) -> Result<bool, String> {
        let opts = bollard::query_parameters::RemoveVolumeOptionsBuilder::default().build();
        match self.docker.remove_volume(name, Some(opts)).await {
            Ok(()) => Ok(true),
            Err(e) if matches!(status_of(&e), Some(404 | 409)) => Ok(false),
            Err(e) => Err(message(&e)),
        }
    }

    /// Every container labelled as this instance's (running or not).
    pub async fn owned(&self, instance_arn: &str) -> Result<Vec<Owned>, BollardError> {
        let list = self
            .labelled_with(vec![format!("{LABEL_CONTAINER_INSTANCE}={instance_arn}")])
            .await?;
        Ok(list
            .into_iter()
            .filter_map(|c| {
                let labels = c.labels.unwrap_or_default();
                Some(Owned {
                    id: c.id?,
                    task_arn: labels.get(LABEL_TASK_ARN)?.clone(),
                    container_name: labels.get(LABEL_CONTAINER_NAME)?.clone(),
                    running: matches!(
                        c.state,
                        Some(bollard::models::ContainerSummaryStateEnum::RUNNING)
                    ),
                })
            })
            .collect())
    }

    /// Creates the container, or finds the one a previous run already made under that name.
    pub async fn create(&self, name: &str, body: ContainerCreateBody) -> Result<String, String> {
        let opts = CreateContainerOptionsBuilder::default().name(name).build();
        match self.docker.create_container(Some(opts), body).await {
            Ok(r) => Ok(r.id),
            Err(e) if status_of(&e) == Some(409) => self
                .inspect(name)
                .await
                .map(|o| o.id)
                .map_err(|e| message(&e)),
            Err(e) => Err(message(&e)),
        }
    }

    pub async fn start(&self, id: &str) -> Result<(), String> {
        match self.docker.start_container(id, None).await {
            // 304: already started.
            Err(e) if status_of(&e) != Some(304) => Err(message(&e)),
            _ => Ok(()),
        }
    }

    /// SIGTERM, then SIGKILL after `timeout_secs` (Docker's own stop).
    pub async fn stop(&self, id: &str, timeout_secs: i32) -> Result<(), String> {
        let opts = StopContainerOptionsBuilder::default()
            .t(timeout_secs)
            .build();
        match self.docker.stop_container(id, Some(opts)).await {
            Err(e) if !matches!(status_of(&e), Some(304) | Some(404)) => Err(message(&e)),
            _ => Ok(()),
        }
    }

    pub async fn remove(&self, id: &str) -> Result<(), String> {
        let opts = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(false)
            .build();
        match self.docker.remove_container(id, Some(opts)).await {
            Err(e) if status_of(&e) != Some(404) => Err(message(&e)),
            _ => Ok(()),
        }
    }

    /// Gives a container a new name.
    pub async fn rename(&self, id: &str, name: &str) -> Result<(), String> {
        let opts = bollard::query_parameters::RenameContainerOptionsBuilder::default()
            .name(name)
            .build();
        self.docker
            .rename_container(id, opts)
            .await
            .map_err(|e| message(&e))
    }

    /// (id, name) of this owner's containers that carry `label` (running or not).
    pub async fn labelled(
        &self,
        owner: &str,
        label: &str,
    ) -> Result<Vec<(String, String)>, String> {
        let list = self
            .labelled_with(vec![
                format!("{LABEL_CONTAINER_INSTANCE}={owner}"),
                label.to_string(),
            ])
            .await
            .map_err(|e| message(&e))?;
        Ok(list
            .into_iter()
            .filter_map(|c| {
                let name = c.names?.first()?.trim_start_matches('/').to_string();
                Some((c.id?, name))
            })
            .collect())
    }

    /// The host pid of a running container's first process.
    pub async fn pid(&self, id: &str) -> Result<i64, String> {
        let c = self
            .docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
            .map_err(|e| message(&e))?;
        c.state
            .and_then(|s| s.pid)
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("container {id} is not running"))
    }

    pub async fn facts(&self, id: &str) -> Result<ContainerFacts, String> {
        let c = self
            .docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
            .map_err(|e| message(&e))?;
        let addresses = c
            .network_settings
            .and_then(|n| n.networks)
            .into_iter()
            .flatten()
            .filter_map(|(name, n)| Some((name, n.ip_address.filter(|ip| !ip.is_empty())?)))
            .collect();
        Ok(ContainerFacts {
            id: c.id.unwrap_or_default(),
            image_id: c.image.unwrap_or_default(),
            created: c.created.map(|t| t.to_string()),
            started_at: c.state.and_then(|s| s.started_at),
            labels: c
                .config
                .and_then(|c| c.labels)
                .into_iter()
                .flatten()
                .collect(),
            addresses,
        })
    }

    /// One sample of Docker's stats document for a container.
    pub async fn stats_once(&self, id: &str) -> Result<serde_json::Value, String> {
        let options = bollard::query_parameters::StatsOptionsBuilder::new()
            .stream(false)
            .build();
        let mut stream = std::pin::pin!(self.docker.stats(id, Some(options)));
        match stream.next().await {
            Some(Ok(s)) => serde_json::to_value(s).map_err(|e| e.to_string()),
            Some(Err(e)) => Err(message(&e)),
            None => Err(format!("no stats for {id}")),
        }
    }

    /// The json-file log Docker writes for the container.
    pub async fn log_path(&self, id: &str) -> Option<std::path::PathBuf> {
        let c = self
            .docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
            .ok()?;
        c.log_path.filter(|p| !p.is_empty()).map(Into::into)
    }

    pub async fn inspect(&self, id: &str) -> Result<Observed, BollardError> {
        let c = self
            .docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await?;
        let state = c.state.unwrap_or_default();
        let phase = match state.status {
            Some(ContainerStateStatusEnum::RUNNING)
            | Some(ContainerStateStatusEnum::PAUSED)
            | Some(ContainerStateStatusEnum::RESTARTING) => Phase::Running,
            Some(ContainerStateStatusEnum::EXITED) | Some(ContainerStateStatusEnum::DEAD) => {
                Phase::Exited
            }
            _ => Phase::Created,
        };
        let health = state.health.and_then(|h| h.status).and_then(|s| match s {
            HealthStatusEnum::HEALTHY => Some("HEALTHY".to_string()),
            HealthStatusEnum::UNHEALTHY => Some("UNHEALTHY".to_string()),
            HealthStatusEnum::STARTING => Some("UNKNOWN".to_string()),
            _ => None,
        });
        let mut bindings = vec![];
        let network_mode = c
            .host_config
            .as_ref()
            .and_then(|h| h.network_mode.clone())
            .unwrap_or_default();
        if network_mode == "host" {
            for p in c
                .config
                .as_ref()
                .and_then(|cfg| cfg.exposed_ports.clone())
                .unwrap_or_default()
            {
                if let Some(b) = binding(&p, "0.0.0.0", None) {
                    bindings.push(b);
                }
            }
        }
        for (port, hosts) in c.network_settings.and_then(|n| n.ports).unwrap_or_default() {
            for h in hosts.unwrap_or_default() {
                let ip = h.host_ip.unwrap_or_else(|| "0.0.0.0".into());
                if let Some(b) = binding(&port, &ip, h.host_port.as_deref()) {
                    bindings.push(b);
                }
            }
        }
        bindings
            .sort_by(|a, b| (&a.bind_ip, a.container_port).cmp(&(&b.bind_ip, b.container_port)));
        Ok(Observed {
            id: c.id.unwrap_or_default(),
            phase,
            exit_code: state.exit_code,
            oom_killed: state.oom_killed.unwrap_or(false),
            error: state.error.filter(|e| !e.is_empty()),
            health,
            bindings,
            image_digest: c.image,
        })
    }

    /// Container events of this instance's containers: (task ARN) per event.
    pub fn events(
        &self,
        instance_arn: &str,
    ) -> impl futures_util::Stream<Item = Result<String, BollardError>> {
        let filters = HashMap::from([
            ("type".to_string(), vec!["container".to_string()]),
            (
                "label".to_string(),
                vec![format!("{LABEL_CONTAINER_INSTANCE}={instance_arn}")],
            ),
        ]);
        let opts = EventsOptionsBuilder::default().filters(&filters).build();
        self.docker.events(Some(opts)).map(|r| {
            r.map(|e| {
                e.actor
                    .and_then(|a| a.attributes)
                    .and_then(|mut attrs| attrs.remove(LABEL_TASK_ARN))
                    .unwrap_or_default()
            })
        })
    }

    pub fn inner(&self) -> &Docker {
        &self.docker
    }
}

/// "80/tcp" plus a host side as ECS's NetworkBinding.
fn binding(port: &str, ip: &str, host_port: Option<&str>) -> Option<NetworkBinding> {
    let (number, protocol) = port.split_once('/').unwrap_or((port, "tcp"));
    let container_port: i32 = number.parse().ok()?;
    let host_port: i32 = match host_port {
        Some(h) => h.parse().ok()?,
        None => container_port,
    };
    Some(NetworkBinding {
        bind_ip: Some(ip.to_string()),
        container_port: Some(container_port),
        host_port: Some(host_port),
        protocol: Some(protocol.to_string()),
        ..Default::default()
    })
}

/// "registry:5000/repo:tag" → ("registry:5000/repo", "tag"); digests stay whole.
pub fn split_tag(image: &str) -> (&str, &str) {
    if image.contains('@') {
        return (image, "");
    }
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[last_slash..].rfind(':') {
        Some(i) => (&image[..last_slash + i], &image[last_slash + i + 1..]),
        None => (image, "latest"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references_split_at_the_tag_not_the_registry_port() {
        assert_eq!(split_tag("busybox"), ("busybox", "latest"));
        assert_eq!(split_tag("busybox:1.36"), ("busybox", "1.36"));
        assert_eq!(
            split_tag("127.0.0.1:5000/a/b:v2"),
            ("127.0.0.1:5000/a/b", "v2")
        );
        assert_eq!(
            split_tag("127.0.0.1:5000/a/b"),
            ("127.0.0.1:5000/a/b", "latest")
        );
        assert_eq!(split_tag("a@sha256:abc"), ("a@sha256:abc", ""));
    }

    #[test]
    fn bindings_read_dockers_port_map() {
        let b = binding("80/tcp", "0.0.0.0", Some("32768")).unwrap();
        assert_eq!((b.container_port, b.host_port), (Some(80), Some(32768)));
        assert_eq!(b.protocol.as_deref(), Some("tcp"));
        assert!(binding("x/tcp", "0.0.0.0", None).is_none());
    }
}
