//! A task as the in-memory index holds it: the fields that controllers,
//! placement and lists read on every pass, typed, and the whole task packed
//! (its stored JSON, LZ4 against a dictionary of berth's own task JSON),
//! unpacked only when a whole task is asked for. 100,000 tasks then take
//! about a tenth of what as many decoded `Task` shapes would.
use super::records::TaskRecord;
use berth_api::ecs::{Container, NetworkBinding, Tag, Task, TaskDefinition, TaskOverride};
use berth_model::resources::{self, Demand};
use berth_model::task::{self, TaskStatus};
use berth_model::Scope;
use compact_str::CompactString;
use serde::Deserialize;
use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

/// What is read of every task without unpacking it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskSummary {
    pub last_status: Option<TaskStatus>,
    pub desired_status: Option<TaskStatus>,
    pub health_status: Option<CompactString>,
    pub launch_type: Option<CompactString>,
    pub group: Option<CompactString>,
    pub started_by: Option<CompactString>,
    pub container_instance_arn: Option<Box<str>>,
    /// The fleet host of a FARGATE task.
    pub fleet_host: Option<Box<str>>,
    pub started_at: Option<f64>,
    /// Counts against its deployment's circuit breaker (`task::failed_launch`).
    pub failed_launch: bool,
    /// CPU, memory and host ports it takes on its instance, overrides applied.
    pub demand: Demand,
    /// Its tags, which policies read as `aws:ResourceTag/…` (none for most tasks).
    pub tags: Option<Box<[Tag]>>,
    /// When its scale-in protection ends (epoch seconds).
    pub protected_until: Option<f64>,
}

/// The members of a task's JSON the summary reads; the rest is skipped, not built.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SummaryMembers<'a> {
    #[serde(borrow)]
    last_status: Option<Cow<'a, str>>,
    #[serde(borrow)]
    desired_status: Option<Cow<'a, str>>,
    #[serde(borrow)]
    health_status: Option<Cow<'a, str>>,
    #[serde(borrow)]
    launch_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    group: Option<Cow<'a, str>>,
    #[serde(borrow)]
    started_by: Option<Cow<'a, str>>,
    #[serde(borrow)]
    container_instance_arn: Option<Cow<'a, str>>,
    #[serde(borrow)]
    task_definition_arn: Option<Cow<'a, str>>,
    #[serde(borrow)]
    stop_code: Option<Cow<'a, str>>,
    #[serde(borrow)]
    stopped_reason: Option<Cow<'a, str>>,
    started_at: Option<f64>,
    overrides: Option<TaskOverride>,
    tags: Option<Vec<Tag>>,
    containers: Option<Vec<ContainerGpus>>,
}

/// The GPUs one of a task's containers holds.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContainerGpus {
    gpu_ids: Option<Vec<String>>,
}

impl TaskSummary {
    pub fn is_stopped(&self) -> bool {
        self.last_status == Some(TaskStatus::Stopped)
    }
}

pub struct IndexedTask {
    pub summary: Box<TaskSummary>,
    /// The definition it was started from: one shared copy per revision.
    pub task_definition: Arc<TaskDefinition>,
    packed: Box<[u8]>,
    json_len: u32,
}

impl IndexedTask {
    /// From a task's JSON as the store holds it; `definition` gives the
    /// definition it was started from, by the ARN the task names.
    pub fn from_json(
        json: &str,
        fleet_host: Option<String>,
        definition: impl FnOnce(Option<&str>) -> serde_json::Result<Arc<TaskDefinition>>,
    ) -> serde_json::Result<IndexedTask> {
        let m: SummaryMembers = serde_json::from_str(json)?;
        let task_definition = definition(m.task_definition_arn.as_deref())?;
        let small = |s: &Option<Cow<str>>| s.as_deref().map(CompactString::from);
        let summary = TaskSummary {
            last_status: TaskStatus::of(m.last_status.as_deref()),
            desired_status: TaskStatus::of(m.desired_status.as_deref()),
            health_status: small(&m.health_status),
            launch_type: small(&m.launch_type),
            group: small(&m.group),
            started_by: small(&m.started_by),
            container_instance_arn: m.container_instance_arn.as_deref().map(Box::from),
            fleet_host: fleet_host.map(String::into_boxed_str),
            started_at: m.started_at,
            failed_launch: task::failed_launch_of(
                m.last_status.as_deref(),
                m.stop_code.as_deref(),
                m.stopped_reason.as_deref(),
            ),
            demand: Demand {
                gpu_ids: m
                    .containers
                    .into_iter()
                    .flatten()
                    .flat_map(|c| c.gpu_ids.unwrap_or_default())
                    .collect(),
                ..resources::demand(&task_definition, m.overrides.as_ref())
            },
            tags: m.tags.filter(|t| !t.is_empty()).map(Vec::into_boxed_slice),
            protected_until: None,
        };
        Ok(IndexedTask {
            summary: Box::new(summary),
            task_definition,
            packed: lz4_flex::block::compress_with_dict(json.as_bytes(), dictionary())
                .into_boxed_slice(),
            json_len: json.len() as u32,
        })
    }

    /// The whole task, unpacked.
    pub fn task(&self) -> Task {
        let unpacked = lz4_flex::block::decompress_with_dict(
            &self.packed,
            self.json_len as usize,
            dictionary(),
        );
        // Both steps read bytes this process packed itself; a failure is a bug, told loudly.
        match unpacked
            .map_err(|e| e.to_string())
            .and_then(|json| serde_json::from_slice::<Task>(&json).map_err(|e| e.to_string()))
        {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "a packed task did not unpack");
                Task::default()
            }
        }
    }

    /// The task with its definition, as the store holds it: what a writer changes and puts back.
    pub fn record(&self) -> TaskRecord {
        TaskRecord {
            task: self.task(),
            task_definition: self.task_definition.clone(),
            fleet_host: self.summary.fleet_host.as_deref().map(String::from),
            protected_until: self.summary.protected_until,
        }
    }

    /// Bytes held for the packed task (for tests and measurements).
    pub fn packed_len(&self) -> usize {
        self.packed.len()
    }
}

/// LZ4's window starts out holding this: the JSON of a task as berth writes
/// it (every member name, the ARN shapes, the usual values), so a task's own
/// bytes are mostly back-references into it. One task, since LZ4 hashes the
/// whole dictionary on every packing.
fn dictionary() -> &'static [u8] {
    static DICTIONARY: OnceLock<Vec<u8>> = OnceLock::new();
    DICTIONARY.get_or_init(|| {
        let [stopped, _] = sample_tasks();
        serde_json::to_vec(&stopped).unwrap_or_default()
    })
}

/// A stopped and a running task with everything the agent and control plane fill in.
fn sample_tasks() -> [Task; 2] {
    let scope = Scope::new("000000000000", "us-east-1");
    let definition: TaskDefinition = serde_json::from_value(serde_json::json!({
        "family": "web", "revision": 1, "status": "ACTIVE",
        "taskDefinitionArn": berth_model::arn::task_definition(&scope, "web", 1),
        "containerDefinitions": [
            {"name": "app", "image": "registry/app:latest", "memory": 512, "cpu": 256,
             "essential": true, "portMappings": [{"containerPort": 80, "hostPort": 0, "protocol": "tcp"}]},
            {"name": "sidecar", "image": "registry/sidecar:latest", "memory": 128, "essential": false}
        ]
    }))
    .unwrap_or_default();
    let ids = [
        "00000000000000000000000000000000".to_string(),
        "11111111111111111111111111111111".to_string(),
    ];
    let instance = berth_model::arn::container_instance(&scope, "default", &ids[0]);
    let mut running = task::create(&task::Launch {
        scope: &scope,
        cluster: "default",
        task_id: &ids[1],
        container_ids: &ids,
        container_instance_arn: Some(&instance),
        capacity_provider: None,
        ephemeral_gib: None,
        availability_zone: Some("us-east-1a"),
        task_definition: &definition,
        overrides: None,
        group: Some("service:web"),
        started_by: Some("ecs-svc/0000000000000000000"),
        tags: &[],
        launch_type: "EC2",
        now: 1_700_000_000.0,
    });
    let report = Task {
        last_status: Some(task::RUNNING.into()),
        started_at: Some(1_700_000_001.0),
        health_status: Some("HEALTHY".into()),
        containers: Some(
            ["app", "sidecar"]
                .iter()
                .map(|name| Container {
                    name: Some(name.to_string()),
                    last_status: Some(task::RUNNING.into()),
                    runtime_id: Some("0".repeat(64)),
                    health_status: Some("HEALTHY".into()),
                    network_bindings: Some(vec![NetworkBinding {
                        bind_ip: Some("0.0.0.0".into()),
                        container_port: Some(80),
                        host_port: Some(32768),
                        protocol: Some("tcp".into()),
                        ..Default::default()
                    }]),
                    ..Default::default()
                })
                .collect(),
        ),
        ..Default::default()
    };
    task::apply_report(&mut running, &report, 1_700_000_001.0);
    let mut stopped = running.clone();
    task::request_stop(
        &mut stopped,
        task::SERVICE_SCHEDULER_INITIATED,
        "Scaling activity initiated by (deployment ecs-svc/0000000000000000000)",
        1_700_000_002.0,
    );
    task::lose(&mut stopped, "Task stopped", 1_700_000_003.0);
    [stopped, running]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn indexed(t: &Task) -> IndexedTask {
        let json = serde_json::to_string(t).unwrap();
        let want = t.task_definition_arn.clone();
        IndexedTask::from_json(&json, None, |arn| {
            assert_eq!(
                arn,
                want.as_deref(),
                "the task's definition is asked for by ARN"
            );
            Ok(Arc::new(TaskDefinition::default()))
        })
        .unwrap()
    }

    #[test]
    fn a_task_unpacks_to_what_was_packed_and_packs_small() {
        let [_, mut t] = sample_tasks();
        // Unlike the dictionary's task: other ids, account, cluster and tags.
        t.task_arn = Some("arn:aws:ecs:eu-west-1:123456789012:task/prod/abcdef".into());
        t.started_by = Some("someone".into());
        t.tags = Some(vec![berth_api::ecs::Tag {
            key: Some("team".into()),
            value: Some("blue".into()),
        }]);
        let json_len = serde_json::to_vec(&t).unwrap().len();
        let packed = indexed(&t);
        assert_eq!(packed.task(), t);
        assert_eq!(packed.record().task, t);
        assert!(
            packed.packed_len() * 3 < json_len,
            "{} packed from {json_len}",
            packed.packed_len()
        );
    }

    #[test]
    fn the_summary_reads_what_controllers_need() {
        let [stopped, running] = sample_tasks();
        let s = indexed(&stopped).summary;
        assert!(s.is_stopped());
        assert_eq!(
            s.desired_status.map(TaskStatus::as_str),
            Some(task::STOPPED)
        );
        assert!(!s.failed_launch, "scaled in is not a failed launch");
        let s = indexed(&running).summary;
        assert!(!s.is_stopped());
        assert_eq!(s.last_status.map(TaskStatus::as_str), Some(task::RUNNING));
        assert_eq!(s.group.as_deref(), Some("service:web"));
        assert_eq!(s.started_by.as_deref(), Some("ecs-svc/0000000000000000000"));
        assert_eq!(s.health_status.as_deref(), Some("HEALTHY"));
        assert_eq!(s.launch_type.as_deref(), Some("EC2"));
        assert_eq!(s.started_at, Some(1_700_000_001.0));
        assert_eq!(
            s.container_instance_arn.as_deref(),
            running.container_instance_arn.as_deref()
        );
        let mut failed = running.clone();
        task::request_stop(&mut failed, task::TASK_FAILED_TO_START, "pull failed", 1.0);
        task::lose(&mut failed, "gone", 2.0);
        assert!(indexed(&failed).summary.failed_launch);
    }

    #[test]
    fn the_demand_applies_the_task_overrides() {
        let [_, mut t] = sample_tasks();
        t.overrides = Some(TaskOverride {
            cpu: Some("1024".into()),
            memory: Some("2048".into()),
            ..Default::default()
        });
        let json = serde_json::to_string(&t).unwrap();
        let definition: TaskDefinition = serde_json::from_value(serde_json::json!({
            "family": "web", "cpu": "256", "memory": "512",
            "containerDefinitions": [{"name": "app", "image": "x", "memory": 64}]
        }))
        .unwrap();
        let d = Arc::new(definition);
        let s = IndexedTask::from_json(&json, None, |_| Ok(d.clone()))
            .unwrap()
            .summary;
        assert_eq!((s.demand.cpu, s.demand.memory), (1024, 2048));
        t.overrides = None;
        let json = serde_json::to_string(&t).unwrap();
        let s = IndexedTask::from_json(&json, None, |_| Ok(d))
            .unwrap()
            .summary;
        assert_eq!((s.demand.cpu, s.demand.memory), (256, 512));
    }
}
