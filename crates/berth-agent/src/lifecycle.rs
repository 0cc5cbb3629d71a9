//! The rules of a task's life on a host, as pure functions of its container
//! definitions and what the engine last saw of each container: which
//! container may start (dependsOn), whether an essential container's exit
//! ends the task, the task's health, and the order containers stop in. The
//! runner does the IO around them. The ECS agent's dependency graph is the
//! model: "are this container's dependencies resolved" as a function.
use crate::engine::{Observed, Phase};
use berth_api::ecs::ContainerDefinition;
use berth_model::task as ecs_task;
use std::time::Duration;

/// How long a container may wait for its dependencies (the ECS agent's default).
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(180);

/// One container of the task: its definition and what was last seen of it.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    pub def: &'a ContainerDefinition,
    pub observed: Option<&'a Observed>,
}

impl View<'_> {
    pub fn name(&self) -> &str {
        self.def.name.as_deref().unwrap_or_default()
    }
    pub fn phase(&self) -> Option<&Phase> {
        self.observed.map(|o| &o.phase)
    }
    pub fn was_started(&self) -> bool {
        matches!(self.phase(), Some(Phase::Running | Phase::Exited))
    }
    pub fn exited(&self) -> bool {
        self.phase() == Some(&Phase::Exited)
    }
    pub fn essential(&self) -> bool {
        self.def.essential != Some(false)
    }
    fn health(&self) -> Option<&str> {
        self.observed.and_then(|o| o.health.as_deref())
    }
}

/// Why a task (or one of its containers) stops on the host, in ECS's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskError {
    /// An image could not be pulled.
    CannotPullContainer(String),
    /// A container (or the task's cgroup) could not be created.
    CannotCreateContainer(String),
    /// A container could not be started.
    CannotStartContainer(String),
    /// The task's network (its ENI) could not be set up.
    ResourceInitialization(String),
    /// A dependency ended in a way that never lets its dependent start.
    DependencyViolation(String),
    /// A container waited past its startTimeout for its dependencies.
    DependencyTimeout { container: String },
    /// An essential container exited.
    EssentialContainerExited,
}

impl TaskError {
    /// The task's stopCode.
    pub fn stop_code(&self) -> &'static str {
        match self {
            TaskError::EssentialContainerExited => ecs_task::ESSENTIAL_CONTAINER_EXITED,
            _ => ecs_task::TASK_FAILED_TO_START,
        }
    }

    /// The task's stoppedReason.
    pub fn stopped_reason(&self) -> String {
        match self {
            // ECS gives the dependency's story without the error's name at task level.
            TaskError::DependencyViolation(why) => why.clone(),
            other => other.to_string(),
        }
    }
}

impl std::fmt::Display for TaskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TaskError::CannotPullContainer(e) => write!(f, "CannotPullContainerError: {e}"),
            TaskError::CannotCreateContainer(e) => write!(f, "CannotCreateContainerError: {e}"),
            TaskError::CannotStartContainer(e) => write!(f, "CannotStartContainerError: {e}"),
            TaskError::ResourceInitialization(e) => write!(f, "ResourceInitializationError: {e}"),
            TaskError::DependencyViolation(e) => write!(f, "DependencyViolation: {e}"),
            TaskError::DependencyTimeout { container } => {
                write!(
                    f,
                    "Container {container} timed out waiting for its dependencies"
                )
            }
            TaskError::EssentialContainerExited => write!(f, "Essential container in task exited"),
        }
    }
}

/// Whether a created container may start now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Start,
    Wait,
    /// Its dependencies will never allow it.
    Never(TaskError),
}

/// Container `i`'s dependsOn conditions against the others' states: START
/// (started), COMPLETE (exited), SUCCESS (exited 0), HEALTHY (health check
/// passing). A dependency not in the task is ignored (registration refuses it).
pub fn readiness(containers: &[View<'_>], i: usize) -> Readiness {
    let me = &containers[i];
    for dep in me.def.depends_on.iter().flatten() {
        let name = dep.container_name.as_deref().unwrap_or_default();
        let Some(d) = containers.iter().find(|c| c.name() == name) else {
            continue;
        };
        let exit = d.observed.and_then(|o| o.exit_code);
        let never = |why: String| Readiness::Never(TaskError::DependencyViolation(why));
        let met = match dep.condition.as_deref().unwrap_or("START") {
            "START" => d.was_started(),
            "COMPLETE" => d.exited(),
            "SUCCESS" => {
                if d.exited() && exit != Some(0) {
                    return never(format!(
                        "dependency {name} of container {} exited with code {}, not SUCCESS",
                        me.name(),
                        exit.unwrap_or(-1)
                    ));
                }
                d.exited()
            }
            "HEALTHY" => {
                if d.exited() || d.health() == Some("UNHEALTHY") {
                    return never(format!(
                        "dependency {name} of container {} did not become HEALTHY",
                        me.name()
                    ));
                }
                d.health() == Some("HEALTHY")
            }
            _ => true,
        };
        if !met {
            return Readiness::Wait;
        }
    }
    Readiness::Start
}

/// How long a container may wait for its dependencies (its startTimeout).
pub fn start_timeout(def: &ContainerDefinition) -> Duration {
    def.start_timeout
        .map(|s| Duration::from_secs(s.max(0) as u64))
        .unwrap_or(DEFAULT_START_TIMEOUT)
}

/// The task ends when any essential container has exited.
/// ECS's default `restartAttemptPeriod`.
const DEFAULT_RESTART_PERIOD: Duration = Duration::from_secs(300);

/// Whether a container that exited with `exit_code` after running for
/// `ran_for` (None: since before this agent started) is started again by its
/// restart policy: enabled, the code not ignored, and it ran its period.
pub fn restarts(
    def: &ContainerDefinition,
    exit_code: Option<i64>,
    ran_for: Option<Duration>,
) -> bool {
    let Some(p) = def
        .restart_policy
        .as_ref()
        .filter(|p| p.enabled == Some(true))
    else {
        return false;
    };
    let ignored = p
        .ignored_exit_codes
        .iter()
        .flatten()
        .any(|c| Some(i64::from(*c)) == exit_code);
    let period = p
        .restart_attempt_period
        .map_or(DEFAULT_RESTART_PERIOD, |s| {
            Duration::from_secs(s.max(0) as u64)
        });
    !ignored && ran_for.is_none_or(|r| r >= period)
}

pub fn essential_exit(containers: &[View<'_>]) -> Option<TaskError> {
    containers
        .iter()
        .any(|c| c.essential() && c.exited())
        .then_some(TaskError::EssentialContainerExited)
}

/// The task is RUNNING once every container has started.
pub fn all_started(containers: &[View<'_>]) -> bool {
    containers.iter().all(View::was_started)
}

/// A container's health as ECS reports it: only for one with a health check.
pub fn container_health(c: &View<'_>) -> Option<String> {
    c.def
        .health_check
        .as_ref()
        .map(|_| c.health().unwrap_or("UNKNOWN").to_string())
}

/// ECS: HEALTHY when every essential container with a health check is;
/// UNHEALTHY when any is; otherwise UNKNOWN.
pub fn task_health(containers: &[View<'_>]) -> &'static str {
    let checked: Vec<String> = containers
        .iter()
        .filter(|c| c.essential())
        .filter_map(container_health)
        .collect();
    if checked.iter().any(|h| h == "UNHEALTHY") {
        "UNHEALTHY"
    } else if !checked.is_empty() && checked.iter().all(|h| h == "HEALTHY") {
        "HEALTHY"
    } else {
        "UNKNOWN"
    }
}

/// The order containers stop in: a container's dependents before it (the
/// reverse of the order they start in). Containers caught in a cycle
/// (refused at registration) stop first, in definition order.
pub fn stop_order(defs: &[&ContainerDefinition]) -> Vec<usize> {
    let n = defs.len();
    let position = |name: Option<&str>| defs.iter().position(|d| d.name.as_deref() == name);
    let mut order: Vec<usize> = vec![];
    let mut placed = vec![false; n];
    for _ in 0..n {
        for i in 0..n {
            if placed[i] {
                continue;
            }
            let deps_done = defs[i]
                .depends_on
                .iter()
                .flatten()
                .all(|d| position(d.container_name.as_deref()).is_none_or(|j| placed[j]));
            if deps_done {
                placed[i] = true;
                order.push(i);
            }
        }
    }
    order.extend((0..n).filter(|i| !placed[*i]));
    order.reverse();
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::ecs::{ContainerDependency, HealthCheck};
    use proptest::prelude::*;

    fn def(name: &str, deps: &[(&str, &str)]) -> ContainerDefinition {
        ContainerDefinition {
            name: Some(name.into()),
            depends_on: (!deps.is_empty()).then(|| {
                deps.iter()
                    .map(|(n, c)| ContainerDependency {
                        container_name: Some(n.to_string()),
                        condition: Some(c.to_string()),
                    })
                    .collect()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_restart_policy_restarts_what_ran_its_period_and_exited_with_a_code_not_ignored() {
        let mut d = def("app", &[]);
        let min = |m: u64| Some(Duration::from_secs(m * 60));
        assert!(!restarts(&d, Some(1), min(10)), "no policy");
        d.restart_policy = Some(berth_api::ecs::ContainerRestartPolicy {
            enabled: Some(true),
            ignored_exit_codes: Some(vec![0]),
            restart_attempt_period: Some(120),
        });
        assert!(restarts(&d, Some(1), min(2)));
        assert!(
            restarts(&d, Some(137), None),
            "adopted: ran since before the agent"
        );
        assert!(!restarts(&d, Some(1), min(1)), "exited before its period");
        assert!(!restarts(&d, Some(0), min(10)), "an ignored code");
        d.restart_policy.as_mut().unwrap().restart_attempt_period = None;
        assert!(!restarts(&d, Some(1), min(4)), "300 s by default");
        assert!(restarts(&d, Some(1), min(5)));
        d.restart_policy.as_mut().unwrap().enabled = Some(false);
        assert!(!restarts(&d, Some(1), min(10)));
    }

    fn seen(phase: Phase, exit: Option<i64>, health: Option<&str>) -> Observed {
        Observed {
            phase,
            exit_code: exit,
            health: health.map(String::from),
            ..Observed::created("id")
        }
    }

    fn views<'a>(d: &'a [ContainerDefinition], o: &'a [Option<Observed>]) -> Vec<View<'a>> {
        d.iter()
            .zip(o)
            .map(|(def, observed)| View {
                def,
                observed: observed.as_ref(),
            })
            .collect()
    }

    #[test]
    fn each_condition_waits_starts_or_never_starts() {
        let cases = [
            ("START", seen(Phase::Created, None, None), Readiness::Wait),
            ("START", seen(Phase::Running, None, None), Readiness::Start),
            (
                "COMPLETE",
                seen(Phase::Running, None, None),
                Readiness::Wait,
            ),
            (
                "COMPLETE",
                seen(Phase::Exited, Some(3), None),
                Readiness::Start,
            ),
            ("SUCCESS", seen(Phase::Running, None, None), Readiness::Wait),
            (
                "SUCCESS",
                seen(Phase::Exited, Some(0), None),
                Readiness::Start,
            ),
            (
                "HEALTHY",
                seen(Phase::Running, None, Some("UNKNOWN")),
                Readiness::Wait,
            ),
            (
                "HEALTHY",
                seen(Phase::Running, None, Some("HEALTHY")),
                Readiness::Start,
            ),
        ];
        for (condition, dep, want) in cases {
            let d = [def("db", &[]), def("app", &[("db", condition)])];
            let o = [Some(dep.clone()), Some(seen(Phase::Created, None, None))];
            assert_eq!(readiness(&views(&d, &o), 1), want, "{condition} {dep:?}");
        }
    }

    #[test]
    fn a_failed_dependency_says_why_the_dependent_never_starts() {
        let d = [def("db", &[]), def("app", &[("db", "SUCCESS")])];
        let o = [Some(seen(Phase::Exited, Some(2), None)), None];
        let Readiness::Never(e) = readiness(&views(&d, &o), 1) else {
            panic!("a dependency that exited 2 is not SUCCESS");
        };
        assert_eq!(
            e.to_string(),
            "DependencyViolation: dependency db of container app exited with code 2, not SUCCESS"
        );
        assert_eq!(
            e.stopped_reason(),
            "dependency db of container app exited with code 2, not SUCCESS"
        );
        assert_eq!(e.stop_code(), ecs_task::TASK_FAILED_TO_START);
        let d = [def("db", &[]), def("app", &[("db", "HEALTHY")])];
        let o = [Some(seen(Phase::Running, None, Some("UNHEALTHY"))), None];
        assert_eq!(
            readiness(&views(&d, &o), 1),
            Readiness::Never(TaskError::DependencyViolation(
                "dependency db of container app did not become HEALTHY".into()
            ))
        );
    }

    #[test]
    fn an_essential_exit_ends_the_task_and_a_sidecars_does_not() {
        let mut sidecar = def("log", &[]);
        sidecar.essential = Some(false);
        let d = [def("app", &[]), sidecar];
        let o = [
            Some(seen(Phase::Running, None, None)),
            Some(seen(Phase::Exited, Some(0), None)),
        ];
        assert_eq!(essential_exit(&views(&d, &o)), None);
        let o = [Some(seen(Phase::Exited, Some(1), None)), o[1].clone()];
        let e = essential_exit(&views(&d, &o)).expect("app is essential");
        assert_eq!(e.stop_code(), ecs_task::ESSENTIAL_CONTAINER_EXITED);
        assert_eq!(e.stopped_reason(), "Essential container in task exited");
    }

    #[test]
    fn task_health_counts_essential_checked_containers_only() {
        let checked = |name: &str, essential: bool| ContainerDefinition {
            essential: Some(essential),
            health_check: Some(HealthCheck::default()),
            ..def(name, &[])
        };
        let d = [checked("a", true), checked("b", true), checked("c", false)];
        let at = |a: &str, b: &str, c: &str| {
            [a, b, c].map(|h| Some(seen(Phase::Running, None, Some(h))))
        };
        assert_eq!(
            task_health(&views(&d, &at("HEALTHY", "HEALTHY", "UNHEALTHY"))),
            "HEALTHY"
        );
        assert_eq!(
            task_health(&views(&d, &at("HEALTHY", "UNKNOWN", "HEALTHY"))),
            "UNKNOWN"
        );
        assert_eq!(
            task_health(&views(&d, &at("UNHEALTHY", "HEALTHY", "HEALTHY"))),
            "UNHEALTHY"
        );
        let plain = [def("a", &[])];
        assert_eq!(task_health(&views(&plain, &[None])), "UNKNOWN");
        assert_eq!(container_health(&views(&plain, &[None])[0]), None);
    }

    #[test]
    fn start_timeout_defaults_to_the_ecs_agents() {
        let mut d = def("a", &[]);
        assert_eq!(start_timeout(&d), DEFAULT_START_TIMEOUT);
        d.start_timeout = Some(5);
        assert_eq!(start_timeout(&d), Duration::from_secs(5));
    }

    /// Acyclic dependsOn graphs: container i may depend only on containers before it.
    fn acyclic() -> impl Strategy<Value = Vec<ContainerDefinition>> {
        (1usize..8).prop_flat_map(|n| {
            proptest::collection::vec(
                proptest::collection::vec(any::<prop::sample::Index>(), 0..3),
                n,
            )
            .prop_map(move |deps| {
                deps.iter()
                    .enumerate()
                    .map(|(i, ds)| {
                        let names: Vec<String> = if i == 0 {
                            vec![]
                        } else {
                            ds.iter().map(|d| format!("c{}", d.index(i))).collect()
                        };
                        let pairs: Vec<(&str, &str)> =
                            names.iter().map(|n| (n.as_str(), "START")).collect();
                        def(&format!("c{i}"), &pairs)
                    })
                    .collect()
            })
        })
    }

    proptest! {
        #[test]
        fn every_container_stops_once_and_before_what_it_depends_on(defs in acyclic()) {
            let refs: Vec<&ContainerDefinition> = defs.iter().collect();
            let order = stop_order(&refs);
            let mut sorted = order.clone();
            sorted.sort();
            prop_assert_eq!(sorted, (0..defs.len()).collect::<Vec<_>>());
            let at = |name: &str| order.iter().position(|i| defs[*i].name.as_deref() == Some(name));
            for (i, d) in defs.iter().enumerate() {
                for dep in d.depends_on.iter().flatten() {
                    let me = order.iter().position(|j| *j == i).unwrap();
                    prop_assert!(me < at(dep.container_name.as_deref().unwrap()).unwrap());
                }
            }
        }

        #[test]
        fn starting_in_readiness_order_starts_everything(defs in acyclic()) {
            // Start whatever is ready until nothing changes: every container starts.
            let mut observed: Vec<Option<Observed>> =
                defs.iter().map(|_| Some(seen(Phase::Created, None, None))).collect();
            for _ in 0..defs.len() {
                let ready: Vec<usize> = (0..defs.len())
                    .filter(|i| !views(&defs, &observed)[*i].was_started())
                    .filter(|i| readiness(&views(&defs, &observed), *i) == Readiness::Start)
                    .collect();
                for i in ready {
                    observed[i] = Some(seen(Phase::Running, None, None));
                }
            }
            prop_assert!(all_started(&views(&defs, &observed)));
        }
    }
}
