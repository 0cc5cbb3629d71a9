//! What the poll loop must do so that this host's runners match the task set
//! the control plane desires here, and which containers no task wants: pure
//! decisions returning commands, applied by the loop around them.
use crate::docker::Owned;
use berth_api::agent::DesiredTask;
use berth_model::task::STOPPED;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// A runner on this host as the diff sees it.
#[derive(Debug, Clone, Copy)]
pub struct Runner<'a> {
    pub task_arn: &'a str,
    /// The desired status it was last told.
    pub desired: &'a str,
    /// It has reported STOPPED and ended.
    pub done: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Start a runner for `desired[task]`, adopting the (container name,
    /// engine id) pairs an earlier run of the agent left for it.
    Spawn {
        task: usize,
        adopted: Vec<(String, String)>,
    },
    /// Tell a runner its task's new desired status.
    Desire { task_arn: String, status: String },
    /// A finished runner whose task the control plane no longer lists.
    Forget { task_arn: String },
}

/// The commands that bring the runners in line with `desired`: a runner for
/// each new task, each changed desired status passed on, a task no longer
/// desired here told to stop (never two copies), and finished runners of
/// tasks no longer listed dropped.
pub fn diff(desired: &[DesiredTask], runners: &[Runner<'_>], owned: &[Owned]) -> Vec<Command> {
    let mut out = vec![];
    let wanted: HashSet<&str> = desired
        .iter()
        .filter_map(|d| d.task.task_arn.as_deref())
        .collect();
    for (i, d) in desired.iter().enumerate() {
        let arn = d.task.task_arn.as_deref().unwrap_or_default();
        let want = d.task.desired_status.as_deref().unwrap_or_default();
        match runners.iter().find(|r| r.task_arn == arn) {
            Some(r) if r.desired != want => out.push(Command::Desire {
                task_arn: arn.to_string(),
                status: want.to_string(),
            }),
            Some(_) => {}
            None => out.push(Command::Spawn {
                task: i,
                adopted: owned
                    .iter()
                    .filter(|o| o.task_arn == arn)
                    .map(|o| (o.container_name.clone(), o.id.clone()))
                    .collect(),
            }),
        }
    }
    for r in runners.iter().filter(|r| !wanted.contains(r.task_arn)) {
        if r.done {
            out.push(Command::Forget {
                task_arn: r.task_arn.to_string(),
            });
        } else if r.desired != STOPPED {
            out.push(Command::Desire {
                task_arn: r.task_arn.to_string(),
                status: STOPPED.into(),
            });
        }
    }
    out
}

/// What to do with the containers that no desired task and no runner has.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Sweep {
    /// Running ones: stopped at once (a replaced task never runs twice).
    pub stop: Vec<String>,
    /// Stopped ones past the cleanup wait: removed, with their task's ARN.
    pub remove: Vec<(String, String)>,
}

/// The orphan sweep's decision. `first_seen` remembers when each stopped
/// orphan was first seen (kept across sweeps; containers gone from the
/// listing are forgotten).
pub fn sweep(
    owned: &[Owned],
    wanted: &HashSet<String>,
    live: &HashSet<String>,
    first_seen: &mut HashMap<String, Instant>,
    now: Instant,
    cleanup_wait: Duration,
) -> Sweep {
    let mut out = Sweep::default();
    let mut seen = HashSet::new();
    for c in owned {
        if wanted.contains(&c.task_arn) || live.contains(&c.task_arn) {
            continue;
        }
        seen.insert(c.id.clone());
        if c.running {
            out.stop.push(c.id.clone());
            continue;
        }
        let since = *first_seen.entry(c.id.clone()).or_insert(now);
        if now.saturating_duration_since(since) >= cleanup_wait {
            out.remove.push((c.id.clone(), c.task_arn.clone()));
        }
    }
    first_seen.retain(|id, _| seen.contains(id));
    out
}

/// The containers of tasks none of whose containers runs: what a stopping
/// agent's stopped tasks kept for the cleanup wait. A running task's exited
/// containers (non-essential ones) stay with it.
pub fn of_stopped_tasks(owned: &[Owned]) -> Vec<&str> {
    let running: HashSet<&str> = owned
        .iter()
        .filter(|c| c.running)
        .map(|c| c.task_arn.as_str())
        .collect();
    owned
        .iter()
        .filter(|c| !running.contains(c.task_arn.as_str()))
        .map(|c| c.id.as_str())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::ecs::Task;
    use berth_model::task::RUNNING;

    fn task(arn: &str, desired: &str) -> DesiredTask {
        DesiredTask {
            task: Task {
                task_arn: Some(arn.into()),
                desired_status: Some(desired.into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn owned(id: &str, task_arn: &str, running: bool) -> Owned {
        Owned {
            id: id.into(),
            task_arn: task_arn.into(),
            container_name: format!("name-{id}"),
            running,
        }
    }

    fn runner<'a>(arn: &'a str, desired: &'a str, done: bool) -> Runner<'a> {
        Runner {
            task_arn: arn,
            desired,
            done,
        }
    }

    #[test]
    fn new_tasks_get_a_runner_that_adopts_their_containers() {
        let desired = [task("t1", RUNNING), task("t2", RUNNING)];
        let left = [owned("c1", "t2", true), owned("c9", "other", false)];
        let runners = [runner("t1", RUNNING, false)];
        assert_eq!(
            diff(&desired, &runners, &left),
            [Command::Spawn {
                task: 1,
                adopted: vec![("name-c1".into(), "c1".into())],
            }]
        );
    }

    #[test]
    fn a_steady_host_needs_nothing() {
        let desired = [task("t1", RUNNING)];
        assert_eq!(diff(&desired, &[runner("t1", RUNNING, false)], &[]), []);
    }

    #[test]
    fn desired_changes_pass_on_and_tasks_given_up_stop() {
        let desired = [task("t1", STOPPED)];
        let runners = [
            runner("t1", RUNNING, false),
            runner("gone", RUNNING, false),
            runner("stopping", STOPPED, false),
            runner("finished", STOPPED, true),
        ];
        assert_eq!(
            diff(&desired, &runners, &[]),
            [
                Command::Desire {
                    task_arn: "t1".into(),
                    status: STOPPED.into()
                },
                Command::Desire {
                    task_arn: "gone".into(),
                    status: STOPPED.into()
                },
                Command::Forget {
                    task_arn: "finished".into()
                },
            ]
        );
    }

    #[test]
    fn orphans_stop_at_once_and_go_after_the_cleanup_wait() {
        let t0 = Instant::now();
        let wait = Duration::from_secs(3600);
        let list = [
            owned("run", "old", true),
            owned("dead", "old", false),
            owned("mine", "t1", false),
            owned("kept", "live", false),
        ];
        let wanted = HashSet::from(["t1".to_string()]);
        let live = HashSet::from(["live".to_string()]);
        let mut first = HashMap::new();
        let s = sweep(&list, &wanted, &live, &mut first, t0, wait);
        assert_eq!(s.stop, ["run"]);
        assert_eq!(s.remove, []);
        assert_eq!(first.keys().collect::<Vec<_>>(), ["dead"]);
        let later = t0 + wait;
        let s = sweep(&list, &wanted, &live, &mut first, later, wait);
        assert_eq!(s.remove, [("dead".to_string(), "old".to_string())]);
        // Gone from the listing: forgotten.
        sweep(&[], &wanted, &live, &mut first, later, wait);
        assert!(first.is_empty());
    }

    #[test]
    fn only_tasks_with_no_running_container_are_stopped_tasks() {
        let c = |id: &str, task: &str, running: bool| Owned {
            id: id.into(),
            task_arn: task.into(),
            container_name: id.into(),
            running,
        };
        let owned = [
            c("a1", "task/a", false),
            c("a2", "task/a", false),
            c("b1", "task/b", true),
            // A running task's exited sidecar stays with it.
            c("b2", "task/b", false),
        ];
        assert_eq!(of_stopped_tasks(&owned), vec!["a1", "a2"]);
        assert!(of_stopped_tasks(&owned[2..]).is_empty());
    }
}
