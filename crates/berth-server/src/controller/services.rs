//! The service controller: for each service, takes a snapshot from the index,
//! lets the pure pass (`service_pass`) decide, and commits what it decided
//! (new tasks through the launch path, stops, the service's counts,
//! deployment states and events) in one transaction.
use super::requeue::Requeue;
use super::service_pass::{self, Snapshot, Start, Started, TaskFacts};
use crate::launch::instances::candidates;
use crate::launch::{self, placement_rules, Launch, Refusal, Targets};
use crate::state::index::{guarded_put, Index, ServiceRecord, TaskRecord};
use crate::state::indexed_task::IndexedTask;
use crate::state::{State, StoreKey};
use crate::task_enis;
use berth_api::ecs::{PlacementStrategy, Service, Tag, TaskDefinition};
use berth_api::ApiError;
use berth_model::container_instance::DRAINING;
use berth_model::fargate;
use berth_model::service::{self as svc};
use berth_model::task::{self, TaskStatus};
use berth_model::{task_definition as td, Scope};
use berth_store::Txn;
use std::time::Duration;

/// One pass over the services that changed or are due (`requeue`), or over
/// every service that is not INACTIVE when `all` (the safety net for what
/// time alone changes: agents coming and going).
pub async fn reconcile(state: &State, all: bool, requeue: &mut Requeue) {
    let mut dirty = state.take_dirty_services();
    dirty.extend(requeue.take_due(state.clock().instant()));
    let services: Vec<(Scope, String, String)> = {
        let index = state.read();
        let active = |k: &(Scope, String, String)| {
            index
                .services
                .get(k)
                .is_some_and(|v| v.value.service.status.as_deref() != Some(svc::INACTIVE))
        };
        if all {
            index
                .services
                .keys()
                .filter(|k| active(k))
                .cloned()
                .collect()
        } else {
            dirty.into_iter().filter(active).collect()
        }
    };
    for (scope, cluster, name) in services {
        let key = (scope, cluster, name);
        let now = state.clock().instant();
        match reconcile_one(state, &key.0, &key.1, &key.2).await {
            Ok(next) => {
                requeue.succeeded(&key);
                if let Some(after) = next {
                    requeue.after(key, now, after);
                }
            }
            Err(e) => {
                let wait = requeue.failed(key.clone(), now);
                let (_, cluster, name) = &key;
                tracing::warn!(service = %name, cluster = %cluster, error = %e, retry_ms = wait.as_millis() as u64, "service pass failed");
            }
        }
    }
}

/// One service's pass; answers when it wants its next one on its own.
async fn reconcile_one(
    state: &State,
    scope: &Scope,
    cluster: &str,
    name: &str,
) -> Result<Option<Duration>, ApiError> {
    let turn = StoreKey::Cluster {
        scope: scope.clone(),
        name: cluster.to_string(),
    };
    let now = state.clock().epoch_secs();
    let rollback_id = crate::ids::deployment_id();
    let seed = uuid::Uuid::new_v4().as_u64_pair().0;
    state
        .mutate(&turn, |index| {
            let Some(current) =
                index
                    .services
                    .get(&(scope.clone(), cluster.to_string(), name.to_string()))
            else {
                return Ok((Txn::new(), None));
            };
            let io = PassIo {
                state,
                index,
                scope,
                cluster,
                now,
                seed,
                record: &current.value,
            };
            let snapshot = io.snapshot(&rollback_id);
            let mut launched = Txn::new();
            let outcome = service_pass::reconcile(&snapshot, &mut |start| {
                let (txn, started) = io.start(start);
                launched.compares.extend(txn.compares);
                launched.ops.extend(txn.ops);
                started
            });
            let mut txn = io.stops(&outcome);
            txn.compares.extend(launched.compares);
            txn.ops.extend(launched.ops);
            let next = outcome
                .requeue_after
                .map(|s| Duration::from_secs_f64(s.max(0.0)));
            let mut record = outcome.record;
            for message in outcome.events {
                push_event(&mut record.service, message, now);
            }
            if serde_json::to_value(&record).ok() != serde_json::to_value(&current.value).ok() {
                txn = guarded_put(
                    txn,
                    index,
                    &StoreKey::service(scope, cluster, name),
                    &record,
                );
            }
            Ok((txn, next))
        })
        .await
}

/// Adds an event unless the same message was told in the last few (ECS omits duplicates).
fn push_event(s: &mut Service, message: String, now: f64) {
    let recent = s.events.iter().flatten().take(10);
    if recent
        .filter(|e| e.created_at.unwrap_or(0.0) > now - 6.0 * 3600.0)
        .any(|e| e.message.as_deref() == Some(message.as_str()))
    {
        return;
    }
    svc::push_event(s, uuid::Uuid::new_v4().to_string(), message, now);
}

/// The IO around one pure pass: the snapshot read from the index, new
/// copies placed through the launch path, stops written.
struct PassIo<'a> {
    state: &'a State,
    index: &'a Index,
    scope: &'a Scope,
    cluster: &'a str,
    now: f64,
    seed: u64,
    record: &'a ServiceRecord,
}

/// The stored task definition a deployment runs (deregistered ones still run).
fn definition<'a>(index: &'a Index, scope: &Scope, arn: &str) -> Option<&'a TaskDefinition> {
    let r = td::parse_reference(scope, arn)?;
    crate::lookup::task_definition(index, scope, &r).map(|v| &v.value.task_definition)
}

fn has_health_check(t: &TaskDefinition) -> bool {
    t.container_definitions
        .iter()
        .flatten()
        .any(|c| c.health_check.is_some())
}

impl<'a> PassIo<'a> {
    fn name(&self) -> String {
        self.record.service.service_name.clone().unwrap_or_default()
    }

    fn tasks(&self) -> Vec<(&'a str, &'a IndexedTask)> {
        let name = self.name();
        self.index
            .tasks_of_service(self.scope, self.cluster, &name)
            .map(|(id, v)| (id, &v.value))
            .collect()
    }

    fn snapshot<'s>(&'s self, fresh_deployment_id: &'s str) -> Snapshot<'s> {
        let tasks: Vec<TaskFacts> = self
            .tasks()
            .into_iter()
            .map(|(id, r)| {
                let t = &r.summary;
                TaskFacts {
                    id: id.to_string(),
                    deployment: t.started_by.as_deref().map(String::from),
                    last_status: t.last_status,
                    desired_status: t.desired_status,
                    health_status: t.health_status.as_deref().map(String::from),
                    started_at: t.started_at,
                    instance: t.container_instance_arn.as_deref().map(String::from),
                    failed_launch: t.failed_launch,
                    stopped: t.is_stopped(),
                    health_checked: has_health_check(&r.task_definition),
                    protected_until: t.protected_until,
                }
            })
            .collect();
        // Only the instances of tasks still wanted, each looked up once.
        let instances: std::collections::BTreeSet<&str> = tasks
            .iter()
            .filter(|t| t.desired_status == Some(TaskStatus::Running))
            .filter_map(|t| t.instance.as_deref())
            .collect();
        let draining = instances
            .into_iter()
            .filter(|arn| {
                berth_model::arn::cluster_scoped_id(self.scope, "container-instance", arn)
                    .and_then(|(_, id)| {
                        self.index.container_instances.get(&(
                            self.scope.clone(),
                            self.cluster.to_string(),
                            id,
                        ))
                    })
                    .is_some_and(|v| v.value.status.as_deref() == Some(DRAINING))
            })
            .map(String::from)
            .collect();
        let daemon = self.record.service.scheduling_strategy.as_deref() == Some(svc::DAEMON);
        Snapshot {
            record: self.record,
            tasks,
            draining,
            daemon_instances: if daemon {
                self.daemon_instances()
            } else {
                vec![]
            },
            now: self.now,
            fresh_deployment_id,
        }
    }

    fn rules(&self, definition: &TaskDefinition) -> launch::Rules {
        let s = &self.record.service;
        let strategies = s.placement_strategy.clone().unwrap_or_default();
        // Services spread across zones, then instances, unless told otherwise.
        let strategies =
            if strategies.is_empty() && s.scheduling_strategy.as_deref() != Some(svc::DAEMON) {
                vec![
                    PlacementStrategy {
                        r#type: Some("spread".into()),
                        field: Some("attribute:ecs.availability-zone".into()),
                    },
                    PlacementStrategy {
                        r#type: Some("spread".into()),
                        field: Some("instanceId".into()),
                    },
                ]
            } else {
                strategies
            };
        placement_rules(
            s.placement_constraints.as_deref().unwrap_or_default(),
            &strategies,
            definition,
        )
        .unwrap_or_default()
    }

    /// Instances a DAEMON service covers: ACTIVE, agent connected, memberOf constraints met.
    fn daemon_instances(&self) -> Vec<String> {
        let Some(definition) = svc::primary(&self.record.service)
            .and_then(|p| p.task_definition.as_deref())
            .and_then(|a| definition(self.index, self.scope, a))
        else {
            return vec![];
        };
        let (constraints, _) = self.rules(definition);
        candidates(self.state, self.index, self.scope, self.cluster)
            .into_iter()
            .filter(|(_, c, _)| {
                c.active && c.agent_connected && berth_sched::member_of_all(&constraints, &c.facts)
            })
            .map(|(_, c, _)| c.arn)
            .collect()
    }

    /// The stops the pass decided, as guarded puts.
    fn stops(&self, outcome: &service_pass::Outcome) -> Txn {
        let primary = svc::primary(&outcome.record.service)
            .and_then(|p| p.id.clone())
            .unwrap_or_default();
        let mut txn = Txn::new();
        for stop in &outcome.stops {
            let key = (
                self.scope.clone(),
                self.cluster.to_string(),
                stop.id.clone(),
            );
            let Some(current) = self.index.tasks.get(&key) else {
                continue;
            };
            let mut r = current.value.record();
            let reason = service_pass::stop_reason(stop.why, &primary, &unhealthy_container(&r));
            if task::request_stop(
                &mut r.task,
                task::SERVICE_SCHEDULER_INITIATED,
                &reason,
                self.now,
            ) {
                let k = StoreKey::task(self.scope, self.cluster, &stop.id);
                txn = guarded_put(txn, self.index, &k, &r);
            }
        }
        txn
    }

    /// Places and stores copies of a deployment through the launch path.
    fn start(&self, start: &Start<'_>) -> (Txn, Started) {
        let mut started = Started::default();
        let p = start.deployment;
        let td_arn = p.task_definition.clone().unwrap_or_default();
        let Some(definition) = definition(self.index, self.scope, &td_arn) else {
            started.events.push(format!(
                "was unable to place a task because its task definition {td_arn} no longer exists."
            ));
            return (Txn::new(), started);
        };
        let s = &self.record.service;
        let network = p
            .network_configuration
            .as_ref()
            .or(s.network_configuration.as_ref());
        let strategy = s.capacity_provider_strategy.clone().unwrap_or_default();
        let count = start.count;
        let providers: Option<Vec<Option<String>>> =
            if s.launch_type.as_deref() == Some(fargate::FARGATE) {
                Some(vec![None; count])
            } else if !strategy.is_empty() {
                Some(
                    fargate::split(&strategy, count)
                        .into_iter()
                        .map(Some)
                        .collect(),
                )
            } else {
                None
            };
        let launch_type = match providers {
            Some(_) => fargate::FARGATE,
            None => fargate::EC2,
        };
        let network = match task_enis::check(
            self.index,
            self.scope,
            definition,
            launch_type,
            network,
            self.state.public_ip_pool(),
        ) {
            Ok(plan) => plan,
            Err(e) => {
                started
                    .events
                    .push(format!("was unable to place a task. Reason: {}", e.message));
                return (Txn::new(), started);
            }
        };
        let targets = match providers {
            Some(providers) => {
                if network.is_none() {
                    started.events.push("was unable to place a task. Reason: Fargate only supports network mode 'awsvpc'.".into());
                    return (Txn::new(), started);
                }
                Targets::Fleet {
                    providers,
                    ephemeral_gib: fargate::DEFAULT_EPHEMERAL_GIB,
                }
            }
            None => Targets::Placed {
                count,
                on: start.on.to_vec(),
                rules: self.rules(definition),
            },
        };
        let tags = self.task_tags(&td_arn);
        let group = svc::task_group(&self.name());
        let l = Launch {
            definition,
            overrides: None,
            group: Some(&group),
            started_by: p.id.as_deref(),
            tags: &tags,
            network,
            targets,
            seed: self.seed,
        };
        match launch::plan(
            self.state,
            self.index,
            self.scope,
            self.cluster,
            &l,
            self.now,
        ) {
            Ok(launched) => {
                started.events = refusal_events(&launched.refusals);
                started.task_ids = launched.tasks.into_iter().map(|(id, _)| id).collect();
                (launched.txn, started)
            }
            Err(launch::NoContainerInstances) => {
                started.events.push("was unable to place a task because no container instance met all of its requirements. Reason: No Container Instances were found in your cluster.".into());
                (Txn::new(), started)
            }
        }
    }

    /// Tags a service's new task carries: propagated ones and, when enabled, ECS's managed tags.
    fn task_tags(&self, td_arn: &str) -> Vec<Tag> {
        let s = &self.record.service;
        let mut tags = match s.propagate_tags.as_deref() {
            Some("SERVICE") => s.tags.clone().unwrap_or_default(),
            Some("TASK_DEFINITION") => td::parse_reference(self.scope, td_arn)
                .and_then(|r| crate::lookup::task_definition(self.index, self.scope, &r))
                .map(|v| v.value.tags.clone())
                .unwrap_or_default(),
            _ => vec![],
        };
        if s.enable_ecs_managed_tags == Some(true) {
            for (k, v) in [
                ("aws:ecs:clusterName", self.cluster.to_string()),
                ("aws:ecs:serviceName", self.name()),
            ] {
                tags.push(Tag {
                    key: Some(k.into()),
                    value: Some(v),
                });
            }
        }
        tags
    }
}

/// ECS's events for copies a pass could not start: the first of each kind.
fn refusal_events(refusals: &[Refusal]) -> Vec<String> {
    let mut events = vec![];
    if let Some((arn, reason)) = refusals.iter().find_map(|r| match r {
        Refusal::Instance { arn, reason } => Some((arn, reason)),
        _ => None,
    }) {
        let id = arn.rsplit('/').next().unwrap_or_default();
        events.push(unable_to_place(id, reason));
    }
    let other = refusals.iter().find_map(|r| match r {
        Refusal::NoFleetCapacity => Some(launch::fleet::NO_CAPACITY.to_string()),
        Refusal::FleetLogDriver => {
            Some("the task definition's log driver is not one the fleet serves".to_string())
        }
        Refusal::Network { reason, .. } => Some(reason.clone()),
        Refusal::Instance { .. } | Refusal::Missing(_) => None,
    });
    if let Some(reason) = other {
        events.push(format!("was unable to place a task. Reason: {reason}."));
    }
    events
}

fn unhealthy_container(r: &TaskRecord) -> String {
    r.task
        .containers
        .iter()
        .flatten()
        .find(|c| c.health_status.as_deref() == Some("UNHEALTHY"))
        .and_then(|c| c.name.clone())
        .unwrap_or_default()
}

/// ECS's words for why a service task could not be placed.
fn unable_to_place(instance_id: &str, reason: &str) -> String {
    let closest = format!("The closest matching (container-instance {instance_id})");
    let why = match reason {
        "RESOURCE:CPU" => format!("{closest} has insufficient CPU units available."),
        "RESOURCE:MEMORY" => format!("{closest} has insufficient memory available."),
        "RESOURCE:PORTS" | "RESOURCE:PORTS_UDP" => {
            format!("{closest} is already using a port required by your task.")
        }
        "AGENT" => format!("{closest} has no connected agent."),
        other => format!("{closest} failed: {other}"),
    };
    format!(
        "was unable to place a task because no container instance met all of its requirements. {why} For more information, see the Troubleshooting section of the Amazon ECS Developer Guide."
    )
}
