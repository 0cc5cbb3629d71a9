//! The task metadata documents (v3 and v4), as the ECS developer guide
//! defines them, built from the task's entry and what Docker says of its
//! containers.
use super::Entry;
use crate::docker::ContainerFacts;
use berth_api::amz_date::format_iso8601;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

fn time(t: Option<f64>) -> Value {
    t.map(|t| Value::String(format_iso8601(t as i64)))
        .unwrap_or(Value::Null)
}

/// Drops the members that have no value, as the ECS agent leaves them out.
fn compact(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .collect::<Map<_, _>>(),
        ),
        other => other,
    }
}

fn networks(entry: &Entry, facts: Option<&ContainerFacts>) -> Value {
    let mode = entry
        .definition
        .network_mode
        .clone()
        .unwrap_or_else(|| "bridge".into());
    if let Some(n) = &entry.network {
        let prefix = n.subnet_cidr.split('/').nth(1).unwrap_or("24");
        let gateway = n
            .subnet_cidr
            .split('/')
            .next()
            .and_then(|a| a.parse::<std::net::Ipv4Addr>().ok())
            .map(|a| format!("{}/{prefix}", std::net::Ipv4Addr::from(u32::from(a) + 1)));
        return json!([compact(json!({
            "NetworkMode": "awsvpc",
            "IPv4Addresses": [n.private_ip],
            "AttachmentIndex": 0,
            "MACAddress": n.mac,
            "IPv4SubnetCIDRBlock": n.subnet_cidr,
            "SubnetGatewayIpv4Address": gateway,
            "PrivateDNSName": format!("ip-{}.ec2.internal", n.private_ip.replace('.', "-")),
        }))]);
    }
    if mode == "host" {
        return json!([{"NetworkMode": "host"}]);
    }
    let addresses: Vec<&str> = facts
        .map(|f| f.addresses.iter().map(|(_, ip)| ip.as_str()).collect())
        .unwrap_or_default();
    json!([{"NetworkMode": mode, "IPv4Addresses": addresses}])
}

/// One container's document (`${ECS_CONTAINER_METADATA_URI_V4}`).
pub fn container(entry: &Entry, name: &str, facts: Option<&ContainerFacts>) -> Value {
    let def = entry
        .definition
        .container_definitions
        .iter()
        .flatten()
        .find(|c| c.name.as_deref() == Some(name));
    let reported = entry
        .report
        .containers
        .iter()
        .flatten()
        .find(|c| c.name.as_deref() == Some(name));
    let labels: Value = facts.map(|f| json!(f.labels)).unwrap_or_else(|| json!({}));
    compact(json!({
        "DockerId": facts.map(|f| f.id.clone()).or_else(|| reported.and_then(|c| c.runtime_id.clone())),
        "Name": name,
        "DockerName": entry.docker_names.get(name),
        "Image": def.and_then(|d| d.image.clone()),
        "ImageID": facts.map(|f| f.image_id.clone()),
        "Labels": labels,
        "DesiredStatus": entry.report.desired_status.clone().or(Some("RUNNING".into())),
        "KnownStatus": reported.and_then(|c| c.last_status.clone()).or(Some("PENDING".into())),
        "Limits": {
            "CPU": def.and_then(|d| d.cpu).unwrap_or(0),
            "Memory": def.and_then(|d| d.memory.or(d.memory_reservation)).unwrap_or(0),
        },
        "CreatedAt": facts.and_then(|f| f.created.clone()),
        "StartedAt": facts.and_then(|f| f.started_at.clone()).filter(|s| !s.starts_with("0001")),
        "Type": "NORMAL",
        "ContainerARN": reported
            .and_then(|c| c.container_arn.clone())
            .or_else(|| entry.container_arns.get(name).cloned()),
        "Networks": networks(entry, facts),
    }))
}

/// The task's document (`${ECS_CONTAINER_METADATA_URI_V4}/task`), with all its containers.
pub fn task(entry: &Entry, facts: &HashMap<String, ContainerFacts>) -> Value {
    let td = &entry.definition;
    let names: Vec<String> = td
        .container_definitions
        .iter()
        .flatten()
        .filter_map(|c| c.name.clone())
        .collect();
    let containers: Vec<Value> = names
        .iter()
        .map(|n| container(entry, n, facts.get(n)))
        .collect();
    let cpu = td
        .cpu
        .as_deref()
        .and_then(|c| c.parse::<f64>().ok())
        .map(|c| c / 1024.0);
    let memory = td.memory.as_deref().and_then(|m| m.parse::<i64>().ok());
    let r = &entry.report;
    compact(json!({
        "Cluster": entry.cluster_arn,
        "TaskARN": r.task_arn,
        "Family": td.family,
        "Revision": td.revision.map(|r| r.to_string()),
        "DesiredStatus": r.desired_status.clone().or(Some("RUNNING".into())),
        "KnownStatus": r.last_status.clone().or(Some("PENDING".into())),
        "Limits": compact(json!({"CPU": cpu, "Memory": memory})),
        "PullStartedAt": time(r.pull_started_at),
        "PullStoppedAt": time(r.pull_stopped_at),
        "AvailabilityZone": entry.availability_zone,
        "LaunchType": entry.launch_type,
        "Containers": containers,
        "VPCID": entry.network.as_ref().map(|n| n.vpc_id.clone()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task_endpoint::TaskIds;
    use berth_api::agent::TaskNetwork;
    use berth_api::ecs::{Container, ContainerDefinition, Task, TaskDefinition};
    use std::collections::HashSet;

    fn entry(network: Option<TaskNetwork>, mode: &str) -> Entry {
        Entry {
            ids: TaskIds {
                credentials: None,
                metadata: HashMap::new(),
            },
            definition: TaskDefinition {
                family: Some("web".into()),
                revision: Some(3),
                cpu: Some("512".into()),
                memory: Some("1024".into()),
                network_mode: Some(mode.into()),
                container_definitions: Some(vec![ContainerDefinition {
                    name: Some("web".into()),
                    image: Some("busybox".into()),
                    cpu: Some(128),
                    memory: Some(64),
                    ..Default::default()
                }]),
                ..Default::default()
            },
            report: Task {
                task_arn: Some("arn:aws:ecs:us-east-1:1:task/prod/abc".into()),
                last_status: Some("RUNNING".into()),
                desired_status: Some("RUNNING".into()),
                pull_started_at: Some(86_400.0),
                containers: Some(vec![Container {
                    name: Some("web".into()),
                    runtime_id: Some("d0c".into()),
                    container_arn: Some("arn:aws:ecs:us-east-1:1:container/prod/abc/x".into()),
                    last_status: Some("RUNNING".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            },
            cluster_arn: "arn:aws:ecs:us-east-1:1:cluster/prod".into(),
            launch_type: "EC2".into(),
            availability_zone: Some("us-east-1a".into()),
            network,
            docker_names: [("web".to_string(), "berth-abc-web".to_string())].into(),
            container_arns: HashMap::new(),
            addresses: HashSet::new(),
        }
    }

    #[test]
    fn a_bridge_tasks_documents() {
        let e = entry(None, "bridge");
        let facts = ContainerFacts {
            id: "d0c".into(),
            image_id: "sha256:1".into(),
            addresses: vec![("bridge".into(), "172.17.0.5".into())],
            ..Default::default()
        };
        let c = container(&e, "web", Some(&facts));
        assert_eq!(c["DockerId"], "d0c");
        assert_eq!(c["DockerName"], "berth-abc-web");
        assert_eq!(c["ImageID"], "sha256:1");
        assert_eq!(c["Limits"], json!({"CPU": 128, "Memory": 64}));
        assert_eq!(
            c["Networks"],
            json!([{"NetworkMode": "bridge", "IPv4Addresses": ["172.17.0.5"]}])
        );
        assert_eq!(
            c["ContainerARN"],
            "arn:aws:ecs:us-east-1:1:container/prod/abc/x"
        );
        let t = task(&e, &[("web".to_string(), facts)].into());
        assert_eq!(t["TaskARN"], "arn:aws:ecs:us-east-1:1:task/prod/abc");
        assert_eq!(t["Revision"], "3");
        assert_eq!(t["Limits"], json!({"CPU": 0.5, "Memory": 1024}));
        assert_eq!(t["PullStartedAt"], "1970-01-02T00:00:00Z");
        assert!(t.get("PullStoppedAt").is_none());
        assert_eq!(t["Containers"][0]["Name"], "web");
    }

    #[test]
    fn an_awsvpc_tasks_network() {
        let n = TaskNetwork {
            eni_id: "eni-1".into(),
            vpc_id: "vpc-1".into(),
            subnet_id: "subnet-1".into(),
            subnet_cidr: "172.31.16.0/20".into(),
            private_ip: "172.31.16.9".into(),
            mac: "0a:00:00:00:00:01".into(),
            public_ip: None,
        };
        let e = entry(Some(n), "awsvpc");
        let c = container(&e, "web", None);
        assert_eq!(c["Networks"][0]["IPv4Addresses"], json!(["172.31.16.9"]));
        assert_eq!(c["Networks"][0]["MACAddress"], "0a:00:00:00:00:01");
        assert_eq!(
            c["Networks"][0]["SubnetGatewayIpv4Address"],
            "172.31.16.1/20"
        );
        assert_eq!(task(&e, &HashMap::new())["VPCID"], "vpc-1");
    }
}
