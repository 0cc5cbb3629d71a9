//! The server side of the agent channel: long polls for the tasks desired on
//! an instance (which double as its heartbeat) and reports of actual state.
use crate::context::Ctx;
use crate::lookup::active_name;
use crate::state::index::{guarded_put, Index};
use crate::state::StoreKey;
use crate::task_enis;
use berth_api::agent::*;
use berth_api::{ApiError, ErrorCode};
use berth_model::container_instance::INACTIVE;
use berth_model::task::TaskStatus;
use berth_model::{arn, task, Scope};
use berth_store::Txn;
use std::time::Duration;

/// `fleet`: the caller signed with a fleet key (only the fleet operations are theirs).
pub async fn handle(
    ctx: &Ctx<'_>,
    operation: &str,
    body: &[u8],
    fleet: bool,
) -> Result<Vec<u8>, ApiError> {
    let decode_error = |e: serde_json::Error| {
        ApiError::new(
            ErrorCode::SerializationException,
            format!("Unable to parse request body: {e}"),
        )
    };
    let fleet_op = [FLEET_REGISTER, FLEET_POLL, FLEET_REPORT].contains(&operation);
    if fleet_op != fleet
        && [POLL, REPORT, FLEET_REGISTER, FLEET_POLL, FLEET_REPORT].contains(&operation)
    {
        return Err(crate::fleet::refuse(operation));
    }
    let out = match operation {
        FLEET_REGISTER => serde_json::to_vec(
            &crate::fleet::register(ctx, serde_json::from_slice(body).map_err(decode_error)?)
                .await?,
        ),
        FLEET_POLL => serde_json::to_vec(
            &crate::fleet::poll(ctx, serde_json::from_slice(body).map_err(decode_error)?).await?,
        ),
        FLEET_REPORT => serde_json::to_vec(
            &crate::fleet::report(ctx, serde_json::from_slice(body).map_err(decode_error)?).await?,
        ),
        POLL => serde_json::to_vec(
            &poll(ctx, serde_json::from_slice(body).map_err(decode_error)?).await?,
        ),
        REPORT => serde_json::to_vec(
            &report(ctx, serde_json::from_slice(body).map_err(decode_error)?).await?,
        ),
        TASK_CREDENTIALS => serde_json::to_vec(
            &crate::task_credentials::handle(
                ctx,
                serde_json::from_slice(body).map_err(decode_error)?,
                fleet,
            )
            .await?,
        ),
        other => {
            return Err(ApiError::new(
                ErrorCode::UnknownOperationException,
                format!("Unknown operation {TARGET_PREFIX}.{other}."),
            ))
        }
    };
    out.map_err(|e| ApiError::server(e.to_string()))
}

/// (cluster name, instance id) of an instance ARN in the caller's scope.
fn instance_id(scope: &Scope, given: &str) -> Result<(Option<String>, String), ApiError> {
    arn::cluster_scoped_id(scope, "container-instance", given).ok_or_else(|| {
        ApiError::invalid_parameter("The referenced container instance was not found.")
    })
}

/// The desired set for one instance, its fingerprint, and the view's revision.
fn desired(
    index: &Index,
    scope: &Scope,
    cluster: &str,
    id: &str,
    arn: &str,
) -> (PollResponse, u64) {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let status = index
        .container_instances
        .get(&(scope.clone(), cluster.to_string(), id.to_string()))
        .and_then(|v| v.value.status.clone())
        .unwrap_or_else(|| INACTIVE.into());
    status.hash(&mut h);
    let mut tasks = vec![];
    let mut enis = vec![];
    for (task_id, v) in index.tasks_on(scope, cluster, arn) {
        // Only what the agent acts on: its own reports do not wake it.
        (
            task_id,
            v.value.summary.desired_status.map(TaskStatus::as_str),
        )
            .hash(&mut h);
        let task = v.value.task();
        let eni = task_enis::of_task(index, scope, &task);
        let network = eni.map(|e| task_enis::task_network(index, scope, e));
        network.hash(&mut h);
        enis.extend(eni);
        tasks.push(DesiredTask {
            task,
            task_definition: (*v.value.task_definition).clone(),
            network,
        });
    }
    // A rule change, or a peer coming or going, reaches the agent at once.
    let firewalls = task_enis::firewalls(index, scope, &enis);
    firewalls.hash(&mut h);
    let response = PollResponse {
        fingerprint: format!("{:016x}", h.finish()),
        status,
        tasks,
        firewalls,
    };
    (response, index.revision)
}

/// Counts an open poll as presence, until it ends however it ends.
struct OpenPoll<'a> {
    state: &'a crate::state::State,
    arn: &'a str,
}

impl Drop for OpenPoll<'_> {
    fn drop(&mut self) {
        self.state.poll_ended(self.arn);
    }
}

/// Whether the instance is registered (or deregistered) in the caller's
/// cluster: only then may a request from its agent count as its presence.
fn registered(index: &Index, scope: &Scope, cluster: &str, id: &str) -> bool {
    index
        .container_instances
        .contains_key(&(scope.clone(), cluster.to_string(), id.to_string()))
}

async fn poll(ctx: &Ctx<'_>, req: PollRequest) -> Result<PollResponse, ApiError> {
    let scope = &ctx.scope;
    // The caller must own what it names before anything is recorded for it.
    let (_, id) = instance_id(scope, &req.container_instance_arn)?;
    let known_instance = {
        let index = ctx.state.read();
        let cluster = active_name(&index, scope, Some(&req.cluster))?;
        registered(&index, scope, &cluster, &id)
    };
    let _open = known_instance.then(|| {
        ctx.state.poll_started(&req.container_instance_arn);
        OpenPoll {
            state: ctx.state,
            arn: &req.container_instance_arn,
        }
    });
    let wait = Duration::from_secs(req.wait_seconds.unwrap_or(0)).min(MAX_POLL_WAIT);
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let (response, revision) = {
            let index = ctx.state.read();
            let cluster = active_name(&index, scope, Some(&req.cluster))?;
            desired(&index, scope, &cluster, &id, &req.container_instance_arn)
        };
        let now = tokio::time::Instant::now();
        if req.known.as_deref() != Some(response.fingerprint.as_str()) || now >= deadline {
            return Ok(response);
        }
        ctx.state.wait_past(revision, deadline - now).await;
    }
}

async fn report(ctx: &Ctx<'_>, req: ReportRequest) -> Result<ReportResponse, ApiError> {
    let scope = &ctx.scope;
    let (_, instance) = instance_id(scope, &req.container_instance_arn)?;
    let cluster_name = berth_model::arn::cluster_name(scope, &req.cluster)
        .map(|c| c.into_owned())
        .unwrap_or_default();
    // One instance's reports take turns and share one commit.
    let lock = StoreKey::ContainerInstance {
        scope: scope.clone(),
        cluster: cluster_name,
        id: instance.clone(),
    };
    let answer = ctx
        .state
        .mutate(&lock, |index| {
            let cluster = active_name(index, scope, Some(&req.cluster))?;
            if !registered(index, scope, &cluster, &instance) {
                return Ok((Txn::new(), (ReportResponse { updated: 0 }, false)));
            }
            let mut txn = Txn::new();
            let mut updated = 0;
            for reported in &req.tasks {
                let Some((_, id)) = reported
                    .task_arn
                    .as_deref()
                    .and_then(|a| arn::cluster_scoped_id(scope, "task", a))
                else {
                    continue;
                };
                let Some(current) = index
                    .tasks
                    .get(&(scope.clone(), cluster.clone(), id.clone()))
                else {
                    continue;
                };
                // An agent speaks only for the tasks placed on its own instance.
                if current.value.summary.container_instance_arn.as_deref()
                    != Some(req.container_instance_arn.as_str())
                {
                    continue;
                }
                let mut record = current.value.record();
                if task::apply_report(&mut record.task, reported, ctx.now) {
                    let key = StoreKey::Task {
                        scope: scope.clone(),
                        cluster: cluster.clone(),
                        id,
                    };
                    txn = guarded_put(txn, index, &key, &record);
                    updated += 1;
                }
            }
            Ok((txn, (ReportResponse { updated }, true)))
        })
        .await?;
    let (response, known_instance) = answer;
    if known_instance {
        ctx.state.heartbeat(&req.container_instance_arn);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use crate::testing::{Harness, ACCOUNT_A, ACCOUNT_B};
    use berth_api::agent::{POLL, REPORT};
    use berth_api::ErrorCode;
    use serde_json::json;
    use std::time::Duration;

    /// A's instance, registered and then silent past the instance timeout.
    async fn silent_instance(h: &Harness) -> String {
        let arn = h.instance(ACCOUNT_A, "prod").await;
        h.clock.advance(Duration::from_secs(60));
        assert!(h.state.agent_lost(&arn), "silent for 60 s of 45");
        arn
    }

    #[tokio::test]
    async fn another_accounts_poll_leaves_presence_untouched() {
        let h = Harness::new().await;
        let arn = silent_instance(&h).await;
        let err = h
            .agent(
                ACCOUNT_B,
                POLL,
                json!({"cluster": "prod", "containerInstanceArn": arn}),
            )
            .await
            .expect_err("B does not own A's instance");
        assert_eq!(err.code, ErrorCode::InvalidParameterException);
        assert!(!h.state.agent_connected(&arn));
        assert!(h.state.agent_lost(&arn));
        let err = h
            .agent(
                ACCOUNT_B,
                REPORT,
                json!({"cluster": "prod", "containerInstanceArn": arn, "tasks": []}),
            )
            .await
            .expect_err("B does not own A's instance");
        assert_eq!(err.code, ErrorCode::InvalidParameterException);
        assert!(h.state.agent_lost(&arn));
    }

    #[tokio::test]
    async fn a_poll_naming_no_instance_leaves_presence_untouched() {
        let h = Harness::new().await;
        let arn = silent_instance(&h).await;
        let missing = arn.replace(
            arn.rsplit('/').next().unwrap(),
            "0123456789abcdef0123456789abcdef",
        );
        let answer = h
            .agent(
                ACCOUNT_A,
                POLL,
                json!({"cluster": "prod", "containerInstanceArn": missing}),
            )
            .await
            .expect("an instance that is not there is told it is INACTIVE");
        assert_eq!(answer["status"], "INACTIVE");
        assert_eq!(answer["tasks"], json!([]));
        assert!(!h.state.agent_connected(&missing));
        assert!(h.state.agent_lost(&missing));
        let answer = h
            .agent(
                ACCOUNT_A,
                REPORT,
                json!({"cluster": "prod", "containerInstanceArn": missing, "tasks": []}),
            )
            .await
            .expect("a report for no instance changes nothing");
        assert_eq!(answer["updated"], 0);
        assert!(!h.state.agent_connected(&missing));
        // The owner's own poll still counts.
        h.agent(
            ACCOUNT_A,
            POLL,
            json!({"cluster": "prod", "containerInstanceArn": arn}),
        )
        .await
        .expect("A polls its own instance");
        assert!(h.state.agent_connected(&arn));
        assert!(!h.state.agent_lost(&arn));
    }
}
