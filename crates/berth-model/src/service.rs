//! Services: how CreateService and UpdateService shape one, its deployments
//! (PRIMARY, ACTIVE), and the events it tells its user what happened with.
use crate::{arn, names, tags, Scope};
use berth_api::ecs::{
    CreateServiceRequest, Deployment, DeploymentCircuitBreaker, DeploymentConfiguration,
    DeploymentController, Service, ServiceEvent, UpdateServiceRequest,
};
use berth_api::ApiError;

pub const ACTIVE: &str = "ACTIVE";
pub const DRAINING: &str = "DRAINING";
pub const INACTIVE: &str = "INACTIVE";

pub const PRIMARY: &str = "PRIMARY";

pub const REPLICA: &str = "REPLICA";
pub const DAEMON: &str = "DAEMON";

pub const IN_PROGRESS: &str = "IN_PROGRESS";
pub const COMPLETED: &str = "COMPLETED";
pub const FAILED: &str = "FAILED";

/// A deployment's status: the one being rolled out, the older ones still
/// running tasks, and the ones gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeploymentStatus {
    Primary,
    Active,
    Inactive,
}

impl DeploymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentStatus::Primary => PRIMARY,
            DeploymentStatus::Active => ACTIVE,
            DeploymentStatus::Inactive => INACTIVE,
        }
    }

    pub fn of(d: &Deployment) -> Option<DeploymentStatus> {
        [
            DeploymentStatus::Primary,
            DeploymentStatus::Active,
            DeploymentStatus::Inactive,
        ]
        .into_iter()
        .find(|s| d.status.as_deref() == Some(s.as_str()))
    }
}

/// A deployment's rollout, in the order it moves: IN_PROGRESS, then
/// COMPLETED or FAILED.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RolloutState {
    InProgress,
    Completed,
    Failed,
}

impl RolloutState {
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutState::InProgress => IN_PROGRESS,
            RolloutState::Completed => COMPLETED,
            RolloutState::Failed => FAILED,
        }
    }

    pub fn of(d: &Deployment) -> Option<RolloutState> {
        [
            RolloutState::InProgress,
            RolloutState::Completed,
            RolloutState::Failed,
        ]
        .into_iter()
        .find(|s| d.rollout_state.as_deref() == Some(s.as_str()))
    }
}

/// ECS keeps this many of a service's most recent events.
pub const MAX_EVENTS: usize = 100;
/// ECS's quota of services per cluster.
pub const MAX_SERVICES_PER_CLUSTER: usize = 5_000;

const PROPAGATE_TAGS: &[&str] = &["TASK_DEFINITION", "SERVICE", "NONE"];

/// Fresh values a new service or deployment needs, chosen by the caller.
pub struct Fresh<'a> {
    pub deployment_id: &'a str,
    pub now: f64,
}

/// The group every task of a service carries (ListTasks `serviceName` and placement count it).
pub fn task_group(service_name: &str) -> String {
    format!("service:{service_name}")
}

pub fn arn(scope: &Scope, cluster: &str, name: &str) -> String {
    format!(
        "arn:aws:ecs:{}:{}:service/{cluster}/{name}",
        scope.region, scope.account
    )
}

/// The service name a reference (name or ARN) gives, if it belongs to `cluster`.
pub fn name_of<'a>(scope: &Scope, cluster: &str, given: &'a str) -> Option<&'a str> {
    if !given.starts_with("arn:") {
        return Some(given);
    }
    let prefix = format!("arn:aws:ecs:{}:{}:service/", scope.region, scope.account);
    let rest = given.strip_prefix(&prefix)?;
    match rest.split_once('/') {
        Some((c, name)) if c == cluster => Some(name),
        Some(_) => None,
        // Old-format ARNs carry no cluster.
        None => Some(rest),
    }
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::invalid_parameter(message)
}

fn strategy(s: Option<&str>) -> &str {
    s.unwrap_or(REPLICA)
}

/// ECS's defaults: REPLICA 100/200, DAEMON 0/100, circuit breaker off.
fn deployment_configuration(
    given: Option<&DeploymentConfiguration>,
    scheduling: &str,
) -> Result<DeploymentConfiguration, ApiError> {
    let (min, max) = if scheduling == DAEMON {
        (0, 100)
    } else {
        (100, 200)
    };
    let mut c = given.cloned().unwrap_or_default();
    let minimum = *c.minimum_healthy_percent.get_or_insert(min);
    let maximum = *c.maximum_percent.get_or_insert(max);
    if !(0..=100).contains(&minimum) {
        return Err(invalid("minimumHealthyPercent must be between 0 and 100."));
    }
    if maximum < 100 && !(scheduling == DAEMON && maximum == 100) {
        return Err(invalid("maximumPercent must be at least 100."));
    }
    if minimum == 100 && maximum == 100 {
        return Err(invalid(
            "The service cannot be deployed with minimumHealthyPercent 100 and maximumPercent 100: no task could ever be replaced.",
        ));
    }
    let breaker = c
        .deployment_circuit_breaker
        .get_or_insert_with(DeploymentCircuitBreaker::default);
    breaker.enable.get_or_insert(false);
    breaker.rollback.get_or_insert(false);
    Ok(c)
}

fn check_unsupported_members(
    load_balancers: bool,
    registries: bool,
    controller: Option<&DeploymentController>,
) -> Result<(), ApiError> {
    let unsupported = |what: &str| {
        ApiError::new(
            berth_api::ErrorCode::UnsupportedFeatureException,
            format!("berth does not support {what} yet."),
        )
    };
    if load_balancers {
        return Err(unsupported("loadBalancers"));
    }
    if registries {
        return Err(unsupported("serviceRegistries"));
    }
    match controller.and_then(|c| c.r#type.as_deref()) {
        None | Some("ECS") => Ok(()),
        Some(other) => Err(unsupported(&format!("the {other} deployment controller"))),
    }
}

fn check_propagate_tags(p: Option<&str>) -> Result<(), ApiError> {
    match p {
        Some(v) if !PROPAGATE_TAGS.contains(&v) => Err(invalid(format!(
            "propagateTags must be one of TASK_DEFINITION, SERVICE, NONE; got {v}."
        ))),
        _ => Ok(()),
    }
}

fn check_grace_period(g: Option<i32>) -> Result<(), ApiError> {
    match g {
        Some(g) if g < 0 => Err(invalid("healthCheckGracePeriodSeconds must be 0 or more.")),
        _ => Ok(()),
    }
}

/// A PRIMARY deployment of `task_definition`, just begun.
pub fn deployment(
    task_definition: &str,
    desired: i32,
    launch_type: Option<&str>,
    fresh: &Fresh<'_>,
) -> Deployment {
    Deployment {
        id: Some(fresh.deployment_id.into()),
        status: Some(PRIMARY.into()),
        task_definition: Some(task_definition.into()),
        desired_count: Some(desired),
        pending_count: Some(0),
        running_count: Some(0),
        failed_tasks: Some(0),
        created_at: Some(fresh.now),
        updated_at: Some(fresh.now),
        launch_type: launch_type.map(Into::into),
        rollout_state: Some(IN_PROGRESS.into()),
        rollout_state_reason: Some(format!(
            "ECS deployment {} in progress.",
            fresh.deployment_id
        )),
        ..Default::default()
    }
}

/// A new ACTIVE service as CreateService makes it. The task definition ARN is resolved by the caller.
pub fn create(
    scope: &Scope,
    cluster: &str,
    req: &CreateServiceRequest,
    task_definition_arn: &str,
    principal: &str,
    fresh: &Fresh<'_>,
) -> Result<Service, ApiError> {
    let name = req.service_name.clone().unwrap_or_default();
    if !names::is_valid_name(&name) {
        return Err(invalid(
            "Service names can have up to 255 letters (uppercase and lowercase), numbers, underscores, and hyphens.",
        ));
    }
    // A service role is for registering tasks with load balancers: alone it says nothing.
    if req.role.is_some() && req.load_balancers.as_ref().is_none_or(|l| l.is_empty()) {
        return Err(invalid(
            "A role was passed, but no load balancers were present.",
        ));
    }
    let scheduling = strategy(req.scheduling_strategy.as_deref());
    if scheduling != REPLICA && scheduling != DAEMON {
        return Err(invalid(format!(
            "schedulingStrategy must be REPLICA or DAEMON; got {scheduling}."
        )));
    }
    let desired = match (scheduling, req.desired_count) {
        (DAEMON, Some(_)) => {
            return Err(invalid(
                "The daemon scheduling strategy does not support a desired count for services.",
            ))
        }
        (DAEMON, None) => 0,
        (_, Some(d)) if d < 0 => return Err(invalid("desiredCount must be 0 or more.")),
        (_, d) => d.unwrap_or(0),
    };
    if scheduling == DAEMON
        && req
            .placement_strategy
            .as_ref()
            .is_some_and(|s| !s.is_empty())
    {
        return Err(invalid(
            "The daemon scheduling strategy does not support placement strategies.",
        ));
    }
    check_unsupported_members(
        req.load_balancers.as_ref().is_some_and(|l| !l.is_empty()),
        req.service_registries
            .as_ref()
            .is_some_and(|l| !l.is_empty()),
        req.deployment_controller.as_ref(),
    )?;
    check_propagate_tags(req.propagate_tags.as_deref())?;
    check_grace_period(req.health_check_grace_period_seconds)?;
    let service_tags = req.tags.clone().unwrap_or_default();
    tags::validate(&service_tags)?;
    let config = deployment_configuration(req.deployment_configuration.as_ref(), scheduling)?;
    let strategy = crate::cluster::normalized_strategy(
        req.capacity_provider_strategy
            .as_deref()
            .unwrap_or_default(),
    );
    // A capacity provider strategy stands instead of a launch type.
    let launch_type = match (&req.launch_type, strategy.is_empty()) {
        (Some(l), _) => Some(l.clone()),
        (None, true) => Some(crate::fargate::EC2.to_string()),
        (None, false) => None,
    };
    let fargate = launch_type.as_deref() == Some(crate::fargate::FARGATE)
        || strategy.iter().any(|i| {
            i.capacity_provider
                .as_deref()
                .is_some_and(|p| p.starts_with("FARGATE"))
        });
    Ok(with_network_on_deployments(Service {
        service_arn: Some(arn(scope, cluster, &name)),
        service_name: Some(name),
        cluster_arn: Some(arn::cluster(scope, cluster)),
        load_balancers: Some(vec![]),
        service_registries: Some(vec![]),
        status: Some(ACTIVE.into()),
        desired_count: Some(desired),
        running_count: Some(0),
        pending_count: Some(0),
        launch_type: launch_type.clone(),
        capacity_provider_strategy: (!strategy.is_empty()).then(|| strategy.clone()),
        platform_version: fargate.then(|| {
            req.platform_version
                .clone()
                .unwrap_or_else(|| "LATEST".into())
        }),
        platform_family: fargate.then(|| "Linux".into()),
        task_definition: Some(task_definition_arn.into()),
        deployment_configuration: Some(config),
        deployments: Some(vec![deployment(
            task_definition_arn,
            desired,
            launch_type.as_deref(),
            fresh,
        )]),
        events: Some(vec![]),
        created_at: Some(fresh.now),
        placement_constraints: Some(req.placement_constraints.clone().unwrap_or_default()),
        placement_strategy: Some(req.placement_strategy.clone().unwrap_or_default()),
        health_check_grace_period_seconds: req.health_check_grace_period_seconds,
        scheduling_strategy: Some(scheduling.into()),
        deployment_controller: Some(DeploymentController {
            r#type: Some("ECS".into()),
        }),
        tags: Some(service_tags),
        created_by: Some(principal.into()),
        enable_ecs_managed_tags: Some(req.enable_ecs_managed_tags.unwrap_or(false)),
        propagate_tags: Some(req.propagate_tags.clone().unwrap_or_else(|| "NONE".into())),
        enable_execute_command: Some(req.enable_execute_command.unwrap_or(false)),
        network_configuration: req.network_configuration.clone(),
        ..Default::default()
    }))
}

/// Each deployment carries the network configuration its tasks start with.
fn with_network_on_deployments(mut s: Service) -> Service {
    let network = s.network_configuration.clone();
    let strategy = s.capacity_provider_strategy.clone();
    let (platform, family) = (s.platform_version.clone(), s.platform_family.clone());
    for d in s.deployments.iter_mut().flatten() {
        if d.status.as_deref() == Some(PRIMARY) {
            d.network_configuration = network.clone();
            d.capacity_provider_strategy = strategy.clone();
            d.platform_version = platform.clone();
            d.platform_family = family.clone();
        }
    }
    s
}

/// Starts a new PRIMARY deployment; the one it supersedes stays ACTIVE until its tasks are gone.
pub fn deploy(s: &mut Service, task_definition: &str, fresh: &Fresh<'_>) {
    let launch_type = s.launch_type.clone();
    let desired = s.desired_count.unwrap_or(0);
    let deployments = s.deployments.get_or_insert_with(Vec::new);
    for d in deployments.iter_mut() {
        if d.status.as_deref() == Some(PRIMARY) {
            d.status = Some(ACTIVE.into());
            d.updated_at = Some(fresh.now);
        }
    }
    let mut d = deployment(task_definition, desired, launch_type.as_deref(), fresh);
    d.network_configuration = s.network_configuration.clone();
    d.capacity_provider_strategy = s.capacity_provider_strategy.clone();
    d.platform_version = s.platform_version.clone();
    d.platform_family = s.platform_family.clone();
    deployments.insert(0, d);
    s.task_definition = Some(task_definition.into());
}

/// UpdateService's changes other than the task definition (resolved by the
/// caller). Returns whether a new deployment is needed.
pub fn update(s: &mut Service, req: &UpdateServiceRequest) -> Result<bool, ApiError> {
    if s.status.as_deref() != Some(ACTIVE) {
        return Err(ApiError::new(
            berth_api::ErrorCode::ServiceNotActiveException,
            "Service was not ACTIVE.",
        ));
    }
    let scheduling = strategy(s.scheduling_strategy.as_deref()).to_string();
    check_unsupported_members(
        req.load_balancers.as_ref().is_some_and(|l| !l.is_empty()),
        req.service_registries
            .as_ref()
            .is_some_and(|l| !l.is_empty()),
        req.deployment_controller.as_ref(),
    )?;
    check_propagate_tags(req.propagate_tags.as_deref())?;
    check_grace_period(req.health_check_grace_period_seconds)?;
    let mut redeploy = req.force_new_deployment.unwrap_or(false);
    if let Some(d) = req.desired_count {
        if scheduling == DAEMON {
            return Err(invalid(
                "The daemon scheduling strategy does not support a desired count for services.",
            ));
        }
        if d < 0 {
            return Err(invalid("desiredCount must be 0 or more."));
        }
        s.desired_count = Some(d);
    }
    if let Some(c) = &req.deployment_configuration {
        let mut merged = s.deployment_configuration.clone().unwrap_or_default();
        if c.minimum_healthy_percent.is_some() {
            merged.minimum_healthy_percent = c.minimum_healthy_percent;
        }
        if c.maximum_percent.is_some() {
            merged.maximum_percent = c.maximum_percent;
        }
        if c.deployment_circuit_breaker.is_some() {
            merged.deployment_circuit_breaker = c.deployment_circuit_breaker.clone();
        }
        s.deployment_configuration = Some(deployment_configuration(Some(&merged), &scheduling)?);
    }
    if let Some(p) = &req.placement_strategy {
        if scheduling == DAEMON && !p.is_empty() {
            return Err(invalid(
                "The daemon scheduling strategy does not support placement strategies.",
            ));
        }
        s.placement_strategy = Some(p.clone());
        redeploy = true;
    }
    if let Some(p) = &req.placement_constraints {
        s.placement_constraints = Some(p.clone());
        redeploy = true;
    }
    if req.health_check_grace_period_seconds.is_some() {
        s.health_check_grace_period_seconds = req.health_check_grace_period_seconds;
    }
    if let Some(n) = &req.network_configuration {
        // New tasks need the new network: ECS starts a deployment for it.
        s.network_configuration = Some(n.clone());
        redeploy = true;
    }
    if let Some(p) = &req.propagate_tags {
        s.propagate_tags = Some(p.clone());
    }
    if let Some(e) = req.enable_ecs_managed_tags {
        s.enable_ecs_managed_tags = Some(e);
    }
    if let Some(e) = req.enable_execute_command {
        s.enable_execute_command = Some(e);
    }
    Ok(redeploy)
}

/// Records an event, newest first, keeping ECS's last 100.
pub fn push_event(s: &mut Service, id: String, message: String, now: f64) {
    let events = s.events.get_or_insert_with(Vec::new);
    events.insert(
        0,
        ServiceEvent {
            id: Some(id),
            created_at: Some(now),
            message: Some(message),
        },
    );
    events.truncate(MAX_EVENTS);
}

pub fn primary(s: &Service) -> Option<&Deployment> {
    s.deployments
        .iter()
        .flatten()
        .find(|d| d.status.as_deref() == Some(PRIMARY))
}

/// The (minimumHealthyPercent, maximumPercent) in force.
pub fn limits(s: &Service) -> (u32, u32) {
    let c = s.deployment_configuration.clone().unwrap_or_default();
    (
        c.minimum_healthy_percent.unwrap_or(100).max(0) as u32,
        c.maximum_percent.unwrap_or(200).max(0) as u32,
    )
}

/// (circuit breaker on, rollback on).
pub fn circuit_breaker(s: &Service) -> (bool, bool) {
    let b = s
        .deployment_configuration
        .as_ref()
        .and_then(|c| c.deployment_circuit_breaker.as_ref());
    (
        b.and_then(|b| b.enable).unwrap_or(false),
        b.and_then(|b| b.rollback).unwrap_or(false),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> Scope {
        Scope::new("111122223333", "us-east-1")
    }

    fn fresh(id: &str) -> Fresh<'_> {
        Fresh {
            deployment_id: id,
            now: 1.0,
        }
    }

    fn request(name: &str) -> CreateServiceRequest {
        CreateServiceRequest {
            service_name: Some(name.into()),
            desired_count: Some(2),
            ..Default::default()
        }
    }

    #[test]
    fn create_fills_ecs_defaults() {
        let s = create(
            &scope(),
            "c",
            &request("web"),
            "td:1",
            "p",
            &fresh("ecs-svc/1"),
        )
        .unwrap();
        assert_eq!(
            s.service_arn.as_deref(),
            Some("arn:aws:ecs:us-east-1:111122223333:service/c/web")
        );
        let c = s.deployment_configuration.as_ref().unwrap();
        assert_eq!(
            (c.minimum_healthy_percent, c.maximum_percent),
            (Some(100), Some(200))
        );
        let d = primary(&s).unwrap();
        assert_eq!(d.desired_count, Some(2));
        assert_eq!(d.rollout_state.as_deref(), Some(IN_PROGRESS));
        assert_eq!(s.scheduling_strategy.as_deref(), Some(REPLICA));
    }

    #[test]
    fn create_refuses_what_ecs_refuses() {
        let bad = |r: CreateServiceRequest| {
            create(&scope(), "c", &r, "td:1", "p", &fresh("x")).unwrap_err()
        };
        assert!(bad(request("has space")).message.contains("letters"));
        let mut r = request("web");
        r.role = Some("ecsServiceRole".into());
        let refused = bad(r);
        assert_eq!(
            (refused.code, refused.message.as_str()),
            (
                berth_api::ErrorCode::InvalidParameterException,
                "A role was passed, but no load balancers were present."
            )
        );
        let mut r = request("web");
        r.desired_count = Some(-1);
        assert!(bad(r).message.contains("desiredCount"));
        let mut r = request("web");
        r.scheduling_strategy = Some(DAEMON.into());
        assert!(bad(r).message.contains("desired count"));
        let mut r = request("web");
        r.deployment_configuration = Some(DeploymentConfiguration {
            minimum_healthy_percent: Some(150),
            ..Default::default()
        });
        assert!(bad(r).message.contains("minimumHealthyPercent"));
    }

    #[test]
    fn deploy_demotes_the_old_primary() {
        let mut s = create(
            &scope(),
            "c",
            &request("web"),
            "td:1",
            "p",
            &fresh("ecs-svc/1"),
        )
        .unwrap();
        deploy(&mut s, "td:2", &fresh("ecs-svc/2"));
        let ds = s.deployments.as_ref().unwrap();
        assert_eq!(ds.len(), 2);
        assert_eq!(ds[0].status.as_deref(), Some(PRIMARY));
        assert_eq!(ds[0].task_definition.as_deref(), Some("td:2"));
        assert_eq!(ds[1].status.as_deref(), Some(ACTIVE));
    }

    #[test]
    fn service_names_resolve_within_their_cluster() {
        let s = scope();
        assert_eq!(name_of(&s, "c", "web"), Some("web"));
        assert_eq!(name_of(&s, "c", &arn(&s, "c", "web")), Some("web"));
        assert_eq!(name_of(&s, "c", &arn(&s, "other", "web")), None);
    }

    #[test]
    fn events_are_newest_first_and_capped() {
        let mut s = Service::default();
        for i in 0..105 {
            push_event(&mut s, i.to_string(), format!("m{i}"), i as f64);
        }
        let e = s.events.unwrap();
        assert_eq!(e.len(), MAX_EVENTS);
        assert_eq!(e[0].message.as_deref(), Some("m104"));
    }

    #[test]
    fn deployment_states_read_from_the_wire_members() {
        let d = Deployment {
            status: Some("PRIMARY".into()),
            rollout_state: Some("FAILED".into()),
            ..Default::default()
        };
        assert_eq!(DeploymentStatus::of(&d), Some(DeploymentStatus::Primary));
        assert_eq!(RolloutState::of(&d), Some(RolloutState::Failed));
        assert_eq!(RolloutState::of(&Deployment::default()), None);
        assert!(RolloutState::InProgress < RolloutState::Completed);
        assert_eq!(DeploymentStatus::Active.as_str(), "ACTIVE");
    }
}
