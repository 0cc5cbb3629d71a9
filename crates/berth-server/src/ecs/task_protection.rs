//! UpdateTaskProtection and GetTaskProtection: scale-in protection of a service's
//! tasks, kept on the task record, read by the service controller.
use super::clusters::{active_name, resolve_name};
use super::tasks::find_task;
use super::Ctx;
use crate::state::index::{guarded_put, Index, Versioned};
use crate::state::indexed_task::IndexedTask;
use crate::state::StoreKey;
use berth_api::ecs::*;
use berth_api::ApiError;
use berth_model::task::TaskStatus;
use berth_model::task_protection as rules;
use berth_model::{arn, Scope};
use berth_store::Txn;

/// The named task of a service that may be protected, with its record; or why not,
/// as ECS words it in `failures`.
fn protectable<'a>(
    index: &'a Index,
    scope: &Scope,
    cluster: &str,
    given: &str,
) -> Result<(String, &'a Versioned<IndexedTask>), Failure> {
    let Some((id, t)) = find_task(index, scope, cluster, given) else {
        return Err(super::missing(given.to_string(), |id| {
            arn::task(scope, cluster, id)
        }));
    };
    let s = &t.value.summary;
    let reason = if !s
        .group
        .as_deref()
        .unwrap_or_default()
        .starts_with("service:")
    {
        "The task does not belong to a service."
    } else if s.is_stopped() || s.desired_status == Some(TaskStatus::Stopped) {
        "The task is stopped or stopping."
    } else {
        return Ok((id, t));
    };
    Err(Failure {
        arn: Some(arn::task(scope, cluster, &id)),
        reason: Some("TASK_NOT_VALID".into()),
        detail: Some(reason.into()),
    })
}

pub async fn update_task_protection(
    ctx: &Ctx<'_>,
    req: UpdateTaskProtectionRequest,
) -> Result<UpdateTaskProtectionResponse, ApiError> {
    let scope = &ctx.scope;
    let given = req.tasks.clone().unwrap_or_default();
    rules::check_tasks(&given)?;
    let until = rules::expiry(
        req.protection_enabled.unwrap_or_default(),
        req.expires_in_minutes,
        ctx.now,
    )?;
    let lock = StoreKey::Cluster {
        scope: scope.clone(),
        name: resolve_name(scope, req.cluster.as_deref()).unwrap_or_default(),
    };
    let (protected, failures) = ctx
        .state
        .mutate(&lock, |index| {
            let cluster = active_name(index, scope, req.cluster.as_deref())?;
            let (mut txn, mut protected, mut failures) = (Txn::new(), vec![], vec![]);
            for g in &given {
                let (id, current) = match protectable(index, scope, &cluster, g) {
                    Ok(found) => found,
                    Err(f) => {
                        failures.push(f);
                        continue;
                    }
                };
                let mut record = current.value.record();
                record.protected_until = until;
                txn = guarded_put(txn, index, &StoreKey::task(scope, &cluster, &id), &record);
                protected.push(rules::view(
                    &arn::task(scope, &cluster, &id),
                    until,
                    ctx.now,
                ));
            }
            Ok((txn, (protected, failures)))
        })
        .await?;
    Ok(UpdateTaskProtectionResponse {
        protected_tasks: Some(protected),
        failures: Some(failures),
    })
}

pub async fn get_task_protection(
    ctx: &Ctx<'_>,
    req: GetTaskProtectionRequest,
) -> Result<GetTaskProtectionResponse, ApiError> {
    let scope = &ctx.scope;
    let index = ctx.state.read();
    let cluster = active_name(&index, scope, req.cluster.as_deref())?;
    // Without a list: the cluster's tasks protected now.
    let given = match req.tasks.clone() {
        Some(given) => {
            rules::check_tasks(&given)?;
            given
        }
        None => index
            .tasks_in(scope, &cluster)
            .filter(|(_, t)| rules::holds(t.value.summary.protected_until, ctx.now))
            .map(|(id, _)| id.to_string())
            .collect(),
    };
    let (mut protected, mut failures) = (vec![], vec![]);
    for g in &given {
        match protectable(&index, scope, &cluster, g) {
            Ok((id, t)) => {
                let until = t.value.summary.protected_until;
                protected.push(rules::view(
                    &arn::task(scope, &cluster, &id),
                    until,
                    ctx.now,
                ));
            }
            Err(f) => failures.push(f),
        }
    }
    Ok(GetTaskProtectionResponse {
        protected_tasks: Some(protected),
        failures: Some(failures),
    })
}
