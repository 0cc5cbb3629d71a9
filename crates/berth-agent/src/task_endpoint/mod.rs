//! The task endpoints on this host, as the ECS agent serves them: each
//! task's credentials (`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`) and task
//! metadata v3/v4 (`ECS_CONTAINER_METADATA_URI[_V4]`) at 169.254.170.2. One
//! server per agent; each task's ids are secret to its containers, and a
//! request from a bridge container must also come from that task's address.
pub mod metadata;
pub mod serve;
pub mod siblings;

use berth_api::agent::{TaskCredentialsResponse, TaskNetwork, TaskRole};
use berth_api::ecs::{Task, TaskDefinition};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};

/// Where the SDKs look for the task's credentials and metadata.
pub const ADDRESS: Ipv4Addr = Ipv4Addr::new(169, 254, 170, 2);

/// Asks the control plane for a session of one of a task's roles.
#[async_trait::async_trait]
pub trait CredentialsSource: Send + Sync {
    async fn fetch(
        &self,
        task_arn: &str,
        role: TaskRole,
    ) -> Result<TaskCredentialsResponse, String>;
}

/// The ids a task's containers are given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskIds {
    /// Only for a task with a task role.
    pub credentials: Option<String>,
    /// Per container name, the token of its metadata URI.
    pub metadata: HashMap<String, String>,
}

impl TaskIds {
    /// The variables a container of the task gets, where the SDKs and tools read them.
    pub fn environment(&self, container: &str) -> Vec<(String, String)> {
        let mut env = vec![];
        if let Some(id) = &self.credentials {
            env.push((
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI".to_string(),
                format!("/v2/credentials/{id}"),
            ));
        }
        if let Some(token) = self.metadata.get(container) {
            env.push((
                "ECS_CONTAINER_METADATA_URI_V4".to_string(),
                format!("http://{ADDRESS}/v4/{token}"),
            ));
            env.push((
                "ECS_CONTAINER_METADATA_URI".to_string(),
                format!("http://{ADDRESS}/v3/{token}"),
            ));
        }
        env
    }
}

/// An id derived from the agent's key, so a restarted agent serves the ids its
/// running containers were given. Shaped as a UUID, as the ECS agent's are.
pub fn derive_id(key: &[u8], parts: &[&str]) -> String {
    let mut h = Sha256::new();
    h.update(key);
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p.as_bytes());
    }
    let x = hex_lower(&h.finalize()[..16]);
    format!(
        "{}-{}-{}-{}-{}",
        &x[..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..32]
    )
}

fn hex_lower(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether credentials fetched at `fetched` and expiring at `expiration` are due
/// for renewal at `now`: past half their life, so a task always holds ones with
/// at least half their lifetime left.
pub fn needs_refresh(fetched: i64, expiration: i64, now: i64) -> bool {
    now >= fetched + (expiration - fetched) / 2
}

#[derive(Debug, Clone)]
pub struct Cached {
    pub credentials: TaskCredentialsResponse,
    pub fetched: i64,
}

/// What the endpoint knows of one task.
#[derive(Debug, Clone)]
pub struct Entry {
    pub ids: TaskIds,
    pub definition: TaskDefinition,
    /// The latest report of the task's runner (statuses, containers, times).
    pub report: Task,
    pub cluster_arn: String,
    pub launch_type: String,
    pub availability_zone: Option<String>,
    pub network: Option<TaskNetwork>,
    /// Docker names of the task's containers, by container name.
    pub docker_names: HashMap<String, String>,
    /// The control plane's ARNs of the task's containers, by container name.
    pub container_arns: HashMap<String, String>,
    /// Addresses its containers were seen at (bridge), checked on every request.
    pub addresses: HashSet<IpAddr>,
}

#[derive(Default)]
struct Registry {
    tasks: HashMap<String, Entry>,
    by_credentials: HashMap<String, String>,
    /// Token → (task ARN, container name).
    by_token: HashMap<String, (String, String)>,
}

pub struct Endpoints {
    key: Vec<u8>,
    registry: Mutex<Registry>,
    credentials: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Cached>>>>>,
    source: Arc<dyn CredentialsSource>,
    docker: Option<crate::docker::DockerRuntime>,
}

/// The facts a new task's entry starts from.
pub struct NewTask<'a> {
    pub task_arn: &'a str,
    pub cluster_arn: &'a str,
    pub definition: &'a TaskDefinition,
    pub has_task_role: bool,
    pub launch_type: &'a str,
    pub availability_zone: Option<&'a str>,
    pub network: Option<&'a TaskNetwork>,
    pub docker_names: HashMap<String, String>,
    pub container_arns: HashMap<String, String>,
}

impl Endpoints {
    pub fn new(
        key: Vec<u8>,
        source: Arc<dyn CredentialsSource>,
        docker: Option<crate::docker::DockerRuntime>,
    ) -> Arc<Endpoints> {
        Arc::new(Endpoints {
            key,
            registry: Default::default(),
            credentials: Default::default(),
            source,
            docker,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a task (again, after a restart) and answers the ids its containers get.
    pub fn register(&self, t: NewTask<'_>) -> TaskIds {
        let credentials = t
            .has_task_role
            .then(|| derive_id(&self.key, &[t.task_arn, "credentials"]));
        let metadata: HashMap<String, String> = t
            .definition
            .container_definitions
            .iter()
            .flatten()
            .filter_map(|c| c.name.clone())
            .map(|n| {
                let token = derive_id(&self.key, &[t.task_arn, "metadata", &n]);
                (n, token)
            })
            .collect();
        let ids = TaskIds {
            credentials,
            metadata,
        };
        let entry = Entry {
            ids: ids.clone(),
            definition: t.definition.clone(),
            report: Task {
                task_arn: Some(t.task_arn.to_string()),
                ..Default::default()
            },
            cluster_arn: t.cluster_arn.to_string(),
            launch_type: t.launch_type.to_string(),
            availability_zone: t.availability_zone.map(String::from),
            network: t.network.cloned(),
            docker_names: t.docker_names,
            container_arns: t.container_arns,
            addresses: HashSet::new(),
        };
        let mut r = self.lock();
        if let Some(id) = &ids.credentials {
            r.by_credentials.insert(id.clone(), t.task_arn.to_string());
        }
        for (name, token) in &ids.metadata {
            r.by_token
                .insert(token.clone(), (t.task_arn.to_string(), name.clone()));
        }
        r.tasks.insert(t.task_arn.to_string(), entry);
        ids
    }

    /// The runner's latest report of the task.
    pub fn observe(&self, report: &Task) {
        let Some(arn) = &report.task_arn else { return };
        if let Some(e) = self.lock().tasks.get_mut(arn) {
            e.report = report.clone();
        }
    }

    /// The task is gone: its ids answer nothing from now on.
    pub fn forget(&self, task_arn: &str) {
        let mut r = self.lock();
        if let Some(e) = r.tasks.remove(task_arn) {
            if let Some(id) = &e.ids.credentials {
                r.by_credentials.remove(id);
            }
            for token in e.ids.metadata.values() {
                r.by_token.remove(token);
            }
        }
        drop(r);
        self.credentials
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(task_arn);
    }

    fn slot(&self, task_arn: &str) -> Arc<tokio::sync::Mutex<Option<Cached>>> {
        self.credentials
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(task_arn.to_string())
            .or_default()
            .clone()
    }

    /// The task role's current credentials, fetched again once past half their life.
    pub async fn task_credentials(
        &self,
        task_arn: &str,
        now: i64,
    ) -> Result<TaskCredentialsResponse, String> {
        let slot = self.slot(task_arn);
        let mut cached = slot.lock().await;
        if let Some(c) = cached.as_ref() {
            if !needs_refresh(c.fetched, c.credentials.expiration, now) {
                return Ok(c.credentials.clone());
            }
        }
        let fresh = self.source.fetch(task_arn, TaskRole::Task).await?;
        *cached = Some(Cached {
            credentials: fresh.clone(),
            fetched: now,
        });
        Ok(fresh)
    }

    /// A session of the task's execution role, for what the agent does on its behalf.
    pub async fn execution_credentials(
        &self,
        task_arn: &str,
    ) -> Result<TaskCredentialsResponse, String> {
        self.source.fetch(task_arn, TaskRole::Execution).await
    }

    pub fn task_of_credentials(&self, id: &str) -> Option<Entry> {
        let r = self.lock();
        let arn = r.by_credentials.get(id)?;
        r.tasks.get(arn).cloned()
    }

    /// The task and container name a metadata token belongs to.
    pub fn task_of_token(&self, token: &str) -> Option<(Entry, String)> {
        let r = self.lock();
        let (arn, name) = r.by_token.get(token)?;
        Some((r.tasks.get(arn)?.clone(), name.clone()))
    }

    /// Whether a request from `source` may act for the task: a host-network
    /// task shares the host's addresses; a bridge task's request comes from one
    /// of its containers' addresses (looked up in Docker when not yet seen).
    pub async fn comes_from_task(&self, entry: &Entry, source: IpAddr) -> bool {
        let mode = entry.definition.network_mode.as_deref().unwrap_or("bridge");
        if mode == "host" {
            return true;
        }
        if entry.addresses.contains(&source) {
            return true;
        }
        let arn = entry.report.task_arn.clone().unwrap_or_default();
        // An awsvpc task asks over its own endpoint link: the host routes its address there.
        if let Some(n) = &entry.network {
            let ok = crate::netns::route_device(source).await
                == Some(crate::netns::endpoint_end(&n.eni_id));
            if ok {
                if let Some(e) = self.lock().tasks.get_mut(&arn) {
                    e.addresses.insert(source);
                }
            }
            return ok;
        }
        let Some(docker) = &self.docker else {
            return false;
        };
        let mut seen = HashSet::new();
        for c in entry.report.containers.iter().flatten() {
            let Some(id) = &c.runtime_id else { continue };
            if let Ok(f) = docker.facts(id).await {
                seen.extend(
                    f.addresses
                        .iter()
                        .filter_map(|(_, ip)| ip.parse::<IpAddr>().ok()),
                );
            }
        }
        let ok = seen.contains(&source);
        if let Some(e) = self.lock().tasks.get_mut(&arn) {
            e.addresses.extend(seen);
        }
        ok
    }

    pub fn docker(&self) -> Option<&crate::docker::DockerRuntime> {
        self.docker.as_ref()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A control plane that is never reached (tasks without roles never ask).
    pub struct Unreachable;

    #[async_trait::async_trait]
    impl CredentialsSource for Unreachable {
        async fn fetch(&self, _: &str, _: TaskRole) -> Result<TaskCredentialsResponse, String> {
            Err("no control plane in this test".into())
        }
    }
    use berth_api::ecs::ContainerDefinition;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counting(AtomicUsize);

    #[async_trait::async_trait]
    impl CredentialsSource for Counting {
        async fn fetch(
            &self,
            task_arn: &str,
            _: TaskRole,
        ) -> Result<TaskCredentialsResponse, String> {
            let n = self.0.fetch_add(1, Ordering::SeqCst);
            Ok(TaskCredentialsResponse {
                role_arn: format!("role-of-{task_arn}"),
                access_key_id: format!("ASIA{n}"),
                secret_access_key: "s".into(),
                session_token: "t".into(),
                expiration: 1000 + 100 * n as i64,
            })
        }
    }

    fn definition() -> TaskDefinition {
        TaskDefinition {
            container_definitions: Some(vec![ContainerDefinition {
                name: Some("web".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    fn register(e: &Endpoints, arn: &str, role: bool) -> TaskIds {
        let td = definition();
        e.register(NewTask {
            task_arn: arn,
            cluster_arn: "c",
            definition: &td,
            has_task_role: role,
            launch_type: "EC2",
            availability_zone: None,
            network: None,
            docker_names: HashMap::new(),
            container_arns: HashMap::new(),
        })
    }

    #[test]
    fn refresh_past_half_life() {
        assert!(!needs_refresh(0, 100, 49));
        assert!(needs_refresh(0, 100, 50));
        assert!(needs_refresh(0, 100, 200));
    }

    #[tokio::test]
    async fn ids_are_stable_per_task_and_credentials_are_renewed_past_half_life() {
        let source = Arc::new(Counting(AtomicUsize::new(0)));
        let e = Endpoints::new(b"key".to_vec(), source.clone(), None);
        let ids = register(&e, "arn:t1", true);
        let again = Endpoints::new(b"key".to_vec(), source.clone(), None);
        assert_eq!(
            register(&again, "arn:t1", true),
            ids,
            "a restarted agent gives the same ids"
        );
        let other = register(&e, "arn:t2", false);
        assert_eq!(other.credentials, None);
        assert_ne!(other.metadata["web"], ids.metadata["web"]);
        let env = ids.environment("web");
        assert_eq!(env[0].0, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
        assert_eq!(
            env[0].1,
            format!("/v2/credentials/{}", ids.credentials.clone().unwrap())
        );
        assert_eq!(
            env[1].1,
            format!("http://169.254.170.2/v4/{}", ids.metadata["web"])
        );

        let id = ids.credentials.clone().unwrap();
        let entry = e.task_of_credentials(&id).unwrap();
        assert_eq!(entry.report.task_arn.as_deref(), Some("arn:t1"));
        let first = e.task_credentials("arn:t1", 0).await.unwrap();
        assert_eq!(first.access_key_id, "ASIA0");
        assert_eq!(e.task_credentials("arn:t1", 499).await.unwrap(), first);
        let second = e.task_credentials("arn:t1", 500).await.unwrap();
        assert_eq!(second.access_key_id, "ASIA1");
        e.forget("arn:t1");
        assert!(e.task_of_credentials(&id).is_none());
        assert!(e.task_of_token(&ids.metadata["web"]).is_none());
        assert!(e.task_of_token(&other.metadata["web"]).is_some());
    }
}
