//! The platform's fleet in the control plane: fleet hosts registering, their
//! long polls for the FARGATE tasks placed on them (of any account) and their
//! reports, and where a new FARGATE task goes.
use crate::context::Ctx;
use crate::state::index::{guarded_put, ClusterScoped, Index};
use crate::state::{State, StoreKey};
use crate::task_enis;
use berth_api::agent::*;
use berth_api::{ApiError, ErrorCode};
use berth_model::fargate::FleetHost;
use berth_model::task::TaskStatus;
use berth_model::{arn, task, Scope};
use berth_store::Txn;
use std::collections::BTreeMap;
use std::time::Duration;

/// What presence (polls and heartbeats) is kept under for a fleet host.
pub fn presence_key(host_id: &str) -> String {
    format!("fleet-host/{host_id}")
}

fn host_key(id: &str) -> StoreKey {
    StoreKey::FleetHost { id: id.to_string() }
}

fn check_id(id: &str) -> Result<(), ApiError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid_parameter(
            "hostId must be 1 to 64 letters, digits, hyphens or underscores.",
        ))
    }
}

pub async fn register(
    ctx: &Ctx<'_>,
    req: FleetRegisterRequest,
) -> Result<FleetRegisterResponse, ApiError> {
    check_id(&req.host_id)?;
    let key = host_key(&req.host_id);
    let host = FleetHost {
        id: req.host_id.clone(),
        cpu: req.cpu.max(0),
        memory: req.memory.max(0),
        registered_at: ctx.now,
    };
    ctx.state
        .mutate(&key, |index| {
            let mut h = host.clone();
            if let Some(known) = index.fleet_hosts.get(&host.id) {
                h.registered_at = known.value.registered_at;
            }
            Ok((guarded_put(Txn::new(), index, &key, &h), ()))
        })
        .await?;
    ctx.state.heartbeat(&presence_key(&req.host_id));
    Ok(FleetRegisterResponse {
        host_id: req.host_id,
    })
}

/// The desired set for one fleet host, its fingerprint, and the view's revision.
fn desired(index: &Index, host_id: &str) -> (PollResponse, u64) {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let status = if index.fleet_hosts.contains_key(host_id) {
        "ACTIVE"
    } else {
        "INACTIVE"
    };
    status.hash(&mut h);
    let mut tasks = vec![];
    let mut enis: BTreeMap<&Scope, Vec<_>> = BTreeMap::new();
    for ((scope, _, task_id), v) in index.tasks_on_fleet_host(host_id) {
        (
            scope,
            task_id,
            v.value.summary.desired_status.map(TaskStatus::as_str),
        )
            .hash(&mut h);
        let task = v.value.task();
        let eni = task_enis::of_task(index, scope, &task);
        let network = eni.map(|e| task_enis::task_network(index, scope, e));
        network.hash(&mut h);
        enis.entry(scope).or_default().extend(eni);
        tasks.push(DesiredTask {
            task,
            task_definition: (*v.value.task_definition).clone(),
            network,
        });
    }
    // Every account's VPCs apart: VPC ids are unique, their rules come from their own account.
    let firewalls: Vec<VpcFirewall> = enis
        .iter()
        .flat_map(|(scope, e)| task_enis::firewalls(index, scope, e))
        .collect();
    firewalls.hash(&mut h);
    let response = PollResponse {
        fingerprint: format!("{:016x}", h.finish()),
        status: status.into(),
        tasks,
        firewalls,
    };
    (response, index.revision)
}

/// Counts an open poll as presence, until it ends however it ends.
struct OpenPoll<'a> {
    state: &'a State,
    key: String,
}

impl Drop for OpenPoll<'_> {
    fn drop(&mut self) {
        self.state.poll_ended(&self.key);
    }
}

pub async fn poll(ctx: &Ctx<'_>, req: FleetPollRequest) -> Result<PollResponse, ApiError> {
    check_id(&req.host_id)?;
    // Only a registered host's poll counts as its presence.
    let registered = ctx.state.read().fleet_hosts.contains_key(&req.host_id);
    let _open = registered.then(|| {
        let key = presence_key(&req.host_id);
        ctx.state.poll_started(&key);
        OpenPoll {
            state: ctx.state,
            key,
        }
    });
    let wait = Duration::from_secs(req.wait_seconds.unwrap_or(0)).min(MAX_POLL_WAIT);
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let (response, revision) = desired(&ctx.state.read(), &req.host_id);
        let now = tokio::time::Instant::now();
        if req.known.as_deref() != Some(response.fingerprint.as_str()) || now >= deadline {
            return Ok(response);
        }
        ctx.state.wait_past(revision, deadline - now).await;
    }
}

/// (scope, cluster, id) of a task ARN, in whichever account it names.
fn task_of(task_arn: &str) -> Option<ClusterScoped> {
    let a = arn::parse(task_arn)?;
    let scope = Scope::new(a.account.clone(), a.region.clone());
    let (cluster, id) = arn::cluster_scoped_id(&scope, "task", task_arn)?;
    Some((scope, cluster?, id))
}

pub async fn report(ctx: &Ctx<'_>, req: FleetReportRequest) -> Result<ReportResponse, ApiError> {
    check_id(&req.host_id)?;
    // One host's reports take turns and share one commit.
    let (response, registered) = ctx
        .state
        .mutate(&host_key(&req.host_id), |index| {
            if !index.fleet_hosts.contains_key(&req.host_id) {
                return Ok((Txn::new(), (ReportResponse { updated: 0 }, false)));
            }
            let mut txn = Txn::new();
            let mut updated = 0;
            for reported in &req.tasks {
                let Some(key) = reported.task_arn.as_deref().and_then(task_of) else {
                    continue;
                };
                let Some(current) = index.tasks.get(&key) else {
                    continue;
                };
                // A host speaks only for the tasks placed on it.
                if current.value.summary.fleet_host.as_deref() != Some(req.host_id.as_str()) {
                    continue;
                }
                let mut record = current.value.record();
                if task::apply_report(&mut record.task, reported, ctx.now) {
                    let (scope, cluster, id) = key;
                    let k = StoreKey::Task { scope, cluster, id };
                    txn = guarded_put(txn, index, &k, &record);
                    updated += 1;
                }
            }
            Ok((txn, (ReportResponse { updated }, true)))
        })
        .await?;
    if registered {
        ctx.state.heartbeat(&presence_key(&req.host_id));
    }
    Ok(response)
}

/// One controller pass: a fleet host silent past the instance timeout is
/// lost, and its tasks (of every account) are stopped, so services replace
/// them. The host, if it comes back, stops what it no longer has.
pub async fn heal(state: &State) {
    let lost: Vec<String> = {
        let index = state.read();
        index
            .fleet_tasks
            .keys()
            .filter(|h| state.agent_lost(&presence_key(h)))
            .cloned()
            .collect()
    };
    for host in lost {
        let timeout = state.instance_timeout().as_secs_f64();
        let now = state.clock().epoch_secs();
        let reason = format!(
            "Fleet host {host} was lost: its agent was silent for more than {timeout} seconds."
        );
        let stopped = state
            .mutate(&host_key(&host), |index| {
                let mut txn = Txn::new();
                if !state.agent_lost(&presence_key(&host)) {
                    return Ok((txn, 0));
                }
                let mut n = 0;
                for ((scope, cluster, id), v) in index.tasks_on_fleet_host(&host) {
                    let mut r = v.value.record();
                    if task::lose(&mut r.task, &reason, now) {
                        let k = StoreKey::Task {
                            scope: scope.clone(),
                            cluster: cluster.clone(),
                            id: id.clone(),
                        };
                        txn = guarded_put(txn, index, &k, &r);
                        n += 1;
                    }
                }
                Ok((txn, n))
            })
            .await;
        match stopped {
            Ok(n) if n > 0 => {
                tracing::warn!(fleet_host = %host, tasks = n, "stopped the tasks of a lost fleet host")
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(fleet_host = %host, error = %e, "stopping the tasks of a lost fleet host failed")
            }
        }
    }
}

/// Fleet operations answer only fleet keys; the others only accounts' keys.
pub fn refuse(operation: &str) -> ApiError {
    ApiError::new(
        ErrorCode::AccessDeniedException,
        format!("{operation} is not allowed for this key."),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_a_registered_hosts_calls_count_as_its_presence() {
        use crate::config::FLEET;
        use crate::testing::Harness;
        use serde_json::json;
        let h = Harness::new().await;
        h.clock.advance(std::time::Duration::from_secs(60));
        let ghost = presence_key("ghost");
        h.agent(FLEET, FLEET_POLL, json!({"hostId": "ghost"}))
            .await
            .expect("an unknown host is told it is INACTIVE");
        h.agent(FLEET, FLEET_REPORT, json!({"hostId": "ghost", "tasks": []}))
            .await
            .expect("a report for no host changes nothing");
        assert!(!h.state.agent_connected(&ghost));
        assert!(h.state.agent_lost(&ghost));
        h.agent(
            FLEET,
            FLEET_REGISTER,
            json!({"hostId": "real", "cpu": 2048, "memory": 4096}),
        )
        .await
        .expect("FleetRegister");
        h.clock.advance(std::time::Duration::from_secs(60));
        h.agent(FLEET, FLEET_POLL, json!({"hostId": "real"}))
            .await
            .expect("FleetPoll");
        assert!(h.state.agent_connected(&presence_key("real")));
    }
}
