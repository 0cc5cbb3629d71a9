//! The cluster query language (ListContainerInstances filters, memberOf constraints):
//! parsing any text, and evaluating what parses.
#![no_main]
use berth_sched::query::{parse, InstanceFacts};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(expr) = parse(text) {
        let facts = InstanceFacts {
            attributes: [
                (
                    "ecs.instance-type".to_string(),
                    Some("t3.micro".to_string()),
                ),
                (
                    "ecs.availability-zone".to_string(),
                    Some("us-east-1a".to_string()),
                ),
                ("ecs.capability.task-eni".to_string(), None),
            ]
            .into_iter()
            .collect(),
            agent_connected: true,
            agent_version: "1.80.0".into(),
            ec2_instance_id: "i-0123456789abcdef0".into(),
            registered_at: 1_700_000_000.0,
            running_tasks_count: 3,
            task_groups: vec!["service:web".into()],
        };
        let _ = expr.eval(&facts);
    }
});
