//! One task on this host, from pull to STOPPED: a worker per task that
//! adopts the containers a previous run left, creates what is missing,
//! starts containers as their dependencies allow, watches them, and stops
//! them when the control plane or an essential container says so.
use crate::container_config::{self as cc, TaskContext};
use crate::engine::{Engine, Observed, Phase, RegistryAuth};
use crate::lifecycle::{self, Readiness, TaskError, View};
use crate::reports::Reports;
use berth_api::agent::{DesiredTask, TaskNetwork};
use berth_api::ecs::{Container, ContainerDefinition, Task, TaskDefinition, TaskOverride};
use berth_model::task::{TaskStatus, PENDING, RUNNING, STOPPED, STOPPING};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};

/// ECS_CONTAINER_STOP_TIMEOUT's default.
const DEFAULT_STOP_TIMEOUT_SECS: i32 = 30;

/// ECS_IMAGE_PULL_BEHAVIOR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullBehavior {
    /// Pull; if that fails, use the cached image when there is one.
    Default,
    /// Pull; a failed pull fails the task.
    Always,
    /// Pull only when the image is not cached.
    PreferCached,
}

impl std::str::FromStr for PullBehavior {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "default" => Ok(PullBehavior::Default),
            "always" => Ok(PullBehavior::Always),
            // "once" is "prefer-cached" for an agent that does not remember past pulls.
            "once" | "prefer-cached" => Ok(PullBehavior::PreferCached),
            other => Err(format!(
                "unknown image pull behavior {other}: use default, always, once or prefer-cached"
            )),
        }
    }
}

/// What every runner on this host shares.
pub struct Shared {
    pub engine: Arc<dyn Engine>,
    pub container_instance_arn: String,
    pub cluster_arn: String,
    pub pull_behavior: PullBehavior,
    pub reports: Reports,
    /// Images seen on the host, so prefer-cached asks the engine once per image.
    pub images: std::sync::Mutex<std::collections::HashSet<String>>,
    /// The host's task credentials and metadata endpoint.
    pub endpoints: Arc<crate::task_endpoint::Endpoints>,
    /// ECR logins for images in berth's registry.
    pub registry_logins: Arc<dyn crate::ecr_images::RegistryLogins>,
    /// Secrets and registry logins of `secrets` and `repositoryCredentials`.
    pub secrets: Arc<dyn crate::secrets::SecretSource>,
    /// Ships the logs of `awslogs` containers to the server (none in unit tests).
    pub log_shipping: Option<Arc<crate::awslogs::shipper::Shipping>>,
    /// Pulls in flight, by image and the identity pulling it.
    pub pulls: std::sync::Mutex<std::collections::HashMap<(String, String), InFlight>>,
    /// The Docker runtime of containers given GPUs.
    pub nvidia_runtime: String,
}

/// One pull that every task asking for the same image, as the same identity, waits on.
pub type InFlight = Arc<tokio::sync::OnceCell<Result<(), String>>>;

impl Shared {
    /// Pulls `image` as `who` (an execution role, or this host), sharing a
    /// pull already under way: tasks started together fetch each blob once.
    async fn pull(
        &self,
        image: &str,
        who: &str,
        auth: Option<&RegistryAuth>,
    ) -> Result<(), String> {
        let key = (image.to_string(), who.to_string());
        let cell = self
            .pulls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key.clone())
            .or_default()
            .clone();
        let result = cell
            .get_or_init(|| self.engine.pull(image, auth))
            .await
            .clone();
        let mut pulls = self.pulls.lock().unwrap_or_else(|p| p.into_inner());
        // Later tasks pull afresh.
        if pulls.get(&key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
            pulls.remove(&key);
        }
        result
    }

    async fn cached(&self, image: &str) -> bool {
        let lock = || self.images.lock().unwrap_or_else(|p| p.into_inner());
        if lock().contains(image) {
            return true;
        }
        let present = self.engine.image_present(image).await;
        if present {
            lock().insert(image.to_string());
        }
        present
    }
}

/// The poll loop's handle on one runner.
pub struct RunnerHandle {
    pub desired: watch::Sender<String>,
    pub wake: Arc<Notify>,
    pub done: Arc<AtomicBool>,
}

struct Slot {
    def: ContainerDefinition,
    /// The name Docker knows the image by, when it is not the one written (ECR's).
    pull_image: Option<String>,
    /// The manifest digest the image was pulled by (`imageDigest`).
    image_digest: Option<String>,
    docker_name: String,
    id: Option<String>,
    observed: Option<Observed>,
    reason: Option<String>,
    /// Its secrets, fetched when the task starts and kept only here.
    resolved: cc::Resolved,
    /// The login its `repositoryCredentials` name.
    registry_auth: Option<RegistryAuth>,
    /// When this agent last started it (None: started before this agent ran).
    started_at: Option<Instant>,
    /// The GPUs placement gave it (its `gpuIds`).
    gpu_ids: Vec<String>,
}

impl Slot {
    fn view(&self) -> View<'_> {
        View {
            def: &self.def,
            observed: self.observed.as_ref(),
        }
    }
    fn name(&self) -> &str {
        self.def.name.as_deref().unwrap_or_default()
    }
    fn phase(&self) -> Option<&Phase> {
        self.observed.as_ref().map(|o| &o.phase)
    }
    fn was_started(&self) -> bool {
        self.view().was_started()
    }
}

struct Runner {
    shared: Arc<Shared>,
    task_arn: String,
    /// The task's own cluster (a fleet host runs tasks of many).
    cluster_arn: String,
    task_id: String,
    task_definition: TaskDefinition,
    overrides: Option<TaskOverride>,
    slots: Vec<Slot>,
    report: Task,
    desired: watch::Receiver<String>,
    wake: Arc<Notify>,
    waiting_since: Instant,
    /// The task's own interface (awsvpc), and the container holding its namespace.
    network: Option<TaskNetwork>,
    pause: Option<String>,
    /// The ids its containers reach the task endpoint with.
    ids: crate::task_endpoint::TaskIds,
    has_execution_role: bool,
}

/// Starts a runner; `adopted` are (container name, Docker id) of containers
/// a previous run of the agent already made for this task.
pub fn spawn(
    shared: Arc<Shared>,
    desired: &DesiredTask,
    adopted: &[(String, String)],
) -> RunnerHandle {
    let t = &desired.task;
    let task_arn = t.task_arn.clone().unwrap_or_default();
    let task_id = task_arn.rsplit('/').next().unwrap_or_default().to_string();
    let (tx, rx) = watch::channel(t.desired_status.clone().unwrap_or_else(|| RUNNING.into()));
    let wake = Arc::new(Notify::new());
    let done = Arc::new(AtomicBool::new(false));
    let slots = desired
        .task_definition
        .container_definitions
        .iter()
        .flatten()
        .map(|def| Slot {
            docker_name: cc::docker_name(&task_id, def.name.as_deref().unwrap_or_default()),
            id: adopted
                .iter()
                .find(|(name, _)| Some(name.as_str()) == def.name.as_deref())
                .map(|(_, id)| id.clone()),
            def: def.clone(),
            pull_image: None,
            image_digest: None,
            observed: None,
            reason: None,
            resolved: Default::default(),
            registry_auth: None,
            started_at: None,
            gpu_ids: t
                .containers
                .iter()
                .flatten()
                .find(|c| c.name == def.name)
                .and_then(|c| c.gpu_ids.clone())
                .unwrap_or_default(),
        })
        .collect();
    let pause = adopted
        .iter()
        .find(|(name, _)| name == cc::PAUSE_CONTAINER)
        .map(|(_, id)| id.clone());
    // Start from what the control plane already knows, so timestamps and statuses carry over.
    let report = Task {
        task_arn: Some(task_arn.clone()),
        last_status: t.last_status.clone(),
        pull_started_at: t.pull_started_at,
        pull_stopped_at: t.pull_stopped_at,
        started_at: t.started_at,
        ..Default::default()
    };
    let cluster_arn = t
        .cluster_arn
        .clone()
        .unwrap_or_else(|| shared.cluster_arn.clone());
    let td = &desired.task_definition;
    let role =
        |task: Option<&String>, definition: &Option<String>| task.or(definition.as_ref()).is_some();
    let overrides = t.overrides.as_ref();
    let has_task_role = role(
        overrides.and_then(|o| o.task_role_arn.as_ref()),
        &td.task_role_arn,
    );
    let has_execution_role = role(
        overrides.and_then(|o| o.execution_role_arn.as_ref()),
        &td.execution_role_arn,
    );
    let ids = shared.endpoints.register(crate::task_endpoint::NewTask {
        task_arn: &task_arn,
        cluster_arn: &cluster_arn,
        definition: td,
        has_task_role,
        launch_type: t.launch_type.as_deref().unwrap_or("EC2"),
        availability_zone: t.availability_zone.as_deref(),
        network: desired.network.as_ref(),
        docker_names: slots_names(&task_id, td),
        container_arns: t
            .containers
            .iter()
            .flatten()
            .filter_map(|c| Some((c.name.clone()?, c.container_arn.clone()?)))
            .collect(),
    });
    let runner = Runner {
        shared,
        cluster_arn,
        task_arn,
        task_id,
        task_definition: desired.task_definition.clone(),
        overrides: t.overrides.clone(),
        slots,
        report,
        desired: rx,
        wake: wake.clone(),
        waiting_since: Instant::now(),
        network: desired.network.clone(),
        pause,
        ids,
        has_execution_role,
    };
    let finished = done.clone();
    tracing::debug!(task = %runner.task_arn, "runner spawned");
    tokio::spawn(async move {
        runner.run().await;
        finished.store(true, Ordering::SeqCst);
    });
    RunnerHandle {
        desired: tx,
        wake,
        done,
    }
}

/// The Docker name of each of the task's containers, by container name.
fn slots_names(task_id: &str, td: &TaskDefinition) -> std::collections::HashMap<String, String> {
    td.container_definitions
        .iter()
        .flatten()
        .filter_map(|d| d.name.clone())
        .map(|n| (n.clone(), cc::docker_name(task_id, &n)))
        .collect()
}

impl Runner {
    fn stop_requested(&self) -> bool {
        self.desired.borrow().as_str() == STOPPED
    }

    async fn run(mut self) {
        self.refresh().await;
        let adopted = self.slots.iter().any(|s| s.id.is_some());
        if self.stop_requested() && !adopted {
            return self.stop(None).await;
        }
        if self.slots.iter().any(|s| s.id.is_none()) {
            if let Err(e) = self.prepare().await {
                return self.stop(Some(e)).await;
            }
        } else if let Err(e) = self.ship_logs(false).await {
            // Adopted containers resume shipping from where they stood.
            tracing::warn!(task = %self.task_arn, error = %e, "log shipping not resumed");
        }
        self.waiting_since = Instant::now();
        let mut fresh = true;
        loop {
            if self.stop_requested() {
                return self.stop(None).await;
            }
            if !fresh {
                self.refresh().await;
            }
            fresh = false;
            self.restart_exited().await;
            if let Some(e) = lifecycle::essential_exit(&self.views()) {
                return self.stop(Some(e)).await;
            }
            if let Err(e) = self.start_ready().await {
                return self.stop(Some(e)).await;
            }
            self.publish_progress();
            let pending = self.slots.iter().any(|s| !s.was_started());
            let health = self.slots.iter().any(|s| s.def.health_check.is_some());
            let tick = if pending || health {
                Duration::from_millis(500)
            } else {
                Duration::from_secs(5)
            };
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = self.desired.changed() => {}
                _ = tokio::time::sleep(tick) => {}
            }
        }
    }

    /// Pulls images and creates the containers not made yet.
    async fn prepare(&mut self) -> Result<(), TaskError> {
        self.report.last_status = Some(PENDING.into());
        self.report
            .pull_started_at
            .get_or_insert_with(crate::client::now);
        self.publish();
        let images: Vec<(usize, String)> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.id.is_none())
            .map(|(i, s)| (i, s.def.image.clone().unwrap_or_default()))
            .collect();
        // The execution role comes first: it pulls private images, as ECS's does.
        let execution = if self.has_execution_role {
            match self
                .shared
                .endpoints
                .execution_credentials(&self.task_arn)
                .await
            {
                Ok(c) => Some(c),
                Err(e) => {
                    return Err(TaskError::ResourceInitialization(format!(
                        "unable to assume the task execution role: {e}"
                    )))
                }
            }
        } else {
            None
        };
        self.fetch_secrets(execution.as_ref()).await?;
        let mut pulled: Vec<(String, Option<String>, Option<String>)> = vec![];
        for (i, image) in &images {
            // Containers naming other logins for one image pull it each.
            let shareable = self.slots[*i].registry_auth.is_none();
            if let Some((_, pull, digest)) = pulled.iter().find(|(w, _, _)| w == image && shareable)
            {
                self.slots[*i].pull_image = pull.clone();
                self.slots[*i].image_digest = digest.clone();
                continue;
            }
            let auth = self.slots[*i].registry_auth.clone();
            let pull = match self.pull(image, execution.as_ref(), auth.as_ref()).await {
                Ok(pull) => pull,
                Err(e) => {
                    let e = TaskError::CannotPullContainer(e);
                    self.slots[*i].reason = Some(e.to_string());
                    return Err(e);
                }
            };
            let digest = self
                .shared
                .engine
                .repo_digest(pull.as_deref().unwrap_or(image))
                .await;
            self.slots[*i].pull_image = pull.clone();
            self.slots[*i].image_digest = digest.clone();
            pulled.push((image.clone(), pull, digest));
        }
        self.report
            .pull_stopped_at
            .get_or_insert_with(crate::client::now);
        self.publish();
        // The task role is assumed before any container starts, as ECS does.
        if self.ids.credentials.is_some() {
            let now = crate::client::now() as i64;
            if let Err(e) = self
                .shared
                .endpoints
                .task_credentials(&self.task_arn, now)
                .await
            {
                return Err(TaskError::ResourceInitialization(format!(
                    "unable to retrieve credentials of the task role: {e}"
                )));
            }
        }
        let cgroup = self
            .task_cgroup()
            .map_err(|e| TaskError::CannotCreateContainer(format!("task cgroup: {e}")))?;
        if let Some(network) = &self.network {
            let ctx = self.context(cgroup.as_deref(), None);
            let existing = self.pause.clone();
            match self
                .shared
                .engine
                .set_up_network(&ctx, existing.as_deref(), network)
                .await
            {
                Ok(id) => self.pause = Some(id),
                Err(e) => {
                    return Err(TaskError::ResourceInitialization(format!(
                        "failed to configure ENI {}: {e}",
                        network.eni_id
                    )));
                }
            }
        }
        for i in 0..self.slots.len() {
            if self.slots[i].id.is_some() {
                continue;
            }
            let ctx = self.context(cgroup.as_deref(), self.pause.as_deref());
            let o = self
                .overrides
                .as_ref()
                .and_then(|o| o.container_overrides.as_ref())
                .and_then(|cs| {
                    cs.iter()
                        .find(|c| c.name.as_deref() == Some(self.slots[i].name()))
                });
            let mut body = cc::create_body(&ctx, &self.slots[i].def, o);
            cc::apply_resolved(&mut body, &self.slots[i].resolved);
            cc::apply_gpus(
                &mut body,
                &self.slots[i].gpu_ids,
                &self.shared.nvidia_runtime,
            );
            if let Some(pulled) = &self.slots[i].pull_image {
                body.image = Some(pulled.clone());
            }
            let name = self.slots[i].docker_name.clone();
            tracing::debug!(container = %name, "creating");
            match self.shared.engine.create(&name, body).await {
                Ok(id) => {
                    // Just created: its state is known without asking Docker.
                    self.slots[i].observed = Some(Observed::created(&id));
                    self.slots[i].id = Some(id);
                }
                Err(e) => {
                    let e = TaskError::CannotCreateContainer(e);
                    self.slots[i].reason = Some(e.to_string());
                    return Err(e);
                }
            }
        }
        self.ship_logs(true).await
    }

    /// Fetches the secrets and registry logins of the containers not made yet,
    /// as the execution role; a task that needs an environment file, or a
    /// member berth cannot honour, stops here, before any container starts.
    async fn fetch_secrets(
        &mut self,
        execution: Option<&berth_api::agent::TaskCredentialsResponse>,
    ) -> Result<(), TaskError> {
        if let Some(why) = berth_model::unhonoured::first(&self.task_definition) {
            return Err(TaskError::ResourceInitialization(format!(
                "berth cannot honour {why}"
            )));
        }
        let region = berth_model::arn::parse(&self.task_arn).map(|a| a.region);
        let region = region.as_deref().unwrap_or("us-east-1").to_string();
        let failed = |why: String| {
            TaskError::ResourceInitialization(format!(
                "unable to pull secrets or registry auth: {why}"
            ))
        };
        let source = self.shared.secrets.clone();
        for slot in self.slots.iter_mut().filter(|s| s.id.is_none()) {
            if let Some(f) = slot.def.environment_files.iter().flatten().next() {
                let e = TaskError::ResourceInitialization(format!(
                    "failed to download env files: file redirect: unable to download env file {}: berth has no object storage to fetch it from",
                    f.value.as_deref().unwrap_or_default()
                ));
                slot.reason = Some(e.to_string());
                return Err(e);
            }
            let pairs = |list: Option<&Vec<berth_api::ecs::Secret>>| -> Vec<(String, String)> {
                list.into_iter()
                    .flatten()
                    .map(|s| {
                        let name = s.name.clone().unwrap_or_default();
                        (name, s.value_from.clone().unwrap_or_default())
                    })
                    .collect()
            };
            let environment = pairs(slot.def.secrets.as_ref());
            let log_options = pairs(
                slot.def
                    .log_configuration
                    .as_ref()
                    .and_then(|l| l.secret_options.as_ref()),
            );
            let login = slot
                .def
                .repository_credentials
                .as_ref()
                .and_then(|r| r.credentials_parameter.clone());
            if environment.is_empty() && log_options.is_empty() && login.is_none() {
                continue;
            }
            let Some(role) = execution else {
                return Err(failed(
                    "the task has no execution role to fetch them with".into(),
                ));
            };
            let resolve = |wanted| crate::secrets::resolve(&*source, role, &region, wanted);
            let outcome = async {
                let environment = resolve(&environment).await?;
                let log_options = resolve(&log_options).await?;
                let auth = match &login {
                    Some(l) => {
                        let image = slot.def.image.as_deref().unwrap_or_default();
                        Some(
                            crate::secrets::registry_auth(&*source, role, &region, l, image)
                                .await?,
                        )
                    }
                    None => None,
                };
                Ok::<_, String>((environment, log_options, auth))
            };
            match outcome.await {
                Ok((environment, log_options, auth)) => {
                    slot.resolved = cc::Resolved {
                        environment,
                        log_options,
                    };
                    slot.registry_auth = auth;
                }
                Err(why) => {
                    let e = failed(why);
                    slot.reason = Some(e.to_string());
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Where each `awslogs` container's lines go (container index, target).
    fn log_targets(&self) -> Result<Vec<(usize, crate::awslogs::shipper::Target)>, TaskError> {
        use crate::awslogs::{options::Awslogs, shipper};
        // ECS fills awslogs-region in with the task's own region.
        let region = berth_model::arn::parse(&self.task_arn).map(|a| a.region);
        let region = region.as_deref().unwrap_or("us-east-1");
        let identity = if self.has_execution_role {
            shipper::Identity::ExecutionRole {
                task_arn: self.task_arn.clone(),
            }
        } else {
            shipper::Identity::Host
        };
        let mut out = vec![];
        for (i, slot) in self.slots.iter().enumerate() {
            let Some(mut config) = cc::awslogs_options(&slot.def) else {
                continue;
            };
            config.extend(slot.resolved.log_options.iter().cloned());
            let options =
                Awslogs::parse(&config, region).map_err(TaskError::CannotCreateContainer)?;
            let stream = options.stream_name(
                slot.name(),
                &self.task_id,
                slot.id.as_deref().unwrap_or_default(),
            );
            out.push((
                i,
                shipper::Target {
                    options,
                    stream,
                    identity: identity.clone(),
                },
            ));
        }
        Ok(out)
    }

    /// Ships the logs of the task's `awslogs` containers; `prepare` makes their
    /// groups and streams first, and a failure there stops the task as ECS's does.
    async fn ship_logs(&mut self, prepare: bool) -> Result<(), TaskError> {
        let Some(shipping) = self.shared.log_shipping.clone() else {
            return Ok(());
        };
        for (i, target) in self.log_targets()? {
            let Some(id) = self.slots[i].id.clone() else {
                continue;
            };
            if prepare {
                if let Err(e) = shipping.prepare(&target).await {
                    let e = TaskError::ResourceInitialization(e);
                    self.slots[i].reason = Some(e.to_string());
                    return Err(e);
                }
            }
            shipping.ship(&id, target);
        }
        Ok(())
    }

    /// What the task's containers share.
    fn context<'a>(
        &'a self,
        cgroup_parent: Option<&'a str>,
        network_container: Option<&'a str>,
    ) -> TaskContext<'a> {
        TaskContext {
            task_arn: &self.task_arn,
            task_id: &self.task_id,
            cluster_arn: &self.cluster_arn,
            container_instance_arn: &self.shared.container_instance_arn,
            task_definition: &self.task_definition,
            cgroup_parent,
            network_container,
            task_ids: Some(&self.ids),
        }
    }

    /// The task's cgroup when it sets task-level cpu or memory (overrides win).
    fn task_cgroup(&self) -> Result<Option<String>, String> {
        use berth_model::task_definition::{parse_cpu, parse_memory};
        let o = self.overrides.as_ref();
        let td = &self.task_definition;
        let cpu = o
            .and_then(|o| o.cpu.as_deref())
            .or(td.cpu.as_deref())
            .and_then(parse_cpu);
        let memory = o
            .and_then(|o| o.memory.as_deref())
            .or(td.memory.as_deref())
            .and_then(parse_memory);
        crate::cgroups::create(&self.task_id, cpu, memory)
    }

    /// Pulls a container's image; answers the name Docker has it under when
    /// that is not the written one (an ECR image, pulled from berth's registry
    /// with an ECR login of the execution role, or of this host without one).
    async fn pull(
        &self,
        image: &str,
        execution: Option<&berth_api::agent::TaskCredentialsResponse>,
        login: Option<&RegistryAuth>,
    ) -> Result<Option<String>, String> {
        let who = execution.map_or("", |c| c.role_arn.as_str());
        let Some(parsed) = berth_model::ecr::parse_image(image) else {
            // A private registry's login is part of who pulls.
            let who = match login {
                Some(l) => format!("{who} as {}@{}", l.username, l.server),
                None => who.to_string(),
            };
            return self.ensure_image(image, &who, login).await.map(|()| None);
        };
        let auth = self
            .shared
            .registry_logins
            .login(&parsed.scope.region, execution)
            .await
            .map_err(|e| format!("pull access denied for {image}: {e}"))?
            .ok_or_else(|| format!("pull access denied for {image}: no basic auth credentials"))?;
        let mapped = crate::ecr_images::map(image, &auth.server)
            .ok_or_else(|| format!("invalid reference format: {image}"))?;
        self.ensure_image(&mapped.image, who, Some(&auth))
            .await
            .map_err(|e| crate::ecr_images::reword(&e, &mapped))?;
        Ok(Some(mapped.image))
    }

    async fn ensure_image(
        &self,
        image: &str,
        who: &str,
        auth: Option<&RegistryAuth>,
    ) -> Result<(), String> {
        let engine = &self.shared.engine;
        match self.shared.pull_behavior {
            PullBehavior::PreferCached if self.shared.cached(image).await => Ok(()),
            PullBehavior::Default => match self.shared.pull(image, who, auth).await {
                Ok(()) => Ok(()),
                Err(e) if engine.image_present(image).await => {
                    tracing::warn!(image, error = %e, "pull failed; using the cached image");
                    Ok(())
                }
                Err(e) => Err(e),
            },
            _ => self.shared.pull(image, who, auth).await,
        }
    }

    async fn refresh(&mut self) {
        for s in &mut self.slots {
            let Some(id) = &s.id else { continue };
            match self.shared.engine.inspect(id).await {
                Ok(o) => s.observed = Some(o),
                Err(e) => {
                    // A container removed behind our back counts as exited.
                    tracing::warn!(container = %s.docker_name, error = %e, "inspect failed");
                    if let Some(o) = &mut s.observed {
                        o.phase = Phase::Exited;
                    }
                }
            }
        }
    }

    fn views(&self) -> Vec<View<'_>> {
        self.slots.iter().map(Slot::view).collect()
    }

    /// Starts every created container whose dependencies allow it.
    async fn start_ready(&mut self) -> Result<(), TaskError> {
        for i in 0..self.slots.len() {
            if self.slots[i].phase() != Some(&Phase::Created) {
                continue;
            }
            match lifecycle::readiness(&self.views(), i) {
                Readiness::Start => {}
                Readiness::Never(e) => {
                    self.slots[i].reason = Some(e.to_string());
                    return Err(e);
                }
                Readiness::Wait => {
                    if self.waiting_since.elapsed() > lifecycle::start_timeout(&self.slots[i].def) {
                        let e = TaskError::DependencyTimeout {
                            container: self.slots[i].name().to_string(),
                        };
                        self.slots[i].reason = Some(e.to_string());
                        return Err(e);
                    }
                    continue;
                }
            }
            let id = self.slots[i].id.clone().unwrap_or_default();
            tracing::debug!(container = %self.slots[i].docker_name, "starting");
            if let Err(e) = self.shared.engine.start(&id).await {
                let e = TaskError::CannotStartContainer(e);
                self.slots[i].reason = Some(e.to_string());
                return Err(e);
            }
            self.slots[i].started_at = Some(Instant::now());
            let publishes = self.slots[i]
                .def
                .port_mappings
                .as_ref()
                .is_some_and(|p| !p.is_empty());
            if publishes {
                // The engine chooses dynamic host ports at start: read them back.
                if let Ok(o) = self.shared.engine.inspect(&id).await {
                    self.slots[i].observed = Some(o);
                }
            } else if let Some(o) = &mut self.slots[i].observed {
                // Started: an exit from here on arrives as an engine event.
                o.phase = Phase::Running;
            }
        }
        Ok(())
    }

    /// Starts again the exited containers whose restart policy says so (as
    /// ECS's agent does, the same container); one that does not start stays exited.
    async fn restart_exited(&mut self) {
        let mut restarted: Vec<usize> = vec![];
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let Some(o) = &slot.observed else { continue };
            let ran_for = slot.started_at.map(|t| t.elapsed());
            if o.phase != Phase::Exited || !lifecycle::restarts(&slot.def, o.exit_code, ran_for) {
                continue;
            }
            let Some(id) = slot.id.clone() else { continue };
            match self.shared.engine.start(&id).await {
                Ok(()) => {
                    tracing::info!(container = %slot.docker_name, exit_code = ?o.exit_code, "restarted by its restart policy");
                    slot.started_at = Some(Instant::now());
                    if let Some(o) = &mut slot.observed {
                        o.phase = Phase::Running;
                        o.exit_code = None;
                    }
                    restarted.push(i);
                }
                Err(e) => {
                    tracing::warn!(container = %slot.docker_name, error = %e, "restart failed")
                }
            }
        }
        // Its awslogs shipper follows the container's new lines.
        let (Some(shipping), Ok(targets)) = (self.shared.log_shipping.clone(), self.log_targets())
        else {
            return;
        };
        for (i, target) in targets.into_iter().filter(|(i, _)| restarted.contains(i)) {
            if let Some(id) = &self.slots[i].id {
                shipping.ship(id, target);
            }
        }
    }

    fn containers(&self) -> Vec<Container> {
        self.slots
            .iter()
            .map(|s| {
                let o = s.observed.as_ref();
                let status = match s.phase() {
                    Some(Phase::Running) => RUNNING,
                    Some(Phase::Exited) => STOPPED,
                    _ => PENDING,
                };
                let reason = s.reason.clone().or_else(|| {
                    o.filter(|o| o.oom_killed)
                        .map(|_| "OutOfMemoryError: Container killed due to memory usage".into())
                        .or_else(|| o.and_then(|o| o.error.clone()))
                });
                Container {
                    name: s.def.name.clone(),
                    last_status: Some(status.into()),
                    exit_code: o
                        .filter(|o| o.phase == Phase::Exited)
                        .and_then(|o| o.exit_code)
                        .map(|c| c as i32),
                    reason,
                    network_bindings: o.map(|o| o.bindings.clone()),
                    health_status: lifecycle::container_health(&s.view()),
                    runtime_id: s.id.clone(),
                    image_digest: s
                        .image_digest
                        .clone()
                        .or_else(|| o.and_then(|o| o.image_digest.clone())),
                    ..Default::default()
                }
            })
            .collect()
    }

    fn publish_progress(&mut self) {
        if lifecycle::all_started(&self.views()) {
            if berth_model::task::last_status(&self.report) != Some(TaskStatus::Running) {
                self.report.last_status = Some(RUNNING.into());
            }
            self.report
                .started_at
                .get_or_insert_with(crate::client::now);
        }
        self.publish();
    }

    fn publish(&mut self) {
        tracing::debug!(task = %self.task_arn, status = ?self.report.last_status, "publish");
        let containers = self.containers();
        self.report.health_status = Some(lifecycle::task_health(&self.views()).into());
        self.report.containers = Some(containers);
        self.shared.endpoints.observe(&self.report);
        self.shared.reports.publish(self.report.clone());
    }

    /// Stops every container (dependents first, each with its stopTimeout) and reports STOPPED.
    async fn stop(mut self, cause: Option<TaskError>) {
        if let Some(e) = cause {
            self.report.stop_code = Some(e.stop_code().into());
            self.report.stopped_reason = Some(e.stopped_reason());
        }
        if self
            .slots
            .iter()
            .any(|s| s.phase() == Some(&Phase::Running))
        {
            self.report.last_status = Some(STOPPING.into());
            self.publish();
        }
        let defs: Vec<&ContainerDefinition> = self.slots.iter().map(|s| &s.def).collect();
        for i in lifecycle::stop_order(&defs) {
            let s = &self.slots[i];
            let (Some(id), Some(Phase::Running)) = (&s.id, s.phase()) else {
                continue;
            };
            let t = s.def.stop_timeout.unwrap_or(DEFAULT_STOP_TIMEOUT_SECS);
            if let Err(e) = self.shared.engine.stop(id, t).await {
                tracing::warn!(container = %s.docker_name, error = %e, "stop failed");
            }
        }
        self.refresh().await;
        for s in &mut self.slots {
            match &mut s.observed {
                Some(o) => {
                    if o.phase == Phase::Created {
                        o.exit_code = None;
                    }
                    o.phase = Phase::Exited;
                }
                // Never created: it stops without having run.
                None => {
                    s.observed = Some(Observed {
                        phase: Phase::Exited,
                        ..Observed::created("")
                    })
                }
            }
        }
        if let Some(network) = &self.network {
            self.shared
                .engine
                .tear_down_network(&self.task_id, self.pause.as_deref(), network)
                .await;
        }
        crate::cgroups::remove(&self.task_id);
        let now = crate::client::now();
        self.report.last_status = Some(STOPPED.into());
        self.report.execution_stopped_at = Some(now);
        self.report.stopped_at = Some(now);
        self.publish();
        self.shared.endpoints.forget(&self.task_arn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fake::FakeEngine;
    use berth_api::ecs::{ContainerDependency, HealthCheck};
    use std::collections::HashSet;

    const TASK: &str = "arn:aws:ecs:us-east-1:111111111111:task/prod/0123456789abcdef";

    fn shared(engine: Arc<FakeEngine>) -> Arc<Shared> {
        Arc::new(Shared {
            engine,
            container_instance_arn: "arn:aws:ecs:us-east-1:111111111111:container-instance/prod/i"
                .into(),
            cluster_arn: "arn:aws:ecs:us-east-1:111111111111:cluster/prod".into(),
            pull_behavior: PullBehavior::Always,
            reports: Default::default(),
            images: Default::default(),
            endpoints: crate::task_endpoint::Endpoints::new(
                b"test".to_vec(),
                Arc::new(crate::task_endpoint::tests::Unreachable),
                None,
            ),
            pulls: Default::default(),
            log_shipping: None,
            registry_logins: Arc::new(Logins(Some(RegistryAuth {
                username: "AWS".into(),
                password: "pw".into(),
                server: "127.0.0.1:4511".into(),
            }))),
            secrets: Arc::new(NoSecrets),
            nvidia_runtime: "nvidia".into(),
        })
    }

    /// A secret source that has none.
    struct NoSecrets;

    #[async_trait::async_trait]
    impl crate::secrets::SecretSource for NoSecrets {
        async fn secret(
            &self,
            _: &berth_api::agent::TaskCredentialsResponse,
            _: &str,
            _: &str,
            _: Option<&str>,
            _: Option<&str>,
        ) -> Result<String, String> {
            Err(
                "ResourceNotFoundException: Secrets Manager can't find the specified secret."
                    .into(),
            )
        }

        async fn parameters(
            &self,
            _: &berth_api::agent::TaskCredentialsResponse,
            _: &str,
            names: &[String],
        ) -> Result<Vec<(String, String)>, String> {
            Err(format!("invalid parameters: {}", names.join(", ")))
        }
    }

    /// ECR logins that always answer the same (None: this host gets none).
    struct Logins(Option<RegistryAuth>);

    #[async_trait::async_trait]
    impl crate::ecr_images::RegistryLogins for Logins {
        async fn login(
            &self,
            region: &str,
            _role: Option<&berth_api::agent::TaskCredentialsResponse>,
        ) -> Result<Option<RegistryAuth>, String> {
            assert_eq!(region, "eu-west-1", "a login is for the image's region");
            Ok(self.0.clone())
        }
    }

    #[tokio::test]
    async fn tasks_asking_for_an_image_being_pulled_share_that_pull() {
        let engine = Arc::new(FakeEngine::default());
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        *engine.pull_gate.lock().unwrap() = Some(gate.clone());
        let shared = shared(engine.clone());
        let asks = (0..5).map(|_| shared.pull("app:1", "", None));
        let other = shared.pull("app:1", "arn:aws:iam::111111111111:role/exec", None);
        let release = async {
            tokio::task::yield_now().await;
            gate.add_permits(2);
        };
        let (results, other, ()) =
            tokio::join!(futures_util::future::join_all(asks), other, release);
        assert!(results.iter().all(|r| r.is_ok()) && other.is_ok());
        // One pull for the five tasks, one for the task pulling as another identity.
        assert_eq!(engine.calls(), ["pull app:1", "pull app:1"]);
        assert!(shared.pulls.lock().unwrap().is_empty());
    }

    const ECR_IMAGE: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/web:v1";
    const MAPPED: &str = "127.0.0.1:4511/123456789012/eu-west-1/team/web:v1";

    #[tokio::test]
    async fn an_ecr_image_is_pulled_from_berths_registry_and_never_named_to_docker() {
        let engine = Arc::new(FakeEngine::default());
        let shared = shared(engine.clone());
        let _h = spawn(
            shared.clone(),
            &desired(vec![
                container("app", ECR_IMAGE),
                container("side", ECR_IMAGE),
            ]),
            &[],
        );
        report_until(&shared, |t| status(t) == RUNNING).await;
        let pulls: Vec<String> = engine
            .calls()
            .into_iter()
            .filter(|c| c.starts_with("pull"))
            .collect();
        assert_eq!(pulls, [format!("pull {MAPPED} as AWS@127.0.0.1:4511")]);
        let images = engine.images.lock().unwrap().clone();
        assert_eq!(
            images.get(&docker_name("app")).map(String::as_str),
            Some(MAPPED)
        );
        assert_eq!(
            images.get(&docker_name("side")).map(String::as_str),
            Some(MAPPED)
        );
        assert!(engine.calls().iter().all(|c| !c.contains("amazonaws.com")));
    }

    #[tokio::test]
    async fn a_failed_ecr_pull_names_the_image_as_written() {
        let engine = Arc::new(FakeEngine::default());
        engine.failing_pulls.lock().unwrap().insert(
            MAPPED.into(),
            format!("manifest for {MAPPED} not found: manifest unknown"),
        );
        let shared = shared(engine.clone());
        let _h = spawn(
            shared.clone(),
            &desired(vec![container("app", ECR_IMAGE)]),
            &[],
        );
        let t = report_until(&shared, |t| status(t) == STOPPED).await;
        assert_eq!(
            t.stopped_reason.as_deref(),
            Some(format!("CannotPullContainerError: manifest for {ECR_IMAGE} not found: manifest unknown").as_str())
        );
        assert!(engine.calls().iter().all(|c| !c.starts_with("create")));
    }

    #[tokio::test]
    async fn an_ecr_image_without_a_login_is_not_pulled() {
        let engine = Arc::new(FakeEngine::default());
        let mut s = Arc::into_inner(shared(engine.clone())).unwrap();
        s.registry_logins = Arc::new(Logins(None));
        let shared = Arc::new(s);
        let _h = spawn(
            shared.clone(),
            &desired(vec![container("app", ECR_IMAGE)]),
            &[],
        );
        let t = report_until(&shared, |t| status(t) == STOPPED).await;
        assert_eq!(
            t.stopped_reason.as_deref(),
            Some(format!("CannotPullContainerError: pull access denied for {ECR_IMAGE}: no basic auth credentials").as_str())
        );
        assert!(engine.calls().is_empty(), "{:?}", engine.calls());
    }

    fn container(name: &str, image: &str) -> ContainerDefinition {
        ContainerDefinition {
            name: Some(name.into()),
            image: Some(image.into()),
            ..Default::default()
        }
    }

    fn depends(mut c: ContainerDefinition, on: &str, condition: &str) -> ContainerDefinition {
        c.depends_on = Some(vec![ContainerDependency {
            container_name: Some(on.into()),
            condition: Some(condition.into()),
        }]);
        c
    }

    fn desired(containers: Vec<ContainerDefinition>) -> DesiredTask {
        DesiredTask {
            task: Task {
                task_arn: Some(TASK.into()),
                desired_status: Some(RUNNING.into()),
                last_status: Some("PROVISIONING".into()),
                ..Default::default()
            },
            task_definition: TaskDefinition {
                family: Some("web".into()),
                container_definitions: Some(containers),
                ..Default::default()
            },
            network: None,
        }
    }

    fn docker_name(container: &str) -> String {
        cc::docker_name("0123456789abcdef", container)
    }

    /// Waits (bounded) until the task's latest report satisfies `done`.
    async fn report_until(shared: &Shared, done: impl Fn(&Task) -> bool) -> Task {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let changed = shared.reports.changed.notified();
            if let Some(t) = shared.reports.latest(TASK).filter(|t| done(t)) {
                return t;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            assert!(
                !left.is_zero(),
                "last report: {:?}",
                shared.reports.latest(TASK)
            );
            let _ = tokio::time::timeout(left, changed).await;
        }
    }

    fn status(t: &Task) -> &str {
        t.last_status.as_deref().unwrap_or_default()
    }

    #[tokio::test]
    async fn a_failed_pull_stops_the_task_with_ecs_error() {
        let engine = Arc::new(FakeEngine::default());
        engine
            .failing_pulls
            .lock()
            .unwrap()
            .insert("private/app:1".into(), "pull access denied".into());
        let shared = shared(engine.clone());
        let _h = spawn(
            shared.clone(),
            &desired(vec![container("app", "private/app:1")]),
            &[],
        );
        let t = report_until(&shared, |t| status(t) == STOPPED).await;
        assert_eq!(t.stop_code.as_deref(), Some("TaskFailedToStart"));
        assert_eq!(
            t.stopped_reason.as_deref(),
            Some("CannotPullContainerError: pull access denied")
        );
        let c = &t.containers.unwrap()[0];
        assert_eq!(c.last_status.as_deref(), Some(STOPPED));
        assert_eq!(
            c.reason.as_deref(),
            Some("CannotPullContainerError: pull access denied")
        );
        assert!(
            engine.calls().iter().all(|c| !c.starts_with("create")),
            "nothing is created after a failed pull: {:?}",
            engine.calls()
        );
    }

    #[tokio::test]
    async fn a_container_starts_once_its_dependency_succeeds_and_an_essential_exit_ends_the_task() {
        let engine = Arc::new(FakeEngine::default());
        let shared = shared(engine.clone());
        let mut init = container("init", "init:1");
        init.essential = Some(false);
        let h = spawn(
            shared.clone(),
            &desired(vec![
                depends(container("app", "app:1"), "init", "SUCCESS"),
                init,
            ]),
            &[],
        );
        // init starts; app waits for it to succeed.
        report_until(&shared, |t| {
            t.containers.iter().flatten().any(|c| {
                c.name.as_deref() == Some("init") && c.last_status.as_deref() == Some(RUNNING)
            })
        })
        .await;
        let start_app = format!("start {}", docker_name("app"));
        assert!(!engine.calls().contains(&start_app));
        engine.set(&docker_name("init"), |o| {
            o.phase = Phase::Exited;
            o.exit_code = Some(0);
        });
        h.wake.notify_one();
        // A sidecar's exit does not end the task; app starts and the task runs.
        let t = report_until(&shared, |t| status(t) == RUNNING).await;
        let init = t
            .containers
            .iter()
            .flatten()
            .find(|c| c.name.as_deref() == Some("init"))
            .cloned()
            .unwrap();
        assert_eq!(
            (init.last_status.as_deref(), init.exit_code),
            (Some(STOPPED), Some(0))
        );
        assert!(engine.calls().contains(&start_app));
        // The essential container exits: the task stops, and says why.
        engine.set(&docker_name("app"), |o| {
            o.phase = Phase::Exited;
            o.exit_code = Some(1);
        });
        h.wake.notify_one();
        let t = report_until(&shared, |t| status(t) == STOPPED).await;
        assert_eq!(t.stop_code.as_deref(), Some("EssentialContainerExited"));
        assert_eq!(
            t.stopped_reason.as_deref(),
            Some("Essential container in task exited")
        );
    }

    #[tokio::test]
    async fn an_unhealthy_dependency_fails_the_task_and_names_it() {
        let engine = Arc::new(FakeEngine::default());
        let shared = shared(engine.clone());
        let mut db = container("db", "db:1");
        db.health_check = Some(HealthCheck::default());
        let h = spawn(
            shared.clone(),
            &desired(vec![
                db,
                depends(container("app", "app:1"), "db", "HEALTHY"),
            ]),
            &[],
        );
        report_until(&shared, |t| {
            t.containers.iter().flatten().any(|c| {
                c.name.as_deref() == Some("db") && c.last_status.as_deref() == Some(RUNNING)
            })
        })
        .await;
        engine.set(&docker_name("db"), |o| o.health = Some("UNHEALTHY".into()));
        h.wake.notify_one();
        let t = report_until(&shared, |t| status(t) == STOPPED).await;
        assert_eq!(t.stop_code.as_deref(), Some("TaskFailedToStart"));
        assert_eq!(
            t.stopped_reason.as_deref(),
            Some("dependency db of container app did not become HEALTHY")
        );
        let app = t
            .containers
            .iter()
            .flatten()
            .find(|c| c.name.as_deref() == Some("app"))
            .cloned()
            .unwrap();
        assert_eq!(
            app.reason.as_deref(),
            Some("DependencyViolation: dependency db of container app did not become HEALTHY")
        );
        assert!(!engine
            .calls()
            .contains(&format!("start {}", docker_name("app"))));
        // db was running: it is stopped with the default stop timeout.
        assert!(engine
            .calls()
            .contains(&format!("stop {} 30", docker_name("db"))));
    }

    #[tokio::test]
    async fn stop_task_stops_dependents_first_with_their_timeouts() {
        let engine = Arc::new(FakeEngine::default());
        let shared = shared(engine.clone());
        let mut app = depends(container("app", "app:1"), "db", "START");
        app.stop_timeout = Some(5);
        let h = spawn(
            shared.clone(),
            &desired(vec![container("db", "db:1"), app]),
            &[],
        );
        let t = report_until(&shared, |t| status(t) == RUNNING).await;
        assert_eq!(t.health_status.as_deref(), Some("UNKNOWN"));
        assert!(t.started_at.is_some());
        h.desired.send_replace(STOPPED.into());
        let t = report_until(&shared, |t| status(t) == STOPPED).await;
        assert_eq!(
            t.stop_code, None,
            "a requested stop has no runner stop code"
        );
        let stops: Vec<String> = engine
            .calls()
            .into_iter()
            .filter(|c| c.starts_with("stop "))
            .collect();
        assert_eq!(
            stops,
            [
                format!("stop {} 5", docker_name("app")),
                format!("stop {} 30", docker_name("db"))
            ]
        );
        let names: HashSet<String> = t
            .containers
            .iter()
            .flatten()
            .filter(|c| c.last_status.as_deref() == Some(STOPPED))
            .filter_map(|c| c.name.clone())
            .collect();
        assert_eq!(names, HashSet::from(["app".to_string(), "db".to_string()]));
    }
}
