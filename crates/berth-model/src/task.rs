//! Tasks: how RunTask/StartTask make one, how StopTask and the agent's
//! reports move it along the ECS lifecycle, and which fields each side owns.
use crate::{arn, Scope};
use berth_api::ecs::{
    Container, ContainerOverride, EphemeralStorage, Tag, Task, TaskDefinition, TaskOverride,
};
use berth_api::ApiError;

pub use crate::task_status::*;

pub const USER_INITIATED: &str = "UserInitiated";
pub const TASK_FAILED_TO_START: &str = "TaskFailedToStart";
pub const ESSENTIAL_CONTAINER_EXITED: &str = "EssentialContainerExited";
pub const SERVICE_SCHEDULER_INITIATED: &str = "ServiceSchedulerInitiated";
/// The task's host was lost (its agent went silent past the instance timeout).
pub const INFRASTRUCTURE_HEALTH: &str = "InfrastructureHealth";

/// RunTask's `count` bounds.
pub const MAX_RUN_COUNT: i32 = 10;

/// The task's (or a container's) last status, typed.
pub fn last_status(task: &Task) -> Option<TaskStatus> {
    TaskStatus::of(task.last_status.as_deref())
}

pub fn is_stopped(task: &Task) -> bool {
    last_status(task) == Some(TaskStatus::Stopped)
}

/// The stoppedReason of a service task replaced for failing its health checks.
pub const UNHEALTHY_REASON: &str = "Task failed container health checks";

/// A stopped task counts against its deployment's circuit breaker when it
/// failed to start, exited on its own, or failed its health checks.
pub fn failed_launch(t: &Task) -> bool {
    failed_launch_of(
        t.last_status.as_deref(),
        t.stop_code.as_deref(),
        t.stopped_reason.as_deref(),
    )
}

/// `failed_launch` from the three members it reads.
pub fn failed_launch_of(
    last_status: Option<&str>,
    stop_code: Option<&str>,
    stopped_reason: Option<&str>,
) -> bool {
    last_status == Some(STOPPED)
        && match stop_code {
            Some(TASK_FAILED_TO_START) | Some(ESSENTIAL_CONTAINER_EXITED) => true,
            Some(SERVICE_SCHEDULER_INITIATED) => {
                stopped_reason.is_some_and(|r| r.starts_with(UNHEALTHY_REASON))
            }
            _ => false,
        }
}

/// Everything a new task is made from.
pub struct Launch<'a> {
    pub scope: &'a Scope,
    pub cluster: &'a str,
    pub task_id: &'a str,
    pub container_ids: &'a [String],
    /// None for a FARGATE task (it runs on the platform's fleet).
    pub container_instance_arn: Option<&'a str>,
    /// FARGATE or FARGATE_SPOT when a capacity provider placed it.
    pub capacity_provider: Option<&'a str>,
    /// A FARGATE task's ephemeral storage.
    pub ephemeral_gib: Option<i32>,
    pub availability_zone: Option<&'a str>,
    pub task_definition: &'a TaskDefinition,
    pub overrides: Option<&'a TaskOverride>,
    pub group: Option<&'a str>,
    pub started_by: Option<&'a str>,
    pub tags: &'a [Tag],
    pub launch_type: &'a str,
    pub now: f64,
}

/// Overrides may only name containers of the task definition.
pub fn validate_overrides(td: &TaskDefinition, o: Option<&TaskOverride>) -> Result<(), ApiError> {
    let names: Vec<&str> = td
        .container_definitions
        .iter()
        .flatten()
        .filter_map(|c| c.name.as_deref())
        .collect();
    for co in o
        .and_then(|o| o.container_overrides.as_deref())
        .unwrap_or_default()
    {
        let name = co.name.as_deref().unwrap_or_default();
        if !names.contains(&name) {
            return Err(ApiError::invalid_parameter(format!(
                "Override for container named {name} is not a container in the TaskDefinition."
            )));
        }
    }
    Ok(())
}

/// A new task, PENDING on its container instance, as RunTask answers it.
pub fn create(l: &Launch<'_>) -> Task {
    let fargate = l.launch_type == crate::fargate::FARGATE;
    let task_arn = arn::task(l.scope, l.cluster, l.task_id);
    let family = l.task_definition.family.as_deref().unwrap_or_default();
    let containers = l
        .task_definition
        .container_definitions
        .iter()
        .flatten()
        .zip(l.container_ids)
        .map(|(c, id)| Container {
            container_arn: Some(arn::container(l.scope, l.cluster, l.task_id, id)),
            task_arn: Some(task_arn.clone()),
            name: c.name.clone(),
            image: c.image.clone(),
            last_status: Some(PENDING.into()),
            network_interfaces: Some(vec![]),
            cpu: Some(c.cpu.unwrap_or(0).to_string()),
            memory: c.memory.map(|m| m.to_string()),
            memory_reservation: c.memory_reservation.map(|m| m.to_string()),
            health_status: c.health_check.as_ref().map(|_| "UNKNOWN".into()),
            ..Default::default()
        })
        .collect();
    let mut overrides = l.overrides.cloned().unwrap_or_default();
    if overrides.container_overrides.is_none() {
        overrides.container_overrides = Some(
            l.task_definition
                .container_definitions
                .iter()
                .flatten()
                .map(|c| ContainerOverride {
                    name: c.name.clone(),
                    ..Default::default()
                })
                .collect(),
        );
    }
    if overrides.inference_accelerator_overrides.is_none() {
        overrides.inference_accelerator_overrides = Some(vec![]);
    }
    Task {
        task_arn: Some(task_arn),
        cluster_arn: Some(arn::cluster(l.scope, l.cluster)),
        task_definition_arn: l.task_definition.task_definition_arn.clone(),
        container_instance_arn: l.container_instance_arn.map(Into::into),
        capacity_provider_name: l.capacity_provider.map(Into::into),
        platform_version: fargate.then(|| crate::fargate::PLATFORM_VERSION.into()),
        platform_family: fargate.then(|| "Linux".into()),
        ephemeral_storage: l.ephemeral_gib.map(|g| EphemeralStorage {
            size_in_gi_b: Some(g),
        }),
        availability_zone: l.availability_zone.map(Into::into),
        containers: Some(containers),
        cpu: l
            .overrides
            .and_then(|o| o.cpu.clone())
            .or_else(|| l.task_definition.cpu.clone()),
        memory: l
            .overrides
            .and_then(|o| o.memory.clone())
            .or_else(|| l.task_definition.memory.clone()),
        created_at: Some(l.now),
        desired_status: Some(RUNNING.into()),
        last_status: Some(PENDING.into()),
        group: Some(
            l.group
                .map(Into::into)
                .unwrap_or_else(|| format!("family:{family}")),
        ),
        launch_type: Some(l.launch_type.into()),
        overrides: Some(overrides),
        started_by: l.started_by.map(Into::into),
        tags: Some(l.tags.to_vec()),
        version: Some(1),
        attachments: Some(vec![]),
        attributes: Some(vec![]),
        health_status: Some("UNKNOWN".into()),
        enable_execute_command: Some(false),
        inference_accelerators: Some(vec![]),
        ..Default::default()
    }
}

/// StopTask: asks for STOPPED once. Returns whether anything changed.
pub fn request_stop(task: &mut Task, stop_code: &str, reason: &str, now: f64) -> bool {
    if TaskStatus::of(task.desired_status.as_deref()) == Some(TaskStatus::Stopped) {
        return false;
    }
    task.desired_status = Some(STOPPED.into());
    task.stopping_at.get_or_insert(now);
    task.stop_code.get_or_insert_with(|| stop_code.into());
    task.stopped_reason.get_or_insert_with(|| reason.into());
    bump(task);
    true
}

/// The control plane gives up on a task whose host was lost: STOPPED at once,
/// since no agent is left to report it. Returns whether anything changed.
pub fn lose(task: &mut Task, reason: &str, now: f64) -> bool {
    if is_stopped(task) {
        return false;
    }
    request_stop(task, INFRASTRUCTURE_HEALTH, reason, now);
    task.last_status = Some(STOPPED.into());
    task.stopped_at = Some(now);
    task.execution_stopped_at.get_or_insert(now);
    for c in task.containers.iter_mut().flatten() {
        if TaskStatus::of(c.last_status.as_deref()) != Some(TaskStatus::Stopped) {
            c.last_status = Some(STOPPED.into());
            c.reason.get_or_insert_with(|| reason.into());
        }
    }
    crate::awsvpc::follow_task(task);
    bump(task);
    true
}

fn bump(task: &mut Task) {
    task.version = Some(task.version.unwrap_or(0) + 1);
}

/// Merges what an agent observed into the task: the agent owns the actual
/// state (statuses, timestamps, exit codes, bindings, health); the control
/// plane owns the rest. Statuses never move backwards. Returns whether
/// anything changed.
pub fn apply_report(task: &mut Task, report: &Task, now: f64) -> bool {
    let before = serde_json::to_value(&*task).ok();
    if let Some(s) = report.last_status.as_deref() {
        let current = task.last_status.as_deref().unwrap_or(PENDING);
        if rank(s) > rank(current) {
            task.last_status = Some(s.into());
        }
    }
    fn keep_first(slot: &mut Option<f64>, v: Option<f64>) {
        if slot.is_none() {
            *slot = v;
        }
    }
    keep_first(&mut task.pull_started_at, report.pull_started_at);
    keep_first(&mut task.pull_stopped_at, report.pull_stopped_at);
    keep_first(&mut task.started_at, report.started_at);
    keep_first(&mut task.execution_stopped_at, report.execution_stopped_at);
    if let Some(h) = &report.health_status {
        task.health_status = Some(h.clone());
    }
    if let Some(code) = &report.stop_code {
        task.stop_code.get_or_insert_with(|| code.clone());
    }
    if let Some(reason) = &report.stopped_reason {
        task.stopped_reason.get_or_insert_with(|| reason.clone());
    }
    for rc in report.containers.iter().flatten() {
        let Some(c) = task
            .containers
            .iter_mut()
            .flatten()
            .find(|c| c.name == rc.name)
        else {
            continue;
        };
        if let Some(s) = rc.last_status.as_deref() {
            if rank(s) > rank(c.last_status.as_deref().unwrap_or(PENDING)) {
                c.last_status = Some(s.into());
            }
        }
        macro_rules! take {
            ($($f:ident),*) => {$(if rc.$f.is_some() { c.$f = rc.$f.clone(); })*};
        }
        take!(
            exit_code,
            reason,
            network_bindings,
            health_status,
            runtime_id,
            image_digest
        );
    }
    if is_stopped(task) {
        task.desired_status = Some(STOPPED.into());
        task.stopping_at.get_or_insert(now);
        task.stopped_at.get_or_insert(now);
        task.execution_stopped_at.get_or_insert(now);
    }
    crate::awsvpc::follow_task(task);
    let changed = serde_json::to_value(&*task).ok() != before;
    if changed {
        bump(task);
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::ecs::ContainerDefinition;

    fn launch_one() -> Task {
        let scope = Scope::new("111122223333", "us-east-1");
        let td = TaskDefinition {
            family: Some("web".into()),
            task_definition_arn: Some(arn::task_definition(&scope, "web", 1)),
            container_definitions: Some(vec![ContainerDefinition {
                name: Some("app".into()),
                image: Some("busybox".into()),
                memory: Some(64),
                ..Default::default()
            }]),
            ..Default::default()
        };
        create(&Launch {
            scope: &scope,
            cluster: "default",
            task_id: "t1",
            container_ids: &["c1".to_string()],
            container_instance_arn: Some(
                "arn:aws:ecs:us-east-1:111122223333:container-instance/default/i1",
            ),
            capacity_provider: None,
            ephemeral_gib: None,
            availability_zone: Some("us-east-1a"),
            task_definition: &td,
            overrides: None,
            group: None,
            started_by: Some("me"),
            tags: &[],
            launch_type: "EC2",
            now: 100.0,
        })
    }

    #[test]
    fn a_new_task_is_pending_with_its_containers() {
        let t = launch_one();
        assert_eq!(
            t.task_arn.as_deref(),
            Some("arn:aws:ecs:us-east-1:111122223333:task/default/t1")
        );
        assert_eq!(t.last_status.as_deref(), Some(PENDING));
        assert_eq!(t.desired_status.as_deref(), Some(RUNNING));
        assert_eq!(t.group.as_deref(), Some("family:web"));
        let c = &t.containers.as_ref().unwrap()[0];
        assert_eq!(
            c.container_arn.as_deref(),
            Some("arn:aws:ecs:us-east-1:111122223333:container/default/t1/c1")
        );
        assert_eq!(c.memory.as_deref(), Some("64"));
        let names: Vec<_> = t.overrides.unwrap().container_overrides.unwrap();
        assert_eq!(names[0].name.as_deref(), Some("app"));
    }

    #[test]
    fn reports_move_forward_only_and_stop_for_good() {
        let mut t = launch_one();
        let running = Task {
            last_status: Some(RUNNING.into()),
            started_at: Some(101.0),
            containers: Some(vec![Container {
                name: Some("app".into()),
                last_status: Some(RUNNING.into()),
                runtime_id: Some("abc".into()),
                ..Default::default()
            }]),
            ..Default::default()
        };
        assert!(apply_report(&mut t, &running, 101.0));
        assert!(
            !apply_report(&mut t, &running, 102.0),
            "same report twice changes nothing"
        );
        let stale = Task {
            last_status: Some(PENDING.into()),
            ..Default::default()
        };
        apply_report(&mut t, &stale, 103.0);
        assert_eq!(t.last_status.as_deref(), Some(RUNNING));
        assert!(request_stop(&mut t, USER_INITIATED, "bye", 104.0));
        assert!(!request_stop(&mut t, USER_INITIATED, "again", 105.0));
        assert_eq!(t.stopped_reason.as_deref(), Some("bye"));
        let stopped = Task {
            last_status: Some(STOPPED.into()),
            containers: Some(vec![Container {
                name: Some("app".into()),
                last_status: Some(STOPPED.into()),
                exit_code: Some(137),
                ..Default::default()
            }]),
            ..Default::default()
        };
        apply_report(&mut t, &stopped, 106.0);
        assert_eq!(t.last_status.as_deref(), Some(STOPPED));
        assert_eq!(t.stopped_at, Some(106.0));
        assert_eq!(t.stopping_at, Some(104.0));
        assert_eq!(t.containers.as_ref().unwrap()[0].exit_code, Some(137));
        assert_eq!(
            t.containers.as_ref().unwrap()[0].runtime_id.as_deref(),
            Some("abc")
        );
        assert_eq!(t.version, Some(4));
    }

    #[test]
    fn overrides_must_name_real_containers() {
        let td = TaskDefinition {
            container_definitions: Some(vec![ContainerDefinition {
                name: Some("app".into()),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let o = TaskOverride {
            container_overrides: Some(vec![ContainerOverride {
                name: Some("nope".into()),
                ..Default::default()
            }]),
            ..Default::default()
        };
        assert!(validate_overrides(&td, None).is_ok());
        let e = validate_overrides(&td, Some(&o)).unwrap_err();
        assert!(e.message.contains("nope"), "{}", e.message);
    }
}
