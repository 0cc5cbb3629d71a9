//! RunTask, StartTask, StopTask, DescribeTasks, ListTasks.
use super::clusters::{active_name, resolve_name};
use super::{failure, Ctx};
use crate::launch::{self, placement_rules, Launch};
use crate::state::index::{guarded_put, Index, Versioned};
use crate::state::indexed_task::IndexedTask;
use crate::state::StoreKey;
use crate::task_enis;
use berth_api::ecs::*;
use berth_api::pagination::{page, PageLimits};
use berth_api::{ApiError, ErrorCode};
use berth_model::fargate::{self, Capacity};
use berth_model::task;
use berth_model::task::TaskStatus;
use berth_model::task_definition as td;
use berth_model::{arn, tags, Scope};
use berth_store::Txn;

const LIST_LIMITS: PageLimits = PageLimits::new(100, 100);
const MAX_START_INSTANCES: usize = 10;
const MAX_STARTED_BY: usize = 128;
const EC2: &str = "EC2";

/// What RunTask and StartTask share.
struct LaunchRequest {
    placement_constraints: Vec<PlacementConstraint>,
    placement_strategy: Vec<PlacementStrategy>,
    cluster: Option<String>,
    task_definition: Option<String>,
    overrides: Option<TaskOverride>,
    group: Option<String>,
    started_by: Option<String>,
    tags: Vec<Tag>,
    network: Option<NetworkConfiguration>,
    launch_type: Option<String>,
    capacity_provider_strategy: Vec<CapacityProviderStrategyItem>,
    platform_version: Option<String>,
}

/// Where the new tasks go.
enum Targets {
    /// `count` copies wherever they fit.
    Placed(usize),
    /// One copy on each named container instance.
    On(Vec<String>),
}

pub fn unsupported(what: &str) -> ApiError {
    ApiError::new(
        ErrorCode::UnsupportedFeatureException,
        format!("berth does not support {what} yet."),
    )
}

fn check_request(req: &LaunchRequest) -> Result<(), ApiError> {
    tags::validate(&req.tags)?;
    if req
        .started_by
        .as_deref()
        .is_some_and(|s| s.len() > MAX_STARTED_BY)
    {
        return Err(ApiError::invalid_parameter(
            "startedBy can be at most 128 characters.",
        ));
    }
    if req
        .task_definition
        .as_deref()
        .unwrap_or_default()
        .is_empty()
    {
        return Err(ApiError::invalid_parameter("taskDefinition is required."));
    }
    Ok(())
}

/// The task definition revision a launch names, active.
pub fn active_definition<'a>(
    index: &'a Index,
    scope: &Scope,
    given: &str,
) -> Result<&'a TaskDefinition, ApiError> {
    let not_found = || ApiError::client("TaskDefinition not found.");
    let r = td::parse_reference(scope, given).ok_or_else(not_found)?;
    let found = crate::lookup::task_definition(index, scope, &r).ok_or_else(not_found)?;
    let t = &found.value.task_definition;
    if t.status.as_deref() != Some(td::ACTIVE) {
        return Err(ApiError::client("TaskDefinition is inactive"));
    }
    Ok(t)
}

/// The capacity a service or launch asks for, with the cluster's default strategy.
pub fn capacity_in(
    index: &Index,
    scope: &Scope,
    cluster: &str,
    launch_type: Option<&str>,
    strategy: &[CapacityProviderStrategyItem],
    count: usize,
) -> Result<Capacity, ApiError> {
    let stored = index
        .clusters
        .get(&(scope.clone(), cluster.to_string()))
        .map(|c| &c.value);
    fargate::capacity(
        launch_type,
        strategy,
        stored
            .and_then(|c| c.default_capacity_provider_strategy.as_deref())
            .unwrap_or_default(),
        stored
            .and_then(|c| c.capacity_providers.as_deref())
            .unwrap_or_default(),
        count,
    )
}

/// The task definition revision a launch names, ready to run on that capacity.
pub fn runnable_on<'a>(
    index: &'a Index,
    scope: &Scope,
    given: &str,
    capacity: &Capacity,
    platform_version: Option<&str>,
) -> Result<&'a TaskDefinition, ApiError> {
    if given.is_empty() {
        return Err(ApiError::invalid_parameter("taskDefinition is required."));
    }
    match capacity {
        Capacity::Ec2 => runnable(index, scope, given),
        Capacity::Fargate(_) => {
            let t = active_definition(index, scope, given)?;
            fargate::check_launch(t, platform_version)?;
            Ok(t)
        }
    }
}

/// The task definition revision a launch names, ready to run on EC2.
pub fn runnable<'a>(
    index: &'a Index,
    scope: &Scope,
    given: &str,
) -> Result<&'a TaskDefinition, ApiError> {
    let t = active_definition(index, scope, given)?;
    let compat = t.requires_compatibilities.as_deref().unwrap_or_default();
    if !compat.is_empty() && !compat.iter().any(|c| c == EC2) {
        return Err(ApiError::invalid_parameter(
            "Task definition does not support launch_type EC2.",
        ));
    }
    Ok(t)
}

async fn launch(
    ctx: &Ctx<'_>,
    req: LaunchRequest,
    targets: Targets,
) -> Result<(Vec<Task>, Vec<Failure>), ApiError> {
    check_request(&req)?;
    let scope = &ctx.scope;
    // Placements in one cluster take turns, so two launches never count the same free capacity.
    let lock = StoreKey::Cluster {
        scope: scope.clone(),
        name: resolve_name(scope, req.cluster.as_deref()).unwrap_or_default(),
    };
    let seed = uuid::Uuid::new_v4().as_u64_pair().0;
    ctx.state
        .mutate(&lock, |index| {
            let cluster = active_name(index, scope, req.cluster.as_deref())?;
            let l = resolve(ctx, index, &cluster, &req, &targets, seed)?;
            let launched =
                launch::plan(ctx.state, index, scope, &cluster, &l, ctx.now).map_err(|_| {
                    ApiError::invalid_parameter(
                        "No Container Instances were found in your cluster.",
                    )
                })?;
            let failures = launched
                .refusals
                .iter()
                .map(|r| {
                    let (what, why) = r.failure(scope, &cluster);
                    failure(what, &why)
                })
                .collect();
            let tasks = launched.tasks.into_iter().map(|(_, r)| r.task).collect();
            Ok((launched.txn, (tasks, failures)))
        })
        .await
        .inspect(|(_, failures): &(Vec<Task>, Vec<Failure>)| {
            for f in failures {
                let reason = f.reason.as_deref().unwrap_or_default();
                ctx.state.metrics().placement_failure(reason);
            }
        })
}

/// A RunTask or StartTask resolved against the index: ECS's checks of the
/// task definition, the capacity, the network and the placement rules.
fn resolve<'a>(
    ctx: &Ctx<'_>,
    index: &'a Index,
    cluster: &str,
    req: &'a LaunchRequest,
    targets: &Targets,
    seed: u64,
) -> Result<Launch<'a>, ApiError> {
    let scope = &ctx.scope;
    let given = req.task_definition.as_deref().unwrap_or_default();
    let capacity = match targets {
        Targets::Placed(count) => capacity_in(
            index,
            scope,
            cluster,
            req.launch_type.as_deref(),
            &req.capacity_provider_strategy,
            *count,
        )?,
        Targets::On(_) => Capacity::Ec2,
    };
    let (definition, launch_type) = match &capacity {
        Capacity::Fargate(_) => (
            runnable_on(
                index,
                scope,
                given,
                &Capacity::Fargate(vec![]),
                req.platform_version.as_deref(),
            )?,
            fargate::FARGATE,
        ),
        Capacity::Ec2 => (runnable(index, scope, given)?, EC2),
    };
    let fargate_rules = !req.placement_constraints.is_empty() || !req.placement_strategy.is_empty();
    if launch_type == fargate::FARGATE && fargate_rules {
        return Err(ApiError::invalid_parameter(
            "Task placement constraints and strategies are not supported for tasks with the FARGATE launch type.",
        ));
    }
    let network = task_enis::check(
        index,
        scope,
        definition,
        launch_type,
        req.network.as_ref(),
        ctx.state.public_ip_pool(),
    )?;
    if launch_type == fargate::FARGATE && network.is_none() {
        return Err(ApiError::invalid_parameter(
            "Fargate only supports network mode 'awsvpc'.",
        ));
    }
    task::validate_overrides(definition, req.overrides.as_ref())?;
    let targets = match (capacity, targets) {
        (Capacity::Fargate(providers), _) => {
            let ephemeral = req
                .overrides
                .as_ref()
                .and_then(|o| o.ephemeral_storage.as_ref())
                .and_then(|e| e.size_in_gi_b);
            launch::Targets::Fleet {
                providers,
                ephemeral_gib: fargate::ephemeral_gib(definition, ephemeral)?,
            }
        }
        (Capacity::Ec2, Targets::Placed(count)) => launch::Targets::Placed {
            count: *count,
            on: vec![],
            rules: placement_rules(
                &req.placement_constraints,
                &req.placement_strategy,
                definition,
            )?,
        },
        (Capacity::Ec2, Targets::On(given)) => launch::Targets::Named(given.clone()),
    };
    Ok(Launch {
        definition,
        overrides: req.overrides.as_ref(),
        group: req.group.as_deref(),
        started_by: req.started_by.as_deref(),
        tags: &req.tags,
        network,
        targets,
        seed,
    })
}

pub async fn run_task(ctx: &Ctx<'_>, req: RunTaskRequest) -> Result<RunTaskResponse, ApiError> {
    let count = req.count.unwrap_or(1);
    if !(1..=task::MAX_RUN_COUNT).contains(&count) {
        return Err(ApiError::invalid_parameter(
            "count must be between 1 and 10.",
        ));
    }
    let (tasks, failures) = launch(
        ctx,
        LaunchRequest {
            placement_constraints: req.placement_constraints.unwrap_or_default(),
            placement_strategy: req.placement_strategy.unwrap_or_default(),
            cluster: req.cluster,
            task_definition: req.task_definition,
            overrides: req.overrides,
            group: req.group,
            started_by: req.started_by,
            tags: req.tags.unwrap_or_default(),
            network: req.network_configuration,
            launch_type: req.launch_type,
            capacity_provider_strategy: req.capacity_provider_strategy.unwrap_or_default(),
            platform_version: req.platform_version,
        },
        Targets::Placed(count as usize),
    )
    .await?;
    Ok(RunTaskResponse {
        tasks: Some(tasks),
        failures: Some(failures),
    })
}

pub async fn start_task(
    ctx: &Ctx<'_>,
    req: StartTaskRequest,
) -> Result<StartTaskResponse, ApiError> {
    let instances = req.container_instances.unwrap_or_default();
    if instances.is_empty() || instances.len() > MAX_START_INSTANCES {
        return Err(ApiError::invalid_parameter(
            "containerInstances must have between 1 and 10 items.",
        ));
    }
    let (tasks, failures) = launch(
        ctx,
        LaunchRequest {
            // StartTask places where it is told: no constraints or strategies apply.
            placement_constraints: vec![],
            placement_strategy: vec![],
            cluster: req.cluster,
            task_definition: req.task_definition,
            overrides: req.overrides,
            group: req.group,
            started_by: req.started_by,
            tags: req.tags.unwrap_or_default(),
            network: req.network_configuration,
            launch_type: None,
            capacity_provider_strategy: vec![],
            platform_version: None,
        },
        Targets::On(instances),
    )
    .await?;
    Ok(StartTaskResponse {
        tasks: Some(tasks),
        failures: Some(failures),
    })
}

/// The (id, record) a task reference names in a cluster.
pub(super) fn find_task<'a>(
    index: &'a Index,
    scope: &Scope,
    cluster: &str,
    given: &str,
) -> Option<(String, &'a Versioned<IndexedTask>)> {
    let (c, id) = arn::cluster_scoped_id(scope, "task", given)?;
    if c.as_deref().is_some_and(|c| c != cluster) {
        return None;
    }
    index
        .tasks
        .get(&(scope.clone(), cluster.to_string(), id.clone()))
        .map(|v| (id, v))
}

pub async fn stop_task(ctx: &Ctx<'_>, req: StopTaskRequest) -> Result<StopTaskResponse, ApiError> {
    let scope = &ctx.scope;
    let given = req.task.clone().unwrap_or_default();
    let reason = req
        .reason
        .clone()
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "Task stopped by user".into());
    let cluster = resolve_name(scope, req.cluster.as_deref()).unwrap_or_default();
    let lock = match arn::cluster_scoped_id(scope, "task", &given) {
        Some((_, id)) => StoreKey::task(scope, &cluster, &id),
        None => StoreKey::task(scope, &cluster, ""),
    };
    let t = ctx
        .state
        .mutate(&lock, |index| {
            let cluster = active_name(index, scope, req.cluster.as_deref())?;
            let (id, current) = find_task(index, scope, &cluster, &given)
                .ok_or_else(|| ApiError::invalid_parameter("The referenced task was not found."))?;
            let mut record = current.value.record();
            if !task::request_stop(&mut record.task, task::USER_INITIATED, &reason, ctx.now) {
                return Ok((Txn::new(), record.task));
            }
            let txn = guarded_put(
                Txn::new(),
                index,
                &StoreKey::task(scope, &cluster, &id),
                &record,
            );
            Ok((txn, record.task))
        })
        .await?;
    Ok(StopTaskResponse { task: Some(t) })
}

pub async fn describe_tasks(
    ctx: &Ctx<'_>,
    req: DescribeTasksRequest,
) -> Result<DescribeTasksResponse, ApiError> {
    let scope = &ctx.scope;
    let given = req.tasks.unwrap_or_default();
    let with_tags = req.include.unwrap_or_default().iter().any(|i| i == "TAGS");
    let index = ctx.state.read();
    // ECS looks for the cluster before it looks at the list.
    let cluster = active_name(&index, scope, req.cluster.as_deref())?;
    super::describe_list_ok(&given, "Tasks")?;
    let (mut tasks, mut failures) = (vec![], vec![]);
    for g in given {
        match find_task(&index, scope, &cluster, &g) {
            Some((_, r)) => {
                let mut t = r.value.task();
                if !with_tags {
                    t.tags = None;
                }
                tasks.push(t);
            }
            None => failures.push(super::missing(g, |id| arn::task(scope, &cluster, id))),
        }
    }
    Ok(DescribeTasksResponse {
        tasks: Some(tasks),
        failures: Some(failures),
    })
}

pub async fn list_tasks(
    ctx: &Ctx<'_>,
    req: ListTasksRequest,
) -> Result<ListTasksResponse, ApiError> {
    let scope = &ctx.scope;
    let index = ctx.state.read();
    let cluster = active_name(&index, scope, req.cluster.as_deref())?;
    let instance = match req.container_instance.as_deref() {
        Some(g) => Some(
            arn::cluster_scoped_id(scope, "container-instance", g)
                .map(|(_, id)| arn::container_instance(scope, &cluster, &id))
                .ok_or_else(|| {
                    ApiError::invalid_parameter("The referenced container instance was not found.")
                })?,
        ),
        None => None,
    };
    // ECS lists tasks whose desired status is RUNNING unless told otherwise.
    let desired = req
        .desired_status
        .clone()
        .unwrap_or_else(|| task::RUNNING.into());
    let group = req.service_name.as_ref().map(|s| format!("service:{s}"));
    let family = req.family.clone();
    let arns = index
        .tasks_in(scope, &cluster)
        .filter(|(_, v)| {
            let (t, r) = (&v.value.summary, &v.value);
            t.desired_status.map(TaskStatus::as_str) == Some(desired.as_str())
                && instance
                    .as_ref()
                    .is_none_or(|i| t.container_instance_arn.as_deref() == Some(i.as_str()))
                && family
                    .as_ref()
                    .is_none_or(|f| r.task_definition.family.as_ref() == Some(f))
                && req
                    .started_by
                    .as_ref()
                    .is_none_or(|s| t.started_by.as_deref() == Some(s.as_str()))
                && group
                    .as_ref()
                    .is_none_or(|g| t.group.as_deref() == Some(g.as_str()))
                && req
                    .launch_type
                    .as_ref()
                    .is_none_or(|l| t.launch_type.as_deref() == Some(l.as_str()))
        })
        .map(|(id, _)| arn::task(scope, &cluster, id));
    let (arns, next) = page(
        arns,
        |a| a.clone(),
        req.max_results,
        req.next_token.as_deref(),
        LIST_LIMITS,
    )?;
    Ok(ListTasksResponse {
        task_arns: Some(arns),
        next_token: next,
    })
}
