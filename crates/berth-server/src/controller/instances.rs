//! Lost hosts: an instance whose agent stays silent past the instance timeout
//! has its tasks stopped in the control plane, so services replace them. The
//! agent, if it comes back, stops the containers of tasks it no longer has.
use crate::state::index::guarded_put;
use crate::state::{State, StoreKey};
use berth_api::ApiError;
use berth_model::container_instance::INACTIVE;
use berth_model::{task, Scope};
use berth_store::Txn;
use std::collections::BTreeMap;

/// One pass: stops the tasks of every lost instance.
pub async fn heal(state: &State) {
    // (scope, cluster) -> (instance ARN, its EC2 instance id)
    let mut lost: BTreeMap<(Scope, String), Vec<(String, String)>> = BTreeMap::new();
    {
        let index = state.read();
        for ((scope, cluster, _), v) in &index.container_instances {
            let c = &v.value;
            let arn = c.container_instance_arn.clone().unwrap_or_default();
            let holds_tasks = index.tasks_on(scope, cluster, &arn).next().is_some();
            if c.status.as_deref() == Some(INACTIVE) || !holds_tasks || !state.agent_lost(&arn) {
                continue;
            }
            let ec2 = c.ec2_instance_id.clone().unwrap_or_default();
            lost.entry((scope.clone(), cluster.clone()))
                .or_default()
                .push((arn, ec2));
        }
    }
    for ((scope, cluster), instances) in lost {
        if let Err(e) = stop_tasks_on(state, &scope, &cluster, &instances).await {
            tracing::warn!(cluster = %cluster, error = %e, "stopping the tasks of a lost host failed");
        }
    }
}

async fn stop_tasks_on(
    state: &State,
    scope: &Scope,
    cluster: &str,
    instances: &[(String, String)],
) -> Result<(), ApiError> {
    let turn = StoreKey::Cluster {
        scope: scope.clone(),
        name: cluster.to_string(),
    };
    let timeout = state.instance_timeout().as_secs_f64();
    let now = state.clock().epoch_secs();
    let lost = state
        .mutate(&turn, |index| {
            let mut txn = Txn::new();
            let mut n = 0;
            for (arn, ec2) in instances {
                // The agent may have come back since the list was made.
                if !state.agent_lost(arn) {
                    continue;
                }
                let reason = format!(
                    "Host EC2 (instance {ec2}) was lost: its agent was silent for more than {timeout} seconds."
                );
                for (id, v) in index.tasks_on(scope, cluster, arn) {
                    let mut r = v.value.record();
                    if task::lose(&mut r.task, &reason, now) {
                        txn = guarded_put(txn, index, &StoreKey::task(scope, cluster, id), &r);
                        n += 1;
                    }
                }
            }
            Ok((txn, n))
        })
        .await?;
    if lost > 0 {
        tracing::warn!(cluster = %cluster, tasks = lost, "stopped the tasks of lost hosts");
    }
    Ok(())
}
