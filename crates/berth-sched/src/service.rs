//! The service controller's decision: from a snapshot of one service's
//! deployments and live tasks, which tasks to start and which to stop.
//! Pure and idempotent: run it again on the same snapshot and it asks for
//! the same things; the caller commits them and asks again later.
//!
//! ```text
//! live tasks ──classify──► keep (PRIMARY, on a usable instance)
//!                          replace (older deployments, DRAINING instances)
//!                          unhealthy (failed health checks past the grace period)
//!            ──limits────► stop unhealthy; stop replaceable down to minimumHealthyPercent;
//!                          start PRIMARY copies up to desiredCount within maximumPercent
//! ```
use std::collections::{BTreeMap, BTreeSet};

/// One task of the service that is still wanted (desiredStatus RUNNING).
#[derive(Debug, Clone, PartialEq)]
pub struct LiveTask {
    pub id: String,
    pub deployment: String,
    pub instance: String,
    /// RUNNING, and HEALTHY where the task definition has a health check.
    pub healthy: bool,
    /// Failed its health checks after the grace period: to be replaced.
    pub unhealthy: bool,
    /// Its instance is DRAINING: to be moved elsewhere.
    pub draining: bool,
    /// Scale-in protected (UpdateTaskProtection): scale-in and deployments leave it running.
    pub protected: bool,
}

/// Why the controller stops a task (the caller words the stoppedReason).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopWhy {
    Unhealthy,
    Draining,
    Replaced,
    ScaledIn,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// New copies of the PRIMARY deployment to place anywhere.
    pub start: usize,
    /// For DAEMON services: one new PRIMARY copy on each of these instances.
    pub start_on: Vec<String>,
    pub stop: Vec<(String, StopWhy)>,
}

/// What a REPLICA service asks for.
#[derive(Debug, Clone)]
pub struct Replica {
    pub desired: usize,
    pub minimum_healthy_percent: u32,
    pub maximum_percent: u32,
    pub primary: String,
    /// The PRIMARY deployment failed (circuit breaker, no rollback): start nothing, stop nothing healthy.
    pub primary_failed: bool,
}

/// Fewest healthy tasks a deployment must keep: desired × minimum %, rounded up.
pub fn minimum_healthy(desired: usize, percent: u32) -> usize {
    (desired * percent as usize).div_ceil(100)
}

/// Most tasks a deployment may have: desired × maximum %, rounded down.
pub fn maximum_total(desired: usize, percent: u32) -> usize {
    desired * percent as usize / 100
}

/// Failed launches after which the circuit breaker trips: half the desired
/// count, rounded up, between 3 and 200 (ECS's bounds).
pub fn failure_threshold(desired: usize) -> usize {
    desired.div_ceil(2).clamp(3, 200)
}

pub fn reconcile_replica(spec: &Replica, live: &[LiveTask]) -> Plan {
    let mut plan = Plan::default();
    let mut stopped: BTreeSet<&str> = BTreeSet::new();
    for t in live.iter().filter(|t| t.unhealthy) {
        plan.stop.push((t.id.clone(), StopWhy::Unhealthy));
        stopped.insert(&t.id);
    }
    let rest: Vec<&LiveTask> = live.iter().filter(|t| !t.unhealthy).collect();
    let (mut keep, replace): (Vec<&LiveTask>, Vec<&LiveTask>) = rest
        .iter()
        .partition(|t| t.deployment == spec.primary && !t.draining);
    // Scale in: pending copies go first, then the newest (last by id order is arbitrary but
    // stable); protected copies stay, over the desired count, until their protection ends.
    if keep.len() > spec.desired {
        keep.sort_by_key(|t| (t.protected, t.healthy));
        let excess = keep.len() - spec.desired;
        let unprotected = keep.iter().filter(|t| !t.protected).count();
        for t in keep.drain(..excess.min(unprotected)) {
            plan.stop.push((t.id.clone(), StopWhy::ScaledIn));
            stopped.insert(&t.id);
        }
    }
    let minimum = minimum_healthy(spec.desired, spec.minimum_healthy_percent);
    let mut healthy = rest
        .iter()
        .filter(|t| t.healthy && !stopped.contains(t.id.as_str()))
        .count();
    // Replaceable copies that are not yet healthy hold up nothing; healthy ones
    // go only while enough others stay healthy.
    let mut replace = replace;
    replace.sort_by_key(|t| (t.healthy, !t.draining));
    for t in replace {
        let why = if t.draining && t.deployment == spec.primary {
            StopWhy::Draining
        } else {
            StopWhy::Replaced
        };
        if t.protected && why == StopWhy::Replaced {
            continue;
        }
        if !t.healthy {
            if spec.primary_failed && !t.draining {
                continue;
            }
            plan.stop.push((t.id.clone(), why));
            stopped.insert(&t.id);
        } else if !spec.primary_failed && healthy > minimum {
            plan.stop.push((t.id.clone(), why));
            stopped.insert(&t.id);
            healthy -= 1;
        }
    }
    if !spec.primary_failed {
        let remaining = live
            .iter()
            .filter(|t| !stopped.contains(t.id.as_str()))
            .count();
        let room = maximum_total(spec.desired, spec.maximum_percent).saturating_sub(remaining);
        // A protected copy of an older deployment still counts against maximumPercent.
        plan.start = spec.desired.saturating_sub(keep.len()).min(room);
    }
    plan
}

/// What a DAEMON service asks for: one copy on every eligible instance.
#[derive(Debug, Clone)]
pub struct Daemon {
    /// Instances that should run a copy (ACTIVE, agent connected, constraints met).
    pub eligible: Vec<String>,
    pub minimum_healthy_percent: u32,
    pub maximum_percent: u32,
    pub primary: String,
    pub primary_failed: bool,
}

pub fn reconcile_daemon(spec: &Daemon, live: &[LiveTask]) -> Plan {
    let mut plan = Plan::default();
    let eligible: BTreeSet<&str> = spec.eligible.iter().map(String::as_str).collect();
    let mut by_instance: BTreeMap<&str, Vec<&LiveTask>> = BTreeMap::new();
    for t in live {
        if t.unhealthy {
            plan.stop.push((t.id.clone(), StopWhy::Unhealthy));
        } else if t.draining || !eligible.contains(t.instance.as_str()) {
            plan.stop.push((t.id.clone(), StopWhy::Draining));
        } else {
            by_instance.entry(&t.instance).or_default().push(t);
        }
    }
    let minimum = minimum_healthy(spec.eligible.len(), spec.minimum_healthy_percent);
    let mut healthy = by_instance.values().flatten().filter(|t| t.healthy).count();
    for instance in &spec.eligible {
        let tasks = by_instance.remove(instance.as_str()).unwrap_or_default();
        let (mut primary, old): (Vec<&LiveTask>, Vec<&LiveTask>) = tasks
            .into_iter()
            .partition(|t| t.deployment == spec.primary);
        primary.sort_by_key(|t| !t.healthy);
        for extra in primary.iter().skip(1).filter(|t| !t.protected) {
            plan.stop.push((extra.id.clone(), StopWhy::ScaledIn));
        }
        let new_healthy = primary.first().is_some_and(|t| t.healthy);
        if spec.primary_failed {
            continue;
        }
        for o in old.iter().filter(|o| !o.protected) {
            // The new copy is up, or the old one may go while enough stay healthy.
            let may_stop = new_healthy || !o.healthy || healthy > minimum;
            let must_stop_first = primary.is_empty() && spec.maximum_percent <= 100;
            if new_healthy || (must_stop_first && may_stop) {
                plan.stop.push((o.id.clone(), StopWhy::Replaced));
                if o.healthy && !new_healthy {
                    healthy -= 1;
                }
            }
        }
        // At 100% the old copy must be gone (not just asked to stop) before the new one starts.
        if primary.is_empty() && (old.is_empty() || spec.maximum_percent > 100) {
            plan.start_on.push(instance.clone());
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str, deployment: &str, healthy: bool) -> LiveTask {
        LiveTask {
            id: id.into(),
            deployment: deployment.into(),
            instance: "i-1".into(),
            healthy,
            unhealthy: false,
            draining: false,
            protected: false,
        }
    }

    fn replica(desired: usize, min: u32, max: u32) -> Replica {
        Replica {
            desired,
            minimum_healthy_percent: min,
            maximum_percent: max,
            primary: "new".into(),
            primary_failed: false,
        }
    }

    fn stops(p: &Plan) -> Vec<&str> {
        p.stop.iter().map(|(id, _)| id.as_str()).collect()
    }

    #[test]
    fn starts_missing_copies_and_nothing_more() {
        let p = reconcile_replica(&replica(3, 100, 200), &[task("a", "new", true)]);
        assert_eq!(p.start, 2);
        assert!(p.stop.is_empty());
        let p = reconcile_replica(&replica(1, 100, 200), &[task("a", "new", true)]);
        assert_eq!(p, Plan::default());
    }

    #[test]
    fn scale_in_stops_pending_copies_first() {
        let live = [
            task("a", "new", true),
            task("b", "new", false),
            task("c", "new", true),
        ];
        let p = reconcile_replica(&replica(2, 100, 200), &live);
        assert_eq!(stops(&p), vec!["b"]);
        assert_eq!(p.stop[0].1, StopWhy::ScaledIn);
        assert_eq!(p.start, 0);
    }

    fn protected(id: &str, deployment: &str) -> LiveTask {
        LiveTask {
            protected: true,
            ..task(id, deployment, true)
        }
    }

    #[test]
    fn protected_copies_outlive_scale_in_and_deployments_but_not_failures() {
        let live = [
            protected("a", "new"),
            task("b", "new", true),
            protected("c", "new"),
        ];
        // Scaling to one stops only the unprotected copy; the protected two stay over desired.
        let p = reconcile_replica(&replica(1, 100, 200), &live);
        assert_eq!(stops(&p), vec!["b"]);
        let p = reconcile_replica(&replica(0, 100, 200), &[protected("a", "new")]);
        assert_eq!(p, Plan::default());
        // A deployment replaces unprotected old copies and leaves protected ones be.
        let old = [protected("a", "old"), task("b", "old", false)];
        let p = reconcile_replica(&replica(2, 0, 200), &old);
        assert_eq!(stops(&p), vec!["b"]);
        assert_eq!(p.start, 2);
        // Failing health checks and draining instances still move a protected copy.
        let sick = LiveTask {
            unhealthy: true,
            ..protected("s", "new")
        };
        let drained = LiveTask {
            draining: true,
            ..protected("d", "new")
        };
        let p = reconcile_replica(&replica(2, 0, 200), &[sick, drained]);
        assert_eq!(stops(&p), vec!["s", "d"]);
        // Daemons: a protected old copy stays beside the new one.
        let live = [
            on("n", "i-1", "new", true),
            LiveTask {
                protected: true,
                ..on("o", "i-1", "old", true)
            },
        ];
        let p = reconcile_daemon(&daemon(&["i-1"]), &live);
        assert!(p.stop.is_empty(), "{p:?}");
    }

    #[test]
    fn rolling_update_respects_minimum_and_maximum() {
        let old = [task("a", "old", true), task("b", "old", true)];
        // 100/200: start both new copies first, stop nothing yet.
        let p = reconcile_replica(&replica(2, 100, 200), &old);
        assert_eq!((p.start, stops(&p).len()), (2, 0));
        // 50/100: stop one old copy, then start one new in the room it leaves.
        let p = reconcile_replica(&replica(2, 50, 100), &old);
        assert_eq!((p.start, stops(&p).len()), (1, 1));
        // 100/150: one new copy at a time.
        let p = reconcile_replica(&replica(2, 100, 150), &old);
        assert_eq!((p.start, stops(&p).len()), (1, 0));
        // New copies healthy: every old one goes.
        let mut live = old.to_vec();
        live.extend([task("c", "new", true), task("d", "new", true)]);
        let p = reconcile_replica(&replica(2, 100, 200), &live);
        assert_eq!(stops(&p), vec!["a", "b"]);
        assert_eq!(p.start, 0);
        // A new copy still pending: only one old may go.
        live[3].healthy = false;
        let p = reconcile_replica(&replica(2, 100, 200), &live);
        assert_eq!(stops(&p).len(), 1);
    }

    #[test]
    fn unhealthy_and_draining_copies_are_replaced() {
        let mut sick = task("a", "new", true);
        sick.unhealthy = true;
        sick.healthy = false;
        let mut moving = task("b", "new", true);
        moving.draining = true;
        let p = reconcile_replica(&replica(2, 50, 200), &[sick, moving]);
        assert_eq!(p.stop, vec![("a".into(), StopWhy::Unhealthy)]);
        assert_eq!(p.start, 2);
        // With the replacements healthy, the draining copy goes.
        let mut moving = task("b", "new", true);
        moving.draining = true;
        let live = [moving, task("c", "new", true), task("d", "new", true)];
        let p = reconcile_replica(&replica(2, 100, 200), &live);
        assert_eq!(p.stop, vec![("b".into(), StopWhy::Draining)]);
    }

    #[test]
    fn a_failed_primary_starts_nothing_and_keeps_old_copies() {
        let mut spec = replica(2, 100, 200);
        spec.primary_failed = true;
        let p = reconcile_replica(&spec, &[task("a", "old", true)]);
        assert_eq!(p, Plan::default());
    }

    #[test]
    fn thresholds_follow_ecs_rounding() {
        assert_eq!(minimum_healthy(3, 50), 2);
        assert_eq!(maximum_total(3, 150), 4);
        assert_eq!(failure_threshold(1), 3);
        assert_eq!(failure_threshold(10), 5);
        assert_eq!(failure_threshold(1000), 200);
    }

    fn on(id: &str, instance: &str, deployment: &str, healthy: bool) -> LiveTask {
        LiveTask {
            instance: instance.into(),
            ..task(id, deployment, healthy)
        }
    }

    fn daemon(eligible: &[&str]) -> Daemon {
        Daemon {
            eligible: eligible.iter().map(|s| s.to_string()).collect(),
            minimum_healthy_percent: 0,
            maximum_percent: 100,
            primary: "new".into(),
            primary_failed: false,
        }
    }

    #[test]
    fn daemon_follows_instances() {
        let live = [on("a", "i-1", "new", true), on("b", "i-gone", "new", true)];
        let p = reconcile_daemon(&daemon(&["i-1", "i-2"]), &live);
        assert_eq!(p.start_on, vec!["i-2".to_string()]);
        assert_eq!(p.stop, vec![("b".into(), StopWhy::Draining)]);
    }

    #[test]
    fn daemon_rollout_stops_old_before_starting_new_at_maximum_100() {
        let live = [on("a", "i-1", "old", true)];
        let p = reconcile_daemon(&daemon(&["i-1"]), &live);
        assert_eq!(p.stop, vec![("a".into(), StopWhy::Replaced)]);
        assert!(p.start_on.is_empty());
        // At 200% the new copy starts alongside, and the old one goes once it is healthy.
        let mut spec = daemon(&["i-1"]);
        spec.maximum_percent = 200;
        let p = reconcile_daemon(&spec, &live);
        assert_eq!(p.start_on, vec!["i-1".to_string()]);
        assert!(p.stop.is_empty());
        let live = [on("a", "i-1", "old", true), on("b", "i-1", "new", true)];
        let p = reconcile_daemon(&spec, &live);
        assert_eq!(stops(&p), vec!["a"]);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn live_task() -> impl Strategy<Value = LiveTask> {
            (0..3u8, any::<bool>(), any::<bool>(), any::<bool>(), 0..4u8).prop_map(
                |(d, healthy, unhealthy, draining, p)| LiveTask {
                    id: String::new(),
                    deployment: if d == 0 { "new" } else { "old" }.into(),
                    instance: "i-1".into(),
                    healthy: healthy && !unhealthy,
                    unhealthy,
                    draining,
                    protected: p == 0,
                },
            )
        }

        proptest! {
            #[test]
            fn replica_plans_stay_within_limits(
                mut live in proptest::collection::vec(live_task(), 0..12),
                desired in 0usize..8,
                min in prop_oneof![Just(0u32), Just(50), Just(100)],
                max in prop_oneof![Just(100u32), Just(150), Just(200)],
            ) {
                for (i, t) in live.iter_mut().enumerate() {
                    t.id = format!("t{i}");
                }
                let spec = replica(desired, min, max);
                let p = reconcile_replica(&spec, &live);
                let stopped: BTreeSet<&str> = p.stop.iter().map(|(id, _)| id.as_str()).collect();
                prop_assert_eq!(stopped.len(), p.stop.len(), "a task is stopped once");
                let left: Vec<&LiveTask> =
                    live.iter().filter(|t| !stopped.contains(t.id.as_str())).collect();
                // Starting never pushes the live count past maximumPercent.
                prop_assert!(p.start == 0 || left.len() + p.start <= maximum_total(desired, max));
                // Never more primary copies than desired.
                let kept = left.iter().filter(|t| t.deployment == "new" && !t.draining).count();
                prop_assert!(kept + p.start <= desired.max(kept));
                let kept_unprotected = left
                    .iter()
                    .filter(|t| t.deployment == "new" && !t.draining && !t.protected)
                    .count();
                prop_assert!(kept_unprotected <= desired);
                // Protection holds against scale-in and deployments.
                for (id, why) in &p.stop {
                    let t = live.iter().find(|t| &t.id == id).unwrap();
                    prop_assert!(!t.protected || matches!(why, StopWhy::Unhealthy | StopWhy::Draining));
                }
                // Stopping healthy copies never takes the healthy count below the minimum.
                let healthy_before = live.iter().filter(|t| t.healthy).count();
                let healthy_after = left.iter().filter(|t| t.healthy).count();
                let scaled_in = p.stop.iter().filter(|(_, w)| *w == StopWhy::ScaledIn).count();
                prop_assert!(
                    healthy_after == healthy_before
                        || healthy_after + scaled_in >= minimum_healthy(desired, min)
                );
                // Unhealthy copies always go.
                for t in live.iter().filter(|t| t.unhealthy) {
                    prop_assert!(stopped.contains(t.id.as_str()));
                }
            }
        }
    }
}
