//! One service controller pass as data: from a snapshot of one service (its
//! record, its tasks, the instances it may use, the time), everything the
//! pass does: failed launches counted, the circuit breaker and rollback,
//! the tasks to stop and why, the copies to start (through the caller's
//! `start`, which places them), the deployments' counts and rollout states,
//! the events, and whether a deletion finishes. Pure: time and ids come in
//! as values, so the same snapshot always gives the same outcome.
//!
//! ```text
//! Snapshot ─► count failures ─► circuit breaker (FAILED, rollback)
//!          ─► live tasks ─► berth_sched::service::reconcile_* ─► stops, starts
//!          ─► tally (counts, COMPLETED, steady state) ─► finish deletion
//!          = Outcome { record, stops, started, events }
//! ```
use crate::state::index::ServiceRecord;
use berth_api::ecs::Deployment;
use berth_model::service::{self as svc, DeploymentStatus, Fresh, RolloutState};
use berth_model::task::{self, TaskStatus};
use berth_model::task_protection;
use berth_sched::service::{self as plan, LiveTask, StopWhy};
use std::collections::{BTreeSet, HashMap};

/// What the pass reads of one of the service's tasks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskFacts {
    pub id: String,
    /// startedBy: the deployment it belongs to.
    pub deployment: Option<String>,
    pub last_status: Option<TaskStatus>,
    pub desired_status: Option<TaskStatus>,
    pub health_status: Option<String>,
    pub started_at: Option<f64>,
    pub instance: Option<String>,
    /// It stopped on its own (counts against its deployment's breaker).
    pub failed_launch: bool,
    /// Its last status is STOPPED.
    pub stopped: bool,
    /// Its task definition has a container health check.
    pub health_checked: bool,
    /// When its scale-in protection ends (epoch seconds).
    pub protected_until: Option<f64>,
}

/// One service as the pass sees it.
pub struct Snapshot<'a> {
    pub record: &'a ServiceRecord,
    pub tasks: Vec<TaskFacts>,
    /// The instances among the tasks' that are DRAINING.
    pub draining: BTreeSet<String>,
    /// For a DAEMON service: the ACTIVE, connected instances it covers.
    pub daemon_instances: Vec<String>,
    pub now: f64,
    /// The id a rollback deployment gets.
    pub fresh_deployment_id: &'a str,
}

/// Copies of a deployment the pass asks the caller to place and store.
pub struct Start<'a> {
    pub deployment: &'a Deployment,
    /// Copies wherever placement puts them.
    pub count: usize,
    /// One copy on each of these instances (DAEMON).
    pub on: &'a [String],
}

/// What the caller made of a `Start`.
#[derive(Debug, Default)]
pub struct Started {
    pub task_ids: Vec<String>,
    /// Why copies were not placed, as event messages (without the service prefix).
    pub events: Vec<String>,
}

/// A task the pass stops, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Stop {
    pub id: String,
    pub why: StopWhy,
}

/// Everything one pass does.
#[derive(Debug)]
pub struct Outcome {
    /// The service record after the pass (counts, deployments, status).
    pub record: ServiceRecord,
    pub stops: Vec<Stop>,
    /// (task id, deployment id) of the copies started.
    pub started: Vec<(String, String)>,
    /// Event messages, oldest first, each with the `(service NAME)` prefix.
    pub events: Vec<String>,
    /// Seconds until time alone changes what the pass would do (a task's
    /// health check grace period ending): the service's next pass is due then.
    pub requeue_after: Option<f64>,
}

/// ECS's stoppedReason for a task the scheduler stops.
pub fn stop_reason(why: StopWhy, primary: &str, unhealthy_container: &str) -> String {
    match why {
        StopWhy::Unhealthy => format!(
            "{} in container {unhealthy_container}",
            task::UNHEALTHY_REASON
        ),
        _ => format!("Scaling activity initiated by (deployment {primary})"),
    }
}

/// One pass over `snapshot`; `start` places and stores new copies.
pub fn reconcile(snapshot: &Snapshot<'_>, start: &mut dyn FnMut(&Start<'_>) -> Started) -> Outcome {
    let mut pass = Pass {
        s: snapshot,
        record: snapshot.record.clone(),
        events: vec![],
    };
    let draining_service = pass.record.service.status.as_deref() == Some(svc::DRAINING);
    pass.count_failures();
    if !draining_service {
        pass.circuit_breaker();
    }
    let live = pass.live_tasks();
    let decided = if draining_service {
        plan::Plan {
            stop: live
                .iter()
                .map(|t| (t.id.clone(), StopWhy::ScaledIn))
                .collect(),
            ..Default::default()
        }
    } else {
        pass.decide(&live)
    };
    let stops: Vec<Stop> = decided
        .stop
        .iter()
        .map(|(id, why)| Stop {
            id: id.clone(),
            why: *why,
        })
        .collect();
    pass.say_stopped(&stops);
    let started = pass.start(decided.start, &decided.start_on, start);
    pass.tally(&live, &stops, &started);
    if draining_service {
        pass.finish_deletion(&stops);
    }
    let requeue_after = pass.next_deadline();
    Outcome {
        record: pass.record,
        stops,
        started,
        events: pass.events,
        requeue_after,
    }
}

struct Pass<'a> {
    s: &'a Snapshot<'a>,
    record: ServiceRecord,
    events: Vec<String>,
}

impl Pass<'_> {
    fn name(&self) -> String {
        self.record.service.service_name.clone().unwrap_or_default()
    }

    fn say(&mut self, message: String) {
        let name = self.name();
        self.events.push(format!("(service {name}) {message}"));
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
        for t in &self.s.tasks {
            let Some(dep) = t.deployment.as_deref().filter(|d| ids.contains(*d)) else {
                continue;
            };
            if !t.failed_launch {
                continue;
            }
            let counted = self
                .record
                .counted_failures
                .entry(dep.to_string())
                .or_default();
            if counted.insert(t.id.clone()) {
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
    fn circuit_breaker(&mut self) {
        let (enabled, rollback) = svc::circuit_breaker(&self.record.service);
        let Some(p) = self.primary().cloned() else {
            return;
        };
        if !enabled || RolloutState::of(&p) != Some(RolloutState::InProgress) {
            return;
        }
        let desired = p.desired_count.unwrap_or(0).max(0) as usize;
        if (p.failed_tasks.unwrap_or(0).max(0) as usize) < plan::failure_threshold(desired) {
            return;
        }
        let now = self.s.now;
        let id = p.id.clone().unwrap_or_default();
        for d in self.record.service.deployments.iter_mut().flatten() {
            if d.id == p.id {
                d.rollout_state = Some(RolloutState::Failed.as_str().into());
                d.rollout_state_reason =
                    Some("ECS deployment circuit breaker: tasks failed to start.".into());
                d.updated_at = Some(now);
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
                deployment_id: self.s.fresh_deployment_id,
                now,
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

    /// The service's health check grace period, in seconds.
    fn grace(&self) -> f64 {
        self.record
            .service
            .health_check_grace_period_seconds
            .unwrap_or(0)
            .max(0) as f64
    }

    /// Wanted tasks that are RUNNING and fail their health checks, with how
    /// long they have run.
    fn failing_checks(&self) -> impl Iterator<Item = (&TaskFacts, f64)> {
        let now = self.s.now;
        self.s
            .tasks
            .iter()
            .filter(|t| t.desired_status == Some(TaskStatus::Running))
            .filter(|t| t.last_status == Some(TaskStatus::Running) && t.health_checked)
            .filter(|t| t.health_status.as_deref() == Some("UNHEALTHY"))
            .map(move |t| (t, now - t.started_at.unwrap_or(now)))
    }

    fn live_tasks(&self) -> Vec<LiveTask> {
        let grace = self.grace();
        let past_grace: BTreeSet<&str> = self
            .failing_checks()
            .filter(|(_, ran)| *ran >= grace)
            .map(|(t, _)| t.id.as_str())
            .collect();
        self.s
            .tasks
            .iter()
            .filter(|t| t.desired_status == Some(TaskStatus::Running))
            .map(|t| {
                let running = t.last_status == Some(TaskStatus::Running);
                let health = t.health_status.as_deref().unwrap_or("UNKNOWN");
                let instance = t.instance.clone().unwrap_or_default();
                LiveTask {
                    id: t.id.clone(),
                    deployment: t.deployment.clone().unwrap_or_default(),
                    healthy: running && (!t.health_checked || health == "HEALTHY"),
                    unhealthy: past_grace.contains(t.id.as_str()),
                    draining: self.s.draining.contains(&instance),
                    protected: task_protection::holds(t.protected_until, self.s.now),
                    instance,
                }
            })
            .collect()
    }

    /// When the first UNHEALTHY task still inside its grace period leaves it, or the
    /// first wanted task's protection ends: the pass looks again then.
    fn next_deadline(&self) -> Option<f64> {
        let grace = self.grace();
        let now = self.s.now;
        let protections = self
            .s
            .tasks
            .iter()
            .filter(|t| t.desired_status == Some(TaskStatus::Running))
            .filter_map(|t| t.protected_until.map(|until| until - now));
        self.failing_checks()
            .map(|(_, ran)| grace - ran)
            .chain(protections)
            .filter(|left| *left > 0.0)
            .min_by(f64::total_cmp)
    }

    fn decide(&self, live: &[LiveTask]) -> plan::Plan {
        let s = &self.record.service;
        let Some(p) = self.primary() else {
            return plan::Plan::default();
        };
        let (minimum, maximum) = svc::limits(s);
        let primary = p.id.clone().unwrap_or_default();
        let primary_failed = RolloutState::of(p) == Some(RolloutState::Failed);
        if s.scheduling_strategy.as_deref() == Some(svc::DAEMON) {
            return plan::reconcile_daemon(
                &plan::Daemon {
                    eligible: self.s.daemon_instances.clone(),
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

    fn say_stopped(&mut self, stops: &[Stop]) {
        if stops.is_empty() {
            return;
        }
        let list: Vec<String> = stops.iter().map(|s| format!("(task {})", s.id)).collect();
        self.say(format!(
            "has stopped {} running tasks: {}.",
            stops.len(),
            list.join(" ")
        ));
    }

    /// Starts PRIMARY copies through the caller: `count` anywhere, one on each of `on`.
    fn start(
        &mut self,
        count: usize,
        on: &[String],
        start: &mut dyn FnMut(&Start<'_>) -> Started,
    ) -> Vec<(String, String)> {
        if count == 0 && on.is_empty() {
            return vec![];
        }
        let Some(p) = self.primary().cloned() else {
            return vec![];
        };
        let made = start(&Start {
            deployment: &p,
            count,
            on,
        });
        for message in made.events {
            self.say(message);
        }
        let deployment = p.id.clone().unwrap_or_default();
        let started: Vec<(String, String)> = made
            .task_ids
            .into_iter()
            .map(|id| (id, deployment.clone()))
            .collect();
        if !started.is_empty() {
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
        started
    }

    /// Counts per deployment and for the service; drops finished deployments;
    /// completes the PRIMARY one; tells of a steady state once per arrival.
    fn tally(&mut self, live: &[LiveTask], stopped: &[Stop], started: &[(String, String)]) {
        let gone: BTreeSet<&str> = stopped.iter().map(|s| s.id.as_str()).collect();
        // (running, pending) per deployment, after this pass's stops and starts.
        let mut counts: HashMap<String, (i32, i32)> = HashMap::new();
        let mut healthy: HashMap<String, i32> = HashMap::new();
        let status: HashMap<&str, Option<TaskStatus>> = self
            .s
            .tasks
            .iter()
            .map(|t| (t.id.as_str(), t.last_status))
            .collect();
        for t in live.iter().filter(|t| !gone.contains(t.id.as_str())) {
            let e = counts.entry(t.deployment.clone()).or_default();
            let running = status.get(t.id.as_str()) == Some(&Some(TaskStatus::Running));
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
        let unfinished: BTreeSet<String> = self
            .s
            .tasks
            .iter()
            .filter(|t| !t.stopped)
            .filter_map(|t| t.deployment.clone())
            .chain(started.iter().map(|(_, d)| d.clone()))
            .collect();
        let daemon = self.record.service.scheduling_strategy.as_deref() == Some(svc::DAEMON);
        let desired = if daemon {
            self.s.daemon_instances.len() as i32
        } else {
            self.record.service.desired_count.unwrap_or(0)
        };
        let now = self.s.now;
        let s = &mut self.record.service;
        if daemon && s.status.as_deref() == Some(svc::ACTIVE) {
            s.desired_count = Some(desired);
        }
        let deployments = s.deployments.get_or_insert_with(Vec::new);
        deployments.retain(|d| {
            DeploymentStatus::of(d) == Some(DeploymentStatus::Primary)
                || d.id.as_ref().is_some_and(|id| unfinished.contains(id))
        });
        let (mut running, mut pending) = (0, 0);
        for d in deployments.iter_mut() {
            let id = d.id.clone().unwrap_or_default();
            let (r, p) = counts.get(&id).copied().unwrap_or_default();
            running += r;
            pending += p;
            let want = if DeploymentStatus::of(d) == Some(DeploymentStatus::Primary) {
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
            .find(|d| DeploymentStatus::of(d) == Some(DeploymentStatus::Primary))
        else {
            return;
        };
        let id = p.id.clone().unwrap_or_default();
        let at_desired = healthy.get(&id).copied().unwrap_or(0) == desired
            && p.running_count == Some(desired)
            && p.pending_count == Some(0);
        let mut messages = vec![];
        if only_primary && at_desired && RolloutState::of(p) == Some(RolloutState::InProgress) {
            p.rollout_state = Some(RolloutState::Completed.as_str().into());
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
    fn finish_deletion(&mut self, stopped_now: &[Stop]) {
        let left = self.s.tasks.iter().any(|t| !t.stopped) || !stopped_now.is_empty();
        if !left {
            self.record.service.status = Some(svc::INACTIVE.into());
            self.record.service.deployments = Some(vec![]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::ecs::{DeploymentCircuitBreaker, DeploymentConfiguration, Service};
    use proptest::prelude::*;

    const PRIMARY: &str = "ecs-svc/0000000000000000002";
    const OLD: &str = "ecs-svc/0000000000000000001";
    const FRESH: &str = "ecs-svc/0000000000000000003";

    fn deployment(id: &str, status: &str, td: &str, desired: i32) -> Deployment {
        Deployment {
            id: Some(id.into()),
            status: Some(status.into()),
            task_definition: Some(td.into()),
            desired_count: Some(desired),
            rollout_state: Some(svc::IN_PROGRESS.into()),
            ..Default::default()
        }
    }

    fn record(desired: i32, minimum: i32, maximum: i32, with_old: bool) -> ServiceRecord {
        let mut deployments = vec![deployment(PRIMARY, svc::PRIMARY, "web:2", desired)];
        if with_old {
            deployments.push(deployment(OLD, "ACTIVE", "web:1", 0));
        }
        ServiceRecord {
            service: Service {
                service_name: Some("web".into()),
                status: Some(svc::ACTIVE.into()),
                desired_count: Some(desired),
                deployment_configuration: Some(DeploymentConfiguration {
                    minimum_healthy_percent: Some(minimum),
                    maximum_percent: Some(maximum),
                    deployment_circuit_breaker: Some(DeploymentCircuitBreaker {
                        enable: Some(true),
                        rollback: Some(true),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                deployments: Some(deployments),
                ..Default::default()
            },
            last_completed: None,
            steady: false,
            counted_failures: Default::default(),
        }
    }

    fn task(id: usize, deployment: &str, last: TaskStatus) -> TaskFacts {
        TaskFacts {
            id: format!("t{id}"),
            deployment: Some(deployment.into()),
            last_status: Some(last),
            desired_status: Some(TaskStatus::Running),
            instance: Some("arn:aws:ecs:us-east-1:1:container-instance/c/i1".into()),
            ..Default::default()
        }
    }

    fn snapshot(record: &ServiceRecord, tasks: Vec<TaskFacts>) -> Snapshot<'_> {
        Snapshot {
            record,
            tasks,
            draining: BTreeSet::new(),
            daemon_instances: vec![],
            now: 1_000.0,
            fresh_deployment_id: FRESH,
        }
    }

    /// A start that places every copy asked for.
    fn place_all() -> impl FnMut(&Start<'_>) -> Started {
        let mut n = 0;
        move |s: &Start<'_>| {
            let ids = (0..s.count + s.on.len())
                .map(|_| {
                    n += 1;
                    format!("new{n}")
                })
                .collect();
            Started {
                task_ids: ids,
                events: vec![],
            }
        }
    }

    fn healthy(tasks: &[TaskFacts]) -> usize {
        tasks
            .iter()
            .filter(|t| t.last_status == Some(TaskStatus::Running))
            .count()
    }

    /// A service mid-rollout: tasks of the PRIMARY and an older deployment,
    /// each PENDING or RUNNING.
    fn rollout() -> impl Strategy<Value = (i32, i32, i32, Vec<(bool, bool)>)> {
        (
            0i32..8,
            prop::sample::select(vec![0, 50, 100]),
            prop::sample::select(vec![100, 150, 200]),
            prop::collection::vec((any::<bool>(), any::<bool>()), 0..12),
        )
    }

    fn tasks_of(shape: &[(bool, bool)]) -> Vec<TaskFacts> {
        shape
            .iter()
            .enumerate()
            .map(|(i, (primary, running))| {
                let dep = if *primary { PRIMARY } else { OLD };
                let last = if *running {
                    TaskStatus::Running
                } else {
                    TaskStatus::Pending
                };
                task(i, dep, last)
            })
            .collect()
    }

    proptest! {
        #[test]
        fn never_more_than_maximum_percent_and_never_below_minimum_healthy(
            (desired, minimum, maximum, shape) in rollout()
        ) {
            let r = record(desired, minimum, maximum, true);
            let tasks = tasks_of(&shape);
            let before = healthy(&tasks);
            let out = reconcile(&snapshot(&r, tasks.clone()), &mut place_all());
            let stopped: BTreeSet<&str> = out.stops.iter().map(|s| s.id.as_str()).collect();
            let left: Vec<TaskFacts> =
                tasks.iter().filter(|t| !stopped.contains(t.id.as_str())).cloned().collect();
            let live_after = left.len() + out.started.len();
            let d = desired as usize;
            if !out.started.is_empty() {
                prop_assert!(live_after <= plan::maximum_total(d, maximum as u32),
                    "{live_after} live with {} started", out.started.len());
            }
            let floor = plan::minimum_healthy(d, minimum as u32).min(before);
            prop_assert!(healthy(&left) >= floor, "{} healthy left of {before}", healthy(&left));
            prop_assert!(out.started.iter().all(|(_, dep)| dep == PRIMARY));
        }

        #[test]
        fn the_breaker_trips_at_its_threshold_and_rolls_back_to_the_last_completed(
            desired in 1i32..10, failed in 0usize..12
        ) {
            let mut r = record(desired, 100, 200, false);
            r.last_completed = Some(Deployment {
                rollout_state: Some(svc::COMPLETED.into()),
                ..deployment(OLD, svc::PRIMARY, "web:1", desired)
            });
            let tasks: Vec<TaskFacts> = (0..failed)
                .map(|i| TaskFacts {
                    last_status: Some(TaskStatus::Stopped),
                    desired_status: Some(TaskStatus::Stopped),
                    stopped: true,
                    failed_launch: true,
                    ..task(i, PRIMARY, TaskStatus::Stopped)
                })
                .collect();
            let out = reconcile(&snapshot(&r, tasks), &mut place_all());
            let deployments = out.record.service.deployments.clone().unwrap_or_default();
            let tripped = failed >= plan::failure_threshold(desired as usize);
            let primary = svc::primary(&out.record.service).unwrap();
            if tripped {
                prop_assert_eq!(primary.id.as_deref(), Some(FRESH));
                prop_assert_eq!(primary.task_definition.as_deref(), Some("web:1"));
                let failed_one = deployments.iter().find(|d| d.id.as_deref() == Some(PRIMARY));
                // The failed deployment has no task left: it leaves the list.
                prop_assert!(failed_one.is_none());
                prop_assert!(out.events.iter().any(|e| e.contains("deployment failed: tasks failed to start.")));
                let rolling_back = format!("rolling back to deployment {}.", OLD);
                prop_assert!(out.events.iter().any(|e| e.contains(&rolling_back)));
                prop_assert!(out.started.iter().all(|(_, dep)| dep == FRESH));
            } else {
                prop_assert_eq!(primary.id.as_deref(), Some(PRIMARY));
                prop_assert_eq!(primary.failed_tasks, Some(failed as i32).filter(|n| *n > 0));
                prop_assert_eq!(primary.rollout_state.as_deref(), Some(svc::IN_PROGRESS));
            }
        }

        #[test]
        fn a_stable_service_plans_nothing(desired in 0i32..8) {
            let r = record(desired, 100, 200, false);
            let tasks: Vec<TaskFacts> =
                (0..desired as usize).map(|i| task(i, PRIMARY, TaskStatus::Running)).collect();
            let first = reconcile(&snapshot(&r, tasks.clone()), &mut place_all());
            prop_assert!(first.stops.is_empty() && first.started.is_empty());
            prop_assert!(first.record.steady);
            let again = reconcile(&snapshot(&first.record, tasks), &mut place_all());
            prop_assert!(again.stops.is_empty());
            prop_assert!(again.started.is_empty());
            prop_assert!(again.events.is_empty(), "{:?}", again.events);
            prop_assert_eq!(
                serde_json::to_value(&again.record).unwrap(),
                serde_json::to_value(&first.record).unwrap()
            );
        }
    }

    #[test]
    fn a_rollout_completes_and_says_so_once() {
        let r = record(2, 100, 200, false);
        let tasks = vec![
            task(0, PRIMARY, TaskStatus::Running),
            task(1, PRIMARY, TaskStatus::Running),
        ];
        let out = reconcile(&snapshot(&r, tasks), &mut place_all());
        let p = svc::primary(&out.record.service).unwrap();
        assert_eq!(p.rollout_state.as_deref(), Some(svc::COMPLETED));
        assert_eq!((p.running_count, p.pending_count), (Some(2), Some(0)));
        assert_eq!(
            out.events,
            [
                format!("(service web) (deployment {PRIMARY}) deployment completed."),
                "(service web) has reached a steady state.".to_string(),
            ]
        );
        assert_eq!(
            out.record.last_completed.unwrap().id.as_deref(),
            Some(PRIMARY)
        );
    }

    #[test]
    fn scaling_out_starts_the_missing_copies_and_tells_the_callers_refusals() {
        let r = record(3, 100, 200, false);
        let tasks = vec![task(0, PRIMARY, TaskStatus::Running)];
        let mut asked = vec![];
        let out = reconcile(&snapshot(&r, tasks), &mut |s: &Start<'_>| {
            asked.push(s.count);
            Started {
                task_ids: vec!["new1".into()],
                events: vec!["was unable to place a task. Reason: full.".into()],
            }
        });
        assert_eq!(asked, [2]);
        assert_eq!(out.started, [("new1".to_string(), PRIMARY.to_string())]);
        assert_eq!(
            out.events,
            [
                "(service web) was unable to place a task. Reason: full.",
                "(service web) has started 1 tasks: (task new1).",
            ]
        );
        let p = svc::primary(&out.record.service).unwrap();
        assert_eq!((p.running_count, p.pending_count), (Some(1), Some(1)));
    }

    #[test]
    fn a_deleted_service_stops_everything_then_goes_inactive() {
        let mut r = record(2, 100, 200, false);
        r.service.status = Some(svc::DRAINING.into());
        let tasks = vec![task(0, PRIMARY, TaskStatus::Running)];
        let out = reconcile(&snapshot(&r, tasks), &mut place_all());
        assert_eq!(
            out.stops,
            [Stop {
                id: "t0".into(),
                why: StopWhy::ScaledIn
            }]
        );
        assert_eq!(out.record.service.status.as_deref(), Some(svc::DRAINING));
        let gone = vec![TaskFacts {
            stopped: true,
            desired_status: Some(TaskStatus::Stopped),
            ..task(0, PRIMARY, TaskStatus::Stopped)
        }];
        let out = reconcile(&snapshot(&out.record, gone), &mut place_all());
        assert_eq!(out.record.service.status.as_deref(), Some(svc::INACTIVE));
        assert_eq!(out.record.service.deployments, Some(vec![]));
    }

    #[test]
    fn an_unhealthy_task_in_its_grace_period_is_replaced_when_the_period_ends() {
        let mut r = record(1, 100, 200, false);
        r.service.health_check_grace_period_seconds = Some(60);
        let sick = TaskFacts {
            health_checked: true,
            health_status: Some("UNHEALTHY".into()),
            started_at: Some(1_000.0 - 20.0),
            ..task(0, PRIMARY, TaskStatus::Running)
        };
        let mut at = snapshot(&r, vec![sick.clone()]);
        let out = reconcile(&at, &mut place_all());
        assert!(out.stops.is_empty(), "still in its grace period");
        assert_eq!(out.requeue_after, Some(40.0));
        at.now += 40.0;
        let out = reconcile(&at, &mut place_all());
        assert_eq!(
            out.stops,
            [Stop {
                id: "t0".into(),
                why: StopWhy::Unhealthy
            }]
        );
        assert_eq!(out.requeue_after, None);
    }

    #[test]
    fn a_protected_task_outlives_scale_in_until_its_protection_ends() {
        let r = record(1, 100, 200, false);
        let guarded = TaskFacts {
            protected_until: Some(1_000.0 + 90.0),
            ..task(0, PRIMARY, TaskStatus::Running)
        };
        let tasks = vec![guarded, task(1, PRIMARY, TaskStatus::Running)];
        let mut at = snapshot(&r, tasks);
        let out = reconcile(&at, &mut place_all());
        assert_eq!(
            out.stops,
            [Stop {
                id: "t1".into(),
                why: StopWhy::ScaledIn
            }]
        );
        at.tasks.retain(|t| t.id == "t0");
        let mut r0 = r.clone();
        r0.service.desired_count = Some(0);
        let mut at0 = snapshot(&r0, at.tasks.clone());
        let out = reconcile(&at0, &mut place_all());
        assert!(out.stops.is_empty(), "protected for 90 s more");
        assert_eq!(out.requeue_after, Some(90.0));
        at0.now += 90.0;
        let out = reconcile(&at0, &mut place_all());
        assert_eq!(out.stops.len(), 1);
        assert_eq!(out.requeue_after, None);
    }

    #[test]
    fn stop_reasons_are_ecs_words() {
        assert_eq!(
            stop_reason(StopWhy::Replaced, PRIMARY, ""),
            format!("Scaling activity initiated by (deployment {PRIMARY})")
        );
        assert!(stop_reason(StopWhy::Unhealthy, PRIMARY, "web").ends_with(" in container web"));
    }
}
