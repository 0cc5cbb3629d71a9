//! RegisterContainerInstance, DescribeContainerInstances,
//! ListContainerInstances, DeregisterContainerInstance,
//! UpdateContainerInstancesState.
use super::clusters::{active_name, resolve_name};
use super::Ctx;
use crate::launch::instances::{facts, remaining, usage, Usage};
use crate::state::index::{guarded_put, Index, Versioned};
use crate::state::{State, StoreKey};
use berth_api::ecs::*;
use berth_api::pagination::{page, PageLimits};
use berth_api::ApiError;
use berth_model::container_instance::{self as ci, ACTIVE, DRAINING, INACTIVE};
use berth_model::task::{self};
use berth_model::{arn, Scope};
use berth_store::Txn;

const LIST_LIMITS: PageLimits = PageLimits::new(100, 100);

/// The instance as DescribeContainerInstances shows it.
pub fn view(
    state: &State,
    stored: &ContainerInstance,
    used: Option<&Usage>,
    with_tags: bool,
) -> ContainerInstance {
    let mut c = stored.clone();
    let arn = c.container_instance_arn.clone().unwrap_or_default();
    c.remaining_resources = Some(remaining(stored, used).to_resources());
    c.running_tasks_count = Some(used.map_or(0, |u| u.running));
    c.pending_tasks_count = Some(used.map_or(0, |u| u.pending));
    c.agent_connected = Some(c.status.as_deref() != Some(INACTIVE) && state.agent_connected(&arn));
    if !with_tags {
        c.tags = None;
    }
    c
}

/// The (cluster, id) a request's container instance reference names.
pub(super) fn resolve(scope: &Scope, cluster: &str, given: &str) -> Option<String> {
    match arn::cluster_scoped_id(scope, "container-instance", given)? {
        (Some(c), id) if c == cluster => Some(id),
        (Some(_), _) => None,
        (None, id) => Some(id),
    }
}

pub async fn register_container_instance(
    ctx: &Ctx<'_>,
    req: RegisterContainerInstanceRequest,
) -> Result<RegisterContainerInstanceResponse, ApiError> {
    let scope = &ctx.scope;
    let name = resolve_name(scope, req.cluster.as_deref()).unwrap_or_default();
    let id = match req.container_instance_arn.as_deref() {
        Some(given) => resolve(scope, &name, given).ok_or_else(|| {
            ApiError::invalid_parameter(
                "containerInstanceArn does not name a container instance of this cluster.",
            )
        })?,
        None => uuid::Uuid::new_v4().simple().to_string(),
    };
    let key = StoreKey::container_instance(scope, &name, &id);
    let registered = ctx
        .state
        .mutate(&key, |index| {
            let cluster = active_name(index, scope, req.cluster.as_deref())?;
            let previous =
                index
                    .container_instances
                    .get(&(scope.clone(), cluster.clone(), id.clone()));
            if req.container_instance_arn.is_some() && previous.is_none() {
                return Err(ApiError::invalid_parameter(
                    "The referenced container instance was not found.",
                ));
            }
            let new = ci::register(
                scope,
                &cluster,
                &id,
                previous.map(|p| &p.value),
                &req,
                ctx.now,
            )?;
            let key = StoreKey::container_instance(scope, &cluster, &id);
            Ok((guarded_put(Txn::new(), index, &key, &new), new))
        })
        .await?;
    let arn = registered
        .container_instance_arn
        .clone()
        .unwrap_or_default();
    ctx.state.heartbeat(&arn);
    let index = ctx.state.read();
    let used = usage(&index, scope, &name);
    Ok(RegisterContainerInstanceResponse {
        container_instance: Some(view(ctx.state, &registered, used.get(&arn), true)),
    })
}

pub async fn describe_container_instances(
    ctx: &Ctx<'_>,
    req: DescribeContainerInstancesRequest,
) -> Result<DescribeContainerInstancesResponse, ApiError> {
    let scope = &ctx.scope;
    let given = req.container_instances.unwrap_or_default();
    let with_tags = req.include.unwrap_or_default().iter().any(|i| i == "TAGS");
    let index = ctx.state.read();
    // ECS looks for the cluster before it looks at the list.
    let cluster = active_name(&index, scope, req.cluster.as_deref())?;
    super::describe_list_ok(&given, "Container Instances")?;
    let used = usage(&index, scope, &cluster);
    let (mut found, mut failures) = (vec![], vec![]);
    for g in given {
        let record = resolve(scope, &cluster, &g).and_then(|id| {
            index
                .container_instances
                .get(&(scope.clone(), cluster.clone(), id))
        });
        match record {
            Some(r) => {
                let arn = r.value.container_instance_arn.clone().unwrap_or_default();
                found.push(view(ctx.state, &r.value, used.get(&arn), with_tags));
            }
            None => failures.push(missing(scope, &cluster, &g)),
        }
    }
    Ok(DescribeContainerInstancesResponse {
        container_instances: Some(found),
        failures: Some(failures),
    })
}

fn missing(scope: &Scope, cluster: &str, given: &str) -> Failure {
    super::missing(given.to_string(), |id| {
        arn::container_instance(scope, cluster, id)
    })
}

pub async fn list_container_instances(
    ctx: &Ctx<'_>,
    req: ListContainerInstancesRequest,
) -> Result<ListContainerInstancesResponse, ApiError> {
    let scope = &ctx.scope;
    let filter = match req.filter.as_deref().filter(|f| !f.trim().is_empty()) {
        Some(f) => Some(berth_sched::query::parse(f).map_err(|why| {
            ApiError::invalid_parameter(format!("The filter expression is invalid: {why}."))
        })?),
        None => None,
    };
    let index = ctx.state.read();
    let cluster = active_name(&index, scope, req.cluster.as_deref())?;
    let used = usage(&index, scope, &cluster);
    let wanted = req.status.clone();
    let arns = index
        .container_instances_in(scope, &cluster)
        .filter(|(_, v)| match &wanted {
            Some(s) => v.value.status.as_ref() == Some(s),
            // Without a status filter ECS lists ACTIVE and DRAINING instances.
            None => v.value.status.as_deref() != Some(INACTIVE),
        })
        .filter(|(_, v)| {
            filter.as_ref().is_none_or(|f| {
                let arn = v
                    .value
                    .container_instance_arn
                    .as_deref()
                    .unwrap_or_default();
                f.eval(&facts(ctx.state, &v.value, used.get(arn)))
            })
        })
        .filter_map(|(_, v)| v.value.container_instance_arn.clone());
    let (arns, next) = page(
        arns,
        |a| a.clone(),
        req.max_results,
        req.next_token.as_deref(),
        LIST_LIMITS,
    )?;
    Ok(ListContainerInstancesResponse {
        container_instance_arns: Some(arns),
        next_token: next,
    })
}

/// Finds one container instance of an ACTIVE cluster, or ECS's error for a missing one.
fn find<'a>(
    index: &'a Index,
    scope: &Scope,
    cluster: &str,
    given: &str,
) -> Result<(String, &'a Versioned<ContainerInstance>), ApiError> {
    resolve(scope, cluster, given)
        .and_then(|id| {
            index
                .container_instances
                .get(&(scope.clone(), cluster.to_string(), id.clone()))
                .map(|v| (id, v))
        })
        .ok_or_else(|| {
            ApiError::invalid_parameter("The referenced container instance was not found.")
        })
}

pub async fn deregister_container_instance(
    ctx: &Ctx<'_>,
    req: DeregisterContainerInstanceRequest,
) -> Result<DeregisterContainerInstanceResponse, ApiError> {
    let scope = &ctx.scope;
    let name = resolve_name(scope, req.cluster.as_deref()).unwrap_or_default();
    let given = req.container_instance.clone().unwrap_or_default();
    let lock = StoreKey::Cluster {
        scope: scope.clone(),
        name: name.clone(),
    };
    let out = ctx
        .state
        .mutate(&lock, |index| {
            let cluster = active_name(index, scope, req.cluster.as_deref())?;
            let (id, current) = find(index, scope, &cluster, &given)?;
            let arn = current.value.container_instance_arn.clone().unwrap_or_default();
            let active: Vec<_> = index.tasks_on(scope, &cluster, &arn).collect();
            if !active.is_empty() && req.force != Some(true) {
                return Err(ApiError::invalid_parameter(
                    "Found running tasks on the instance. Stop them first or deregister with force.",
                ));
            }
            let mut txn = Txn::new();
            // Forced: its tasks are asked to stop, so nothing keeps running unaccounted for.
            for (task_id, t) in active {
                let mut record = t.value.record();
                if task::request_stop(
                    &mut record.task,
                    task::USER_INITIATED,
                    "Container instance deregistration forced by user",
                    ctx.now,
                ) {
                    let key = StoreKey::Task {
                        scope: scope.clone(),
                        cluster: cluster.clone(),
                        id: task_id.to_string(),
                    };
                    txn = guarded_put(txn, index, &key, &record);
                }
            }
            let mut c = current.value.clone();
            c.status = Some(INACTIVE.into());
            c.version = Some(c.version.unwrap_or(0) + 1);
            txn = guarded_put(txn, index, &StoreKey::container_instance(scope, &cluster, &id), &c);
            Ok((txn, c))
        })
        .await?;
    Ok(DeregisterContainerInstanceResponse {
        container_instance: Some(view(ctx.state, &out, None, true)),
    })
}

pub async fn update_container_instances_state(
    ctx: &Ctx<'_>,
    req: UpdateContainerInstancesStateRequest,
) -> Result<UpdateContainerInstancesStateResponse, ApiError> {
    let scope = &ctx.scope;
    let status = req.status.clone().unwrap_or_default();
    if status != ACTIVE && status != DRAINING {
        return Err(ApiError::invalid_parameter(
            "Container instances status must be ACTIVE or DRAINING.",
        ));
    }
    let given = req.container_instances.clone().unwrap_or_default();
    if given.is_empty() || given.len() > 10 {
        return Err(ApiError::invalid_parameter(
            "containerInstances must have between 1 and 10 items.",
        ));
    }
    let name = resolve_name(scope, req.cluster.as_deref()).unwrap_or_default();
    let lock = StoreKey::Cluster {
        scope: scope.clone(),
        name,
    };
    let (cluster, changed, failures) = ctx
        .state
        .mutate(&lock, |index| {
            let cluster = active_name(index, scope, req.cluster.as_deref())?;
            let (mut txn, mut changed, mut failures) = (Txn::new(), vec![], vec![]);
            for g in &given {
                let Ok((id, current)) = find(index, scope, &cluster, g) else {
                    failures.push(missing(scope, &cluster, g));
                    continue;
                };
                let mut c = current.value.clone();
                if c.status.as_deref() == Some(INACTIVE) {
                    failures.push(Failure {
                        arn: c.container_instance_arn.clone(),
                        reason: Some("INACTIVE".into()),
                        detail: None,
                    });
                    continue;
                }
                if c.status.as_deref() != Some(status.as_str()) {
                    c.status = Some(status.clone());
                    c.version = Some(c.version.unwrap_or(0) + 1);
                    txn = guarded_put(
                        txn,
                        index,
                        &StoreKey::container_instance(scope, &cluster, &id),
                        &c,
                    );
                }
                changed.push(c);
            }
            Ok((txn, (cluster, changed, failures)))
        })
        .await?;
    let index = ctx.state.read();
    let used = usage(&index, scope, &cluster);
    let views = changed
        .iter()
        .map(|c| {
            let arn = c.container_instance_arn.clone().unwrap_or_default();
            view(ctx.state, c, used.get(&arn), false)
        })
        .collect();
    Ok(UpdateContainerInstancesStateResponse {
        container_instances: Some(views),
        failures: Some(failures),
    })
}

/// Where agents poll: this server, by the host the caller reached it at (berth's agent
/// channel, telemetry and Service Connect all answer on the one endpoint).
pub async fn discover_poll_endpoint(
    ctx: &Ctx<'_>,
    _req: DiscoverPollEndpointRequest,
) -> Result<DiscoverPollEndpointResponse, ApiError> {
    let host = ctx
        .host
        .as_deref()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| {
            ApiError::new(
                berth_api::ErrorCode::ClientException,
                "The request has no Host header to answer with.",
            )
        })?;
    let endpoint = format!("http://{host}/");
    Ok(DiscoverPollEndpointResponse {
        endpoint: Some(endpoint.clone()),
        telemetry_endpoint: Some(endpoint.clone()),
        service_connect_endpoint: Some(endpoint),
    })
}
