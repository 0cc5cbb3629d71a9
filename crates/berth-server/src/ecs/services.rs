//! CreateService, UpdateService, DeleteService, DescribeServices,
//! ListServices. These only record what is wanted; the service controller
//! (crate::controller::services) makes it so.
use super::clusters::{active_name, resolve_name};
use super::tasks::{capacity_in, runnable_on, unsupported};
use super::Ctx;
use crate::launch::placement_rules;
use crate::state::index::{guarded_put, Index, ServiceRecord, Versioned};
use crate::state::StoreKey;
use crate::task_enis;
use berth_api::ecs::*;
use berth_api::pagination::{page, PageLimits};
use berth_api::{ApiError, ErrorCode};
use berth_model::fargate::Capacity;
use berth_model::service::{self as svc, Fresh};
use berth_model::Scope;
use berth_store::Txn;

const LIST_LIMITS: PageLimits = PageLimits::new(10, 100);
const MAX_DESCRIBE: usize = 10;

fn not_found() -> ApiError {
    ApiError::new(ErrorCode::ServiceNotFoundException, "Service not found.")
}

/// Service writers and the controller take turns per cluster, like task launches.
fn cluster_turn(scope: &Scope, cluster: Option<&str>) -> StoreKey {
    StoreKey::Cluster {
        scope: scope.clone(),
        name: resolve_name(scope, cluster).unwrap_or_default(),
    }
}

fn find<'a>(
    index: &'a Index,
    scope: &Scope,
    cluster: &str,
    given: &str,
) -> Option<&'a Versioned<ServiceRecord>> {
    let name = svc::name_of(scope, cluster, given)?;
    index
        .services
        .get(&(scope.clone(), cluster.to_string(), name.to_string()))
}

/// ECS's rules for a service on Fargate.
fn check_fargate_service(
    capacity: &Capacity,
    scheduling: Option<&str>,
    constraints: &[PlacementConstraint],
    strategies: &[PlacementStrategy],
) -> Result<(), ApiError> {
    if let Capacity::Fargate(_) = capacity {
        if scheduling == Some(svc::DAEMON) {
            return Err(ApiError::invalid_parameter(
                "The daemon scheduling strategy is not supported with the FARGATE launch type.",
            ));
        }
        if !constraints.is_empty() || !strategies.is_empty() {
            return Err(ApiError::invalid_parameter(
                "Task placement constraints and strategies are not supported for tasks with the FARGATE launch type.",
            ));
        }
    }
    Ok(())
}

/// A service as responses show it (tags only when asked for).
fn view(s: &ServiceRecord, with_tags: bool) -> Service {
    let mut out = s.service.clone();
    if !with_tags {
        out.tags = None;
    }
    out
}

pub async fn create_service(
    ctx: &Ctx<'_>,
    req: CreateServiceRequest,
) -> Result<CreateServiceResponse, ApiError> {
    let scope = &ctx.scope;
    let deployment_id = crate::ids::deployment_id();
    let record = ctx
        .state
        .mutate(&cluster_turn(scope, req.cluster.as_deref()), |index| {
            let cluster = active_name(index, scope, req.cluster.as_deref())?;
            let name = req.service_name.clone().unwrap_or_default();
            if let Some(existing) = find(index, scope, &cluster, &name) {
                match existing.value.service.status.as_deref() {
                    Some(svc::ACTIVE) => {
                        return Err(ApiError::invalid_parameter(
                            "Creation of service was not idempotent.",
                        ))
                    }
                    Some(svc::DRAINING) => {
                        return Err(ApiError::invalid_parameter(
                            "Unable to Start a service that is still Draining.",
                        ))
                    }
                    _ => {}
                }
            }
            let held = index
                .services_in(scope, &cluster)
                .filter(|(_, s)| s.value.service.status.as_deref() != Some(svc::INACTIVE))
                .count();
            if held >= svc::MAX_SERVICES_PER_CLUSTER {
                return Err(ApiError::new(
                    ErrorCode::LimitExceededException,
                    "The cluster already holds the maximum number of services (5000).",
                ));
            }
            let strategy = req.capacity_provider_strategy.clone().unwrap_or_default();
            let capacity = capacity_in(
                index,
                scope,
                &cluster,
                req.launch_type.as_deref(),
                &strategy,
                0,
            )?;
            let td_given = req.task_definition.clone().unwrap_or_default();
            let definition = runnable_on(
                index,
                scope,
                &td_given,
                &capacity,
                req.platform_version.as_deref(),
            )?;
            let td_arn = definition.task_definition_arn.clone().unwrap_or_default();
            check_fargate_service(
                &capacity,
                req.scheduling_strategy.as_deref(),
                req.placement_constraints.as_deref().unwrap_or_default(),
                req.placement_strategy.as_deref().unwrap_or_default(),
            )?;
            task_enis::check(
                index,
                scope,
                definition,
                capacity.launch_type(),
                req.network_configuration.as_ref(),
                ctx.state.public_ip_pool(),
            )?;
            placement_rules(
                req.placement_constraints.as_deref().unwrap_or_default(),
                req.placement_strategy.as_deref().unwrap_or_default(),
                definition,
            )?;
            // Without a launch type or strategy, a service takes the cluster's default strategy.
            let mut req = req.clone();
            if req.launch_type.is_none() && strategy.is_empty() {
                if let Capacity::Fargate(_) = capacity {
                    req.capacity_provider_strategy = index
                        .clusters
                        .get(&(scope.clone(), cluster.clone()))
                        .and_then(|c| c.value.default_capacity_provider_strategy.clone());
                }
            }
            let service = svc::create(
                scope,
                &cluster,
                &req,
                &td_arn,
                &ctx.principal,
                &Fresh {
                    deployment_id: &deployment_id,
                    now: ctx.now,
                },
            )?;
            let record = ServiceRecord {
                service,
                last_completed: None,
                steady: false,
                counted_failures: Default::default(),
            };
            let key = StoreKey::service(scope, &cluster, &name);
            Ok((guarded_put(Txn::new(), index, &key, &record), record))
        })
        .await?;
    Ok(CreateServiceResponse {
        service: Some(view(&record, true)),
    })
}

pub async fn update_service(
    ctx: &Ctx<'_>,
    req: UpdateServiceRequest,
) -> Result<UpdateServiceResponse, ApiError> {
    let scope = &ctx.scope;
    if req
        .capacity_provider_strategy
        .as_ref()
        .is_some_and(|c| !c.is_empty())
    {
        return Err(unsupported("capacityProviderStrategy"));
    }
    let given = req.service.clone().unwrap_or_default();
    let deployment_id = crate::ids::deployment_id();
    let record = ctx
        .state
        .mutate(&cluster_turn(scope, req.cluster.as_deref()), |index| {
            let cluster = active_name(index, scope, req.cluster.as_deref())?;
            let current = find(index, scope, &cluster, &given).ok_or_else(not_found)?;
            let mut record = current.value.clone();
            let s = &mut record.service;
            let mut redeploy = svc::update(s, &req)?;
            let capacity = capacity_in(
                index,
                scope,
                &cluster,
                s.launch_type.as_deref(),
                s.capacity_provider_strategy.as_deref().unwrap_or_default(),
                0,
            )?;
            let platform = req
                .platform_version
                .as_deref()
                .or(s.platform_version.as_deref());
            let td_given = req
                .task_definition
                .clone()
                .or_else(|| s.task_definition.clone())
                .unwrap_or_default();
            let definition = runnable_on(index, scope, &td_given, &capacity, platform)?;
            let td_arn = definition.task_definition_arn.clone().unwrap_or_default();
            redeploy |= s.task_definition.as_deref() != Some(td_arn.as_str());
            let network = req.network_configuration.as_ref();
            task_enis::check(
                index,
                scope,
                definition,
                capacity.launch_type(),
                network.or(s.network_configuration.as_ref()),
                ctx.state.public_ip_pool(),
            )?;
            check_fargate_service(
                &capacity,
                s.scheduling_strategy.as_deref(),
                s.placement_constraints.as_deref().unwrap_or_default(),
                s.placement_strategy.as_deref().unwrap_or_default(),
            )?;
            placement_rules(
                s.placement_constraints.as_deref().unwrap_or_default(),
                s.placement_strategy.as_deref().unwrap_or_default(),
                definition,
            )?;
            if redeploy {
                svc::deploy(
                    s,
                    &td_arn,
                    &Fresh {
                        deployment_id: &deployment_id,
                        now: ctx.now,
                    },
                );
            } else if let Some(d) = s
                .deployments
                .iter_mut()
                .flatten()
                .find(|d| d.status.as_deref() == Some(svc::PRIMARY))
            {
                d.desired_count = s.desired_count;
                d.updated_at = Some(ctx.now);
            }
            let name = s.service_name.clone().unwrap_or_default();
            let key = StoreKey::service(scope, &cluster, &name);
            Ok((guarded_put(Txn::new(), index, &key, &record), record))
        })
        .await?;
    Ok(UpdateServiceResponse {
        service: Some(view(&record, true)),
    })
}

pub async fn delete_service(
    ctx: &Ctx<'_>,
    req: DeleteServiceRequest,
) -> Result<DeleteServiceResponse, ApiError> {
    let scope = &ctx.scope;
    let given = req.service.clone().unwrap_or_default();
    let force = req.force.unwrap_or(false);
    let record = ctx
        .state
        .mutate(&cluster_turn(scope, req.cluster.as_deref()), |index| {
            let cluster = active_name(index, scope, req.cluster.as_deref())?;
            let current = find(index, scope, &cluster, &given)
                .filter(|s| s.value.service.status.as_deref() != Some(svc::INACTIVE))
                .ok_or_else(not_found)?;
            let mut record = current.value.clone();
            let s = &mut record.service;
            if s.status.as_deref() == Some(svc::DRAINING) {
                return Ok((Txn::new(), record));
            }
            let replica = s.scheduling_strategy.as_deref() != Some(svc::DAEMON);
            if replica && s.desired_count.unwrap_or(0) > 0 && !force {
                return Err(ApiError::invalid_parameter(
                    "The service cannot be stopped while it is scaled above 0.",
                ));
            }
            // The controller stops its tasks and then marks it INACTIVE.
            s.status = Some(svc::DRAINING.into());
            s.desired_count = Some(0);
            for d in s.deployments.iter_mut().flatten() {
                d.desired_count = Some(0);
                d.updated_at = Some(ctx.now);
            }
            let name = s.service_name.clone().unwrap_or_default();
            let key = StoreKey::service(scope, &cluster, &name);
            Ok((guarded_put(Txn::new(), index, &key, &record), record))
        })
        .await?;
    Ok(DeleteServiceResponse {
        service: Some(view(&record, true)),
    })
}

pub async fn describe_services(
    ctx: &Ctx<'_>,
    req: DescribeServicesRequest,
) -> Result<DescribeServicesResponse, ApiError> {
    let scope = &ctx.scope;
    let given = req.services.unwrap_or_default();
    if given.is_empty() || given.len() > MAX_DESCRIBE {
        return Err(ApiError::invalid_parameter(format!(
            "services must have between 1 and {MAX_DESCRIBE} items."
        )));
    }
    let with_tags = req.include.unwrap_or_default().iter().any(|i| i == "TAGS");
    let index = ctx.state.read();
    let cluster = active_name(&index, scope, req.cluster.as_deref())?;
    let (mut services, mut failures) = (vec![], vec![]);
    for g in given {
        match find(&index, scope, &cluster, &g) {
            Some(s) => services.push(view(&s.value, with_tags)),
            // ECS names a missing service given bare in the short form, without its cluster.
            None => failures.push(super::missing(g, |n| {
                format!("arn:aws:ecs:{}:{}:service/{n}", scope.region, scope.account)
            })),
        }
    }
    Ok(DescribeServicesResponse {
        services: Some(services),
        failures: Some(failures),
    })
}

pub async fn list_services(
    ctx: &Ctx<'_>,
    req: ListServicesRequest,
) -> Result<ListServicesResponse, ApiError> {
    let scope = &ctx.scope;
    let index = ctx.state.read();
    let cluster = active_name(&index, scope, req.cluster.as_deref())?;
    let arns = index
        .services_in(scope, &cluster)
        .map(|(_, v)| &v.value.service)
        .filter(|s| {
            s.status.as_deref() != Some(svc::INACTIVE)
                && req
                    .launch_type
                    .as_ref()
                    .is_none_or(|l| s.launch_type.as_ref() == Some(l))
                && req
                    .scheduling_strategy
                    .as_ref()
                    .is_none_or(|l| s.scheduling_strategy.as_ref() == Some(l))
        })
        .filter_map(|s| s.service_arn.clone());
    let (arns, next) = page(
        arns,
        |a| a.clone(),
        req.max_results,
        req.next_token.as_deref(),
        LIST_LIMITS,
    )?;
    Ok(ListServicesResponse {
        service_arns: Some(arns),
        next_token: next,
    })
}
