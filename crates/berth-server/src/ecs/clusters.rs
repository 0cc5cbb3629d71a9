//! CreateCluster, DescribeClusters, ListClusters, UpdateCluster,
//! UpdateClusterSettings, DeleteCluster.
use super::account_settings::effective_value;
use super::Ctx;
pub use crate::lookup::{active_name, find_active, resolve_name};
use crate::state::index::{guarded_put, Index};
use crate::state::StoreKey;
use berth_api::ecs::*;
use berth_api::pagination::{page, PageLimits};
use berth_api::{ApiError, ErrorCode};
use berth_model::cluster::{self, ClusterCounts};
use berth_model::{arn, Scope};
use berth_store::Txn;

const LIST_LIMITS: PageLimits = PageLimits::new(100, 100);
const MAX_DESCRIBE: usize = 100;

/// What the cluster holds: instances not deregistered, tasks not STOPPED,
/// services not INACTIVE.
pub fn counts(index: &Index, scope: &Scope, name: &str) -> ClusterCounts {
    use berth_model::container_instance as ci;
    use berth_model::task::TaskStatus;
    let mut c = ClusterCounts::default();
    for (_, i) in index.container_instances_in(scope, name) {
        if i.value.status.as_deref() != Some(ci::INACTIVE) {
            c.registered_container_instances += 1;
        }
    }
    for (_, s) in index.services_in(scope, name) {
        if s.value.service.status.as_deref() != Some(berth_model::service::INACTIVE) {
            c.active_services += 1;
        }
    }
    for (_, t) in index.tasks_in(scope, name) {
        let t = &t.value.summary;
        if t.last_status == Some(TaskStatus::Running) {
            c.running_tasks += 1;
        } else if !t.is_stopped() {
            c.pending_tasks += 1;
        }
    }
    c
}

fn view(index: &Index, scope: &Scope, c: &Cluster, include: &[String]) -> Cluster {
    let name = c.cluster_name.as_deref().unwrap_or_default();
    cluster::view(c, include, counts(index, scope, name))
}

const FULL_VIEW: &[&str] = &["TAGS", "SETTINGS", "CONFIGURATIONS"];

fn full(index: &Index, scope: &Scope, c: &Cluster) -> Cluster {
    let include: Vec<String> = FULL_VIEW.iter().map(|s| s.to_string()).collect();
    view(index, scope, c, &include)
}

pub async fn create_cluster(
    ctx: &Ctx<'_>,
    req: CreateClusterRequest,
) -> Result<CreateClusterResponse, ApiError> {
    let scope = &ctx.scope;
    let lock = StoreKey::Cluster {
        scope: scope.clone(),
        name: req
            .cluster_name
            .clone()
            .unwrap_or_else(|| cluster::DEFAULT_CLUSTER.to_string()),
    };
    let cluster = ctx
        .state
        .mutate(&lock, |index| {
            let insights = effective_value(index, scope, &ctx.principal, "containerInsights").0;
            let new = cluster::create(scope, &req, &insights)?;
            let name = new.cluster_name.clone().unwrap_or_default();
            let key = StoreKey::Cluster {
                scope: scope.clone(),
                name: name.clone(),
            };
            if let Some(existing) = index.clusters.get(&(scope.clone(), name)) {
                // CreateCluster is idempotent: an ACTIVE cluster of that name is returned as it is.
                if existing.value.status.as_deref() == Some(cluster::ACTIVE) {
                    return Ok((Txn::new(), full(index, scope, &existing.value)));
                }
            }
            let active = index
                .clusters_in(scope)
                .filter(|c| c.value.status.as_deref() == Some(cluster::ACTIVE))
                .count();
            if active >= cluster::MAX_CLUSTERS {
                return Err(ApiError::new(
                    ErrorCode::LimitExceededException,
                    "Limit for number of clusters exceeded.",
                ));
            }
            let out = full(index, scope, &new);
            Ok((guarded_put(Txn::new(), index, &key, &new), out))
        })
        .await?;
    Ok(CreateClusterResponse {
        cluster: Some(cluster),
    })
}

pub async fn describe_clusters(
    ctx: &Ctx<'_>,
    req: DescribeClustersRequest,
) -> Result<DescribeClustersResponse, ApiError> {
    let names = req
        .clusters
        .unwrap_or_else(|| vec![cluster::DEFAULT_CLUSTER.to_string()]);
    if names.len() > MAX_DESCRIBE {
        return Err(ApiError::invalid_parameter(format!(
            "clusters can have at most {MAX_DESCRIBE} items."
        )));
    }
    let include = req.include.unwrap_or_default();
    let index = ctx.state.read();
    let (mut clusters, mut failures) = (vec![], vec![]);
    for given in names {
        let found = arn::cluster_name(&ctx.scope, &given)
            .and_then(|name| index.clusters.get(&(ctx.scope.clone(), name.into_owned())));
        match found {
            Some(c) => clusters.push(view(&index, &ctx.scope, &c.value, &include)),
            None => failures.push(super::missing(given, |n| arn::cluster(&ctx.scope, n))),
        }
    }
    Ok(DescribeClustersResponse {
        clusters: Some(clusters),
        failures: Some(failures),
    })
}

pub async fn list_clusters(
    ctx: &Ctx<'_>,
    req: ListClustersRequest,
) -> Result<ListClustersResponse, ApiError> {
    let index = ctx.state.read();
    let arns = index
        .clusters_in(&ctx.scope)
        .filter(|c| c.value.status.as_deref() == Some(cluster::ACTIVE))
        .filter_map(|c| c.value.cluster_arn.clone());
    let (arns, next) = page(
        arns,
        |a| a.clone(),
        req.max_results,
        req.next_token.as_deref(),
        LIST_LIMITS,
    )?;
    Ok(ListClustersResponse {
        cluster_arns: Some(arns),
        next_token: next,
    })
}

/// Applies `change` (given what the cluster holds) to an ACTIVE cluster and answers with its full view.
async fn update<F>(ctx: &Ctx<'_>, cluster_ref: Option<&str>, change: F) -> Result<Cluster, ApiError>
where
    F: Fn(&mut Cluster, ClusterCounts) -> Result<(), ApiError>,
{
    let scope = &ctx.scope;
    let lock = StoreKey::Cluster {
        scope: scope.clone(),
        name: resolve_name(scope, cluster_ref).unwrap_or_default(),
    };
    ctx.state
        .mutate(&lock, |index| {
            let current = find_active(index, scope, cluster_ref)?;
            let mut c = current.value.clone();
            let name = c.cluster_name.clone().unwrap_or_default();
            change(&mut c, counts(index, scope, &name))?;
            let key = StoreKey::Cluster {
                scope: scope.clone(),
                name,
            };
            let out = full(index, scope, &c);
            Ok((guarded_put(Txn::new(), index, &key, &c), out))
        })
        .await
}

pub async fn update_cluster(
    ctx: &Ctx<'_>,
    req: UpdateClusterRequest,
) -> Result<UpdateClusterResponse, ApiError> {
    if let Some(s) = &req.settings {
        cluster::validate_settings(s)?;
    }
    let c = update(ctx, req.cluster.as_deref(), |c, _| {
        if let Some(s) = &req.settings {
            c.settings = Some(cluster::merge_settings(
                c.settings.as_deref().unwrap_or_default(),
                s,
            ));
        }
        if let Some(conf) = &req.configuration {
            c.configuration = Some(conf.clone());
        }
        if let Some(sc) = &req.service_connect_defaults {
            c.service_connect_defaults = Some(ClusterServiceConnectDefaults {
                namespace: sc.namespace.clone(),
            });
        }
        Ok(())
    })
    .await?;
    Ok(UpdateClusterResponse { cluster: Some(c) })
}

pub async fn update_cluster_settings(
    ctx: &Ctx<'_>,
    req: UpdateClusterSettingsRequest,
) -> Result<UpdateClusterSettingsResponse, ApiError> {
    let settings = req.settings.unwrap_or_default();
    cluster::validate_settings(&settings)?;
    let c = update(ctx, req.cluster.as_deref(), |c, _| {
        c.settings = Some(cluster::merge_settings(
            c.settings.as_deref().unwrap_or_default(),
            &settings,
        ));
        Ok(())
    })
    .await?;
    Ok(UpdateClusterSettingsResponse { cluster: Some(c) })
}

pub async fn delete_cluster(
    ctx: &Ctx<'_>,
    req: DeleteClusterRequest,
) -> Result<DeleteClusterResponse, ApiError> {
    let c = update(ctx, req.cluster.as_deref(), |c, held| {
        cluster::check_deletable(held)?;
        // Deleted clusters stay visible to DescribeClusters as INACTIVE, as in ECS.
        c.status = Some(cluster::INACTIVE.into());
        Ok(())
    })
    .await?;
    Ok(DeleteClusterResponse { cluster: Some(c) })
}

pub async fn put_cluster_capacity_providers(
    ctx: &Ctx<'_>,
    req: PutClusterCapacityProvidersRequest,
) -> Result<PutClusterCapacityProvidersResponse, ApiError> {
    let providers = req.capacity_providers.unwrap_or_default();
    let strategy = cluster::normalized_strategy(
        req.default_capacity_provider_strategy
            .as_deref()
            .unwrap_or_default(),
    );
    cluster::validate_capacity_providers(&providers, &strategy)?;
    let c = update(ctx, req.cluster.as_deref(), |c, _| {
        c.capacity_providers = Some(providers.clone());
        c.default_capacity_provider_strategy = Some(strategy.clone());
        Ok(())
    })
    .await?;
    Ok(PutClusterCapacityProvidersResponse { cluster: Some(c) })
}
