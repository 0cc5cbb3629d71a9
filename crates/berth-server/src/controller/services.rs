//! The service controller: for each service, compares what is wanted with
//! the tasks that exist and commits the difference (new tasks, stops, the
//! service's counts, deployment states and events) in one transaction.
use crate::launch::instances::candidates;
use crate::launch::{self, placement_rules, Launch, Refusal, Targets};
use crate::state::index::{guarded_put, Index, ServiceRecord, TaskRecord};
use crate::state::indexed_task::IndexedTask;
use crate::state::{State, StoreKey};
use crate::task_enis;
use berth_api::ecs::{Deployment, PlacementStrategy, Service, Tag, TaskDefinition};
use berth_api::ApiError;
use berth_model::container_instance::DRAINING;
use berth_model::fargate;
use berth_model::service::{self as svc, Fresh};
use berth_model::{task, task_definition as td, Scope};
use berth_sched::service::{self as plan, LiveTask, StopWhy};
use berth_store::Txn;
use std::collections::{BTreeSet, HashMap};

/// One pass over the services that changed, or over every service that is
/// not INACTIVE when `all` (for what time alone changes: grace periods, agents).
pub async fn reconcile(state: &State, all: bool) {
    let dirty = state.take_dirty_services();
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
        if let Err(e) = reconcile_one(state, &scope, &cluster, &name).await {
            tracing::warn!(service = %name, cluster = %cluster, error = %e, "service pass failed");
        }
    }
}

async fn reconcile_one(
    state: &State,
    scope: &Scope,
    cluster: &str,
    name: &str,
) -> Result<(), ApiError> {
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
                return Ok((Txn::new(), ()));
            };
            let mut pass = Pass {
                state,
                index,
                scope,
                cluster,
                now,
                seed,
                record: current.value.clone(),
                txn: Txn::new(),
                events: vec![],
            };
            pass.run(&rollback_id);
            let Pass {
                mut record,
                mut txn,
                events,
                ..
            } = pass;
            for message in events {
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
            Ok((txn, ()))
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

/// One service's pass: reads `index`, builds `txn`, edits `record`.
struct Pass<'a> {
    state: &'a State,
    index: &'a Index,
    scope: &'a Scope,
    cluster: &'a str,
    now: f64,
    seed: u64,
    record: ServiceRecord,
    txn: Txn,
    events: Vec<String>,
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

impl<'a> Pass<'a> {
    fn name(&self) -> String {
        self.record.service.service_name.clone().unwrap_or_default()
    }

    fn say(&mut self, message: String) {
        let name = self.name();
        self.events.push(format!("(service {name}) {message}"));
    }

    fn tasks(&self) -> Vec<(&'a str, &'a IndexedTask)> {
        let name = self.name();
        self.index
            .tasks_of_service(self.scope, self.cluster, &name)
            .map(|(id, v)| (id, &v.value))
            .collect()
    }

    fn run(&mut self, fresh_id: &str) {
        let draining_service = self.record.service.status.as_deref() == Some(svc::DRAINING);
        self.count_failures();
        if !draining_service {
            self.circuit_breaker(fresh_id);
        }
        let live = self.live_tasks();
        let plan = if draining_service {
            plan::Plan {
                stop: live
                    .iter()
                    .map(|t| (t.id.clone(), StopWhy::ScaledIn))
                    .collect(),
                ..Default::default()
            }
        } else {
            self.decide(&live)
        };
        self.stop(&plan.stop);
        let started = self.start(plan.start, &plan.start_on);
        self.tally(&live, &plan.stop, &started);
        if draining_service {
            self.finish_deletion(&plan.stop);
        }
    }

    fn primary(&self) -> Option<&Deployment> {
        svc::primary(&self.record.service)
    }

    /// Counts each newly stopped failed task once against its deployment.
    fn count_failures(&mut self) {
        let ids: BTreeSet<String> = self
            .record
            .service
            .deployments
            .iter()
            .flatten()
            .filter_map(|d| d.id.clone())
            .collect();
        self.record.counted_failures.retain(|d, _| ids.contains(d));
        for (id, r) in self.tasks() {
            let Some(dep) = r.summary.started_by.as_deref().filter(|d| ids.contains(*d)) else {
                continue;
            };
            if !r.summary.failed_launch {
                continue;
            }
            let counted = self
                .record
                .counted_failures
                .entry(dep.to_string())
                .or_default();
            if counted.insert(id.to_string()) {
                let n = counted.len() as i32;
                for d in self.record.service.deployments.iter_mut().flatten() {
                    if d.id.as_deref() == Some(dep) {
                        d.failed_tasks = Some(n);
                    }
                }
            }
        }
    }

    /// Trips the circuit breaker on the PRIMARY deployment, and rolls back when asked to.
    fn circuit_breaker(&mut self, fresh_id: &str) {
        let (enabled, rollback) = svc::circuit_breaker(&self.record.service);
        let Some(p) = self.primary().cloned() else {
            return;
        };
        if !enabled || p.rollout_state.as_deref() != Some(svc::IN_PROGRESS) {
            return;
        }
        let desired = p.desired_count.unwrap_or(0).max(0) as usize;
        if (p.failed_tasks.unwrap_or(0).max(0) as usize) < plan::failure_threshold(desired) {
            return;
        }
        let id = p.id.clone().unwrap_or_default();
        for d in self.record.service.deployments.iter_mut().flatten() {
            if d.id == p.id {
                d.rollout_state = Some(svc::FAILED.into());
                d.rollout_state_reason =
                    Some("ECS deployment circuit breaker: tasks failed to start.".into());
                d.updated_at = Some(self.now);
            }
        }
        self.say(format!(
            "(deployment {id}) deployment failed: tasks failed to start."
        ));
        let target = self.record.last_completed.clone();
        let Some(target) = target.filter(|_| rollback) else {
            return;
        };
        let target_id = target.id.clone().unwrap_or_default();
        let td_arn = target.task_definition.clone().unwrap_or_default();
        svc::deploy(
            &mut self.record.service,
            &td_arn,
            &Fresh {
                deployment_id: fresh_id,
                now: self.now,
            },
        );
        if let Some(d) = self
            .record
            .service
            .deployments
            .as_mut()
            .and_then(|d| d.first_mut())
        {
            d.rollout_state_reason = Some(format!(
                "ECS deployment circuit breaker: rolling back to deploymentId {target_id}."
            ));
        }
        self.say(format!("rolling back to deployment {target_id}."));
    }

    fn live_tasks(&self) -> Vec<LiveTask> {
        let grace = self
            .record
            .service
            .health_check_grace_period_seconds
            .unwrap_or(0)
            .max(0) as f64;
        // Only the instances this service's tasks are on are looked up.
        let draining = |arn: &str| {
            berth_model::arn::cluster_scoped_id(self.scope, "container-instance", arn)
                .and_then(|(_, id)| {
                    self.index.container_instances.get(&(
                        self.scope.clone(),
                        self.cluster.to_string(),
                        id,
                    ))
                })
                .is_some_and(|v| v.value.status.as_deref() == Some(DRAINING))
        };
        self.tasks()
            .into_iter()
            .filter(|(_, r)| r.summary.desired_status.as_deref() == Some(task::RUNNING))
            .map(|(id, r)| {
                let t = &r.summary;
                let running = t.last_status.as_deref() == Some(task::RUNNING);
                let checked = has_health_check(&r.task_definition);
                let health = t.health_status.as_deref().unwrap_or("UNKNOWN");
                let started = t.started_at.unwrap_or(self.now);
                let instance = t
                    .container_instance_arn
                    .as_deref()
                    .unwrap_or_default()
                    .to_string();
                LiveTask {
                    id: id.to_string(),
                    deployment: t.started_by.as_deref().unwrap_or_default().to_string(),
                    healthy: running && (!checked || health == "HEALTHY"),
                    unhealthy: running
                        && checked
                        && health == "UNHEALTHY"
                        && self.now - started >= grace,
                    draining: draining(&instance),
                    instance,
                }
            })
            .collect()
    }

    fn rules(
        &self,
        definition: &TaskDefinition,
    ) -> (Vec<berth_sched::Constraint>, Vec<berth_sched::Strategy>) {
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

    fn decide(&self, live: &[LiveTask]) -> plan::Plan {
        let s = &self.record.service;
        let Some(p) = self.primary() else {
            return plan::Plan::default();
        };
        let (minimum, maximum) = svc::limits(s);
        let primary = p.id.clone().unwrap_or_default();
        let primary_failed = p.rollout_state.as_deref() == Some(svc::FAILED);
        if s.scheduling_strategy.as_deref() == Some(svc::DAEMON) {
            let eligible = self.daemon_instances();
            return plan::reconcile_daemon(
                &plan::Daemon {
                    eligible,
                    minimum_healthy_percent: minimum,
                    maximum_percent: maximum,
                    primary,
                    primary_failed,
                },
                live,
            );
        }
        plan::reconcile_replica(
            &plan::Replica {
                desired: s.desired_count.unwrap_or(0).max(0) as usize,
                minimum_healthy_percent: minimum,
                maximum_percent: maximum,
                primary,
                primary_failed,
            },
            live,
        )
    }

    /// Instances a DAEMON service covers: ACTIVE, agent connected, memberOf constraints met.
    fn daemon_instances(&self) -> Vec<String> {
        let Some(definition) = self
            .primary()
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

    fn stop(&mut self, stops: &[(String, StopWhy)]) {
        let primary = self
            .primary()
            .and_then(|p| p.id.clone())
            .unwrap_or_default();
        let mut stopped = vec![];
        for (id, why) in stops {
            let key = (self.scope.clone(), self.cluster.to_string(), id.clone());
            let Some(current) = self.index.tasks.get(&key) else {
                continue;
            };
            let mut r = current.value.record();
            let reason = match why {
                StopWhy::Unhealthy => format!(
                    "{} in container {}",
                    task::UNHEALTHY_REASON,
                    unhealthy_container(&r)
                ),
                _ => format!("Scaling activity initiated by (deployment {primary})"),
            };
            if task::request_stop(
                &mut r.task,
                task::SERVICE_SCHEDULER_INITIATED,
                &reason,
                self.now,
            ) {
                let k = StoreKey::task(self.scope, self.cluster, id);
                self.txn = guarded_put(std::mem::take(&mut self.txn), self.index, &k, &r);
                stopped.push(id.clone());
            }
        }
        if !stopped.is_empty() {
            let list: Vec<String> = stopped.iter().map(|id| format!("(task {id})")).collect();
            self.say(format!(
                "has stopped {} running tasks: {}.",
                stopped.len(),
                list.join(" ")
            ));
        }
    }

    /// Starts PRIMARY copies: `count` anywhere, and one on each of `on`.
    fn start(&mut self, count: usize, on: &[String]) -> Vec<(String, String)> {
        if count == 0 && on.is_empty() {
            return vec![];
        }
        let Some(p) = self.primary().cloned() else {
            return vec![];
        };
        let td_arn = p.task_definition.clone().unwrap_or_default();
        let Some(definition) = definition(self.index, self.scope, &td_arn) else {
            self.say(format!(
                "was unable to place a task because its task definition {td_arn} no longer exists."
            ));
            return vec![];
        };
        let s = &self.record.service;
        let network = p
            .network_configuration
            .as_ref()
            .or(s.network_configuration.as_ref());
        let strategy = s.capacity_provider_strategy.clone().unwrap_or_default();
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
                self.say(format!("was unable to place a task. Reason: {}", e.message));
                return vec![];
            }
        };
        let targets = match providers {
            Some(providers) => {
                if network.is_none() {
                    self.say("was unable to place a task. Reason: Fargate only supports network mode 'awsvpc'.".into());
                    return vec![];
                }
                Targets::Fleet {
                    providers,
                    ephemeral_gib: fargate::DEFAULT_EPHEMERAL_GIB,
                }
            }
            None => Targets::Placed {
                count,
                on: on.to_vec(),
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
        let launched = match launch::plan(
            self.state,
            self.index,
            self.scope,
            self.cluster,
            &l,
            self.now,
        ) {
            Ok(launched) => launched,
            Err(launch::NoContainerInstances) => {
                self.say("was unable to place a task because no container instance met all of its requirements. Reason: No Container Instances were found in your cluster.".into());
                return vec![];
            }
        };
        self.say_refusals(&launched.refusals);
        self.txn.compares.extend(launched.txn.compares);
        self.txn.ops.extend(launched.txn.ops);
        let deployment = p.id.clone().unwrap_or_default();
        let started: Vec<(String, String)> = launched
            .tasks
            .into_iter()
            .map(|(id, _)| (id, deployment.clone()))
            .collect();
        self.say_started(&started);
        started
    }

    /// ECS's events for copies a pass could not start: the first of each kind.
    fn say_refusals(&mut self, refusals: &[Refusal]) {
        if let Some((arn, reason)) = refusals.iter().find_map(|r| match r {
            Refusal::Instance { arn, reason } => Some((arn, reason)),
            _ => None,
        }) {
            let id = arn.rsplit('/').next().unwrap_or_default();
            self.say(unable_to_place(id, reason));
        }
        let other = refusals.iter().find_map(|r| match r {
            Refusal::NoFleetCapacity => Some(launch::fleet::NO_CAPACITY.to_string()),
            Refusal::Network { reason, .. } => Some(reason.clone()),
            Refusal::Instance { .. } | Refusal::Missing(_) => None,
        });
        if let Some(reason) = other {
            self.say(format!("was unable to place a task. Reason: {reason}."));
        }
    }

    /// ECS's event for tasks a pass started.
    fn say_started(&mut self, started: &[(String, String)]) {
        if started.is_empty() {
            return;
        }
        let list: Vec<String> = started
            .iter()
            .map(|(id, _)| format!("(task {id})"))
            .collect();
        self.say(format!(
            "has started {} tasks: {}.",
            started.len(),
            list.join(" ")
        ));
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

    /// Counts per deployment and for the service; drops finished deployments;
    /// completes the PRIMARY one; tells of a steady state once per arrival.
    fn tally(
        &mut self,
        live: &[LiveTask],
        stopped: &[(String, StopWhy)],
        started: &[(String, String)],
    ) {
        let gone: BTreeSet<&str> = stopped.iter().map(|(id, _)| id.as_str()).collect();
        // (running, pending) per deployment, after this pass's stops and starts.
        let mut counts: HashMap<String, (i32, i32)> = HashMap::new();
        let mut healthy: HashMap<String, i32> = HashMap::new();
        let tasks = self.tasks();
        let status: HashMap<&str, Option<&str>> = tasks
            .iter()
            .map(|(id, r)| (*id, r.summary.last_status.as_deref()))
            .collect();
        for t in live.iter().filter(|t| !gone.contains(t.id.as_str())) {
            let e = counts.entry(t.deployment.clone()).or_default();
            let running = status.get(t.id.as_str()) == Some(&Some(task::RUNNING));
            if running {
                e.0 += 1;
            } else {
                e.1 += 1;
            }
            if t.healthy && !t.draining {
                *healthy.entry(t.deployment.clone()).or_default() += 1;
            }
        }
        for (_, dep) in started {
            counts.entry(dep.clone()).or_default().1 += 1;
        }
        // Deployments other than PRIMARY go once none of their tasks is left running or stopping.
        let unfinished: BTreeSet<String> = tasks
            .iter()
            .filter(|(_, r)| !r.summary.is_stopped())
            .filter_map(|(_, r)| r.summary.started_by.as_deref().map(String::from))
            .chain(started.iter().map(|(_, d)| d.clone()))
            .collect();
        let daemon = self.record.service.scheduling_strategy.as_deref() == Some(svc::DAEMON);
        let desired = if daemon {
            self.daemon_instances().len() as i32
        } else {
            self.record.service.desired_count.unwrap_or(0)
        };
        let now = self.now;
        let s = &mut self.record.service;
        if daemon && s.status.as_deref() == Some(svc::ACTIVE) {
            s.desired_count = Some(desired);
        }
        let deployments = s.deployments.get_or_insert_with(Vec::new);
        deployments.retain(|d| {
            d.status.as_deref() == Some(svc::PRIMARY)
                || d.id.as_ref().is_some_and(|id| unfinished.contains(id))
        });
        let (mut running, mut pending) = (0, 0);
        for d in deployments.iter_mut() {
            let id = d.id.clone().unwrap_or_default();
            let (r, p) = counts.get(&id).copied().unwrap_or_default();
            running += r;
            pending += p;
            let want = if d.status.as_deref() == Some(svc::PRIMARY) {
                s.desired_count.unwrap_or(0)
            } else {
                0
            };
            if (d.running_count, d.pending_count, d.desired_count) != (Some(r), Some(p), Some(want))
            {
                d.running_count = Some(r);
                d.pending_count = Some(p);
                d.desired_count = Some(want);
                d.updated_at = Some(now);
            }
        }
        s.running_count = Some(running);
        s.pending_count = Some(pending);
        let only_primary = deployments.len() == 1;
        let Some(p) = deployments
            .iter_mut()
            .find(|d| d.status.as_deref() == Some(svc::PRIMARY))
        else {
            return;
        };
        let id = p.id.clone().unwrap_or_default();
        let at_desired = healthy.get(&id).copied().unwrap_or(0) == desired
            && p.running_count == Some(desired)
            && p.pending_count == Some(0);
        let mut messages = vec![];
        if only_primary && at_desired && p.rollout_state.as_deref() == Some(svc::IN_PROGRESS) {
            p.rollout_state = Some(svc::COMPLETED.into());
            p.rollout_state_reason = Some(format!("ECS deployment {id} completed."));
            p.updated_at = Some(now);
            self.record.last_completed = Some(p.clone());
            messages.push(format!("(deployment {id}) deployment completed."));
        }
        let steady = only_primary && at_desired && s.status.as_deref() == Some(svc::ACTIVE);
        if steady && !self.record.steady {
            messages.push("has reached a steady state.".into());
        }
        self.record.steady = steady;
        for m in messages {
            self.say(m);
        }
    }

    /// A DRAINING service with no task left running becomes INACTIVE.
    fn finish_deletion(&mut self, stopped_now: &[(String, StopWhy)]) {
        let left =
            self.tasks().iter().any(|(_, r)| !r.summary.is_stopped()) || !stopped_now.is_empty();
        if !left {
            self.record.service.status = Some(svc::INACTIVE.into());
            self.record.service.deployments = Some(vec![]);
        }
    }
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
