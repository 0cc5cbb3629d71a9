//! What each ECS operation is authorized on: its IAM action, the resource
//! ARNs it acts on (as the ECS service authorization reference lists them,
//! with `ecs:cluster` and the cluster's tags as condition keys), and the
//! `iam:PassRole` a launch implies for the task definition's roles.
use crate::authz::{Call, Resource};
use crate::lookup;
use crate::state::index::Index;
use berth_model::task_definition::parse_reference;
use berth_model::{arn, Scope};
use serde::Deserialize;
use std::borrow::Cow;

/// The members of a request that name its resources; the rest of the body is
/// skipped unread (a RegisterTaskDefinition's containers are not parsed twice).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Naming<'a> {
    #[serde(borrow)]
    cluster: Option<Cow<'a, str>>,
    #[serde(borrow)]
    cluster_name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    clusters: Vec<Cow<'a, str>>,
    #[serde(borrow)]
    container_instances: Vec<Cow<'a, str>>,
    #[serde(borrow)]
    task: Option<Cow<'a, str>>,
    #[serde(borrow)]
    tasks: Vec<Cow<'a, str>>,
    #[serde(borrow)]
    service_name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    service: Option<Cow<'a, str>>,
    #[serde(borrow)]
    services: Vec<Cow<'a, str>>,
    #[serde(borrow)]
    task_definition: Option<Cow<'a, str>>,
    #[serde(borrow)]
    resource_arn: Option<Cow<'a, str>>,
}

/// A cluster as an authorization resource: its ARN with its tags.
fn cluster(index: &Index, scope: &Scope, name_or_arn: Option<&str>) -> Resource {
    let name = lookup::resolve_name(scope, name_or_arn).unwrap_or_default();
    let a = arn::cluster(scope, &name);
    let mut r = Resource::arn(a.clone()).with("ecs:cluster", a);
    if let Some(c) = index.clusters.get(&(scope.clone(), name)) {
        for t in c.value.tags.iter().flatten() {
            if let (Some(k), Some(v)) = (&t.key, &t.value) {
                r = r.with(format!("aws:ResourceTag/{k}"), v.clone());
            }
        }
    }
    r
}

/// A resource of a cluster (`task/CLUSTER/ID`, `service/CLUSTER/NAME`, …), given by ARN or id.
fn in_cluster(scope: &Scope, cluster_arn: &str, kind: &str, given: &str) -> Resource {
    let cluster_name = cluster_arn.rsplit('/').next().unwrap_or_default();
    let a = if given.starts_with("arn:") {
        given.to_string()
    } else {
        format!(
            "arn:aws:ecs:{}:{}:{kind}/{cluster_name}/{given}",
            scope.region, scope.account
        )
    };
    Resource::arn(a).with("ecs:cluster", cluster_arn)
}

/// The task definition revision a launch names, as a resource, and the roles it would pass.
fn task_definition(
    index: &Index,
    scope: &Scope,
    given: &str,
    cluster_arn: &str,
) -> (Resource, Vec<String>) {
    let Some(reference) = parse_reference(scope, given) else {
        return (
            Resource::arn(given).with("ecs:cluster", cluster_arn),
            vec![],
        );
    };
    let found = lookup::task_definition(index, scope, &reference);
    let revision = found
        .and_then(|v| v.value.task_definition.revision)
        .or(reference.revision);
    let a = match revision {
        Some(rev) => arn::task_definition(scope, &reference.family, rev),
        None => format!(
            "arn:aws:ecs:{}:{}:task-definition/{}",
            scope.region, scope.account, reference.family
        ),
    };
    let roles = found
        .map(|v| {
            let td = &v.value.task_definition;
            [&td.task_role_arn, &td.execution_role_arn]
                .into_iter()
                .flatten()
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    (Resource::arn(a).with("ecs:cluster", cluster_arn), roles)
}

/// The calls one ECS operation makes on IAM's behalf: its own, and `iam:PassRole`.
pub fn calls<'a>(
    index: &Index,
    scope: &Scope,
    operation: &str,
    action: &'a str,
    body: &[u8],
) -> Vec<Call<'a>> {
    // A body of the wrong shape is the handler's to refuse; here it names nothing.
    let input: Naming = serde_json::from_slice(body).unwrap_or_default();
    let the_cluster = || cluster(index, scope, input.cluster.as_deref());
    let cluster_arn = || the_cluster().arn;
    let mut passed = vec![];
    let resources = match operation {
        "CreateCluster" => vec![cluster(
            index,
            scope,
            Some(input.cluster_name.as_deref().unwrap_or("default")),
        )],
        "DescribeClusters" => {
            if input.clusters.is_empty() {
                vec![the_cluster()]
            } else {
                input
                    .clusters
                    .iter()
                    .map(|c| cluster(index, scope, Some(c)))
                    .collect()
            }
        }
        "DeleteCluster"
        | "UpdateCluster"
        | "UpdateClusterSettings"
        | "PutClusterCapacityProviders"
        | "ListContainerInstances"
        | "RegisterContainerInstance"
        | "DeregisterContainerInstance"
        | "ListServices"
        | "ListTasks"
        | "DescribeContainerInstances" => {
            vec![the_cluster()]
        }
        "UpdateContainerInstancesState" => {
            let c = cluster_arn();
            input
                .container_instances
                .iter()
                .map(|i| in_cluster(scope, &c, "container-instance", i))
                .collect()
        }
        "DescribeTasks" | "StopTask" => {
            let c = cluster_arn();
            let one = input.task.as_slice();
            let tasks = if one.is_empty() {
                &input.tasks[..]
            } else {
                one
            };
            tasks
                .iter()
                .map(|t| in_cluster(scope, &c, "task", t))
                .collect()
        }
        "CreateService" | "UpdateService" | "DeleteService" | "DescribeServices" => {
            let c = cluster_arn();
            let one = match &input.service_name {
                Some(s) => std::slice::from_ref(s),
                None => input.service.as_slice(),
            };
            let services = if one.is_empty() {
                &input.services[..]
            } else {
                one
            };
            if let Some(td) = input.task_definition.as_deref() {
                passed = task_definition(index, scope, td, &c).1;
            }
            services
                .iter()
                .map(|s| in_cluster(scope, &c, "service", s))
                .collect()
        }
        "RunTask" | "StartTask" => {
            let c = cluster_arn();
            let (r, roles) = task_definition(
                index,
                scope,
                input.task_definition.as_deref().unwrap_or_default(),
                &c,
            );
            passed = roles;
            vec![r]
        }
        "TagResource" | "UntagResource" | "ListTagsForResource" => {
            vec![Resource::arn(input.resource_arn.as_deref().unwrap_or("*"))]
        }
        // Task definitions, account settings and listings of the account act on no one resource.
        _ => vec![Resource::any()],
    };
    let mut out = vec![Call { action, resources }];
    if !passed.is_empty() {
        out.push(Call {
            action: "iam:PassRole",
            resources: passed
                .into_iter()
                .map(|r| Resource::arn(r).with("iam:passedtoservice", "ecs-tasks.amazonaws.com"))
                .collect(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> Scope {
        Scope::new("111111111111", "us-east-1")
    }

    #[test]
    fn operations_name_their_resources() {
        let index = Index::default();
        let arns = |op: &str, body: &str| -> Vec<String> {
            calls(&index, &scope(), op, "ecs:x", body.as_bytes())[0]
                .resources
                .iter()
                .map(|r| r.arn.clone())
                .collect()
        };
        let c = "arn:aws:ecs:us-east-1:111111111111:cluster/";
        assert_eq!(arns("DescribeClusters", "{}"), vec![format!("{c}default")]);
        assert_eq!(
            arns(
                "DescribeClusters",
                r#"{"clusters":["a","arn:aws:ecs:us-east-1:111111111111:cluster/b"]}"#
            ),
            vec![format!("{c}a"), format!("{c}b")]
        );
        assert_eq!(
            arns("StopTask", r#"{"cluster":"prod","task":"abc"}"#),
            vec!["arn:aws:ecs:us-east-1:111111111111:task/prod/abc".to_string()]
        );
        assert_eq!(
            arns("RunTask", r#"{"cluster":"prod","taskDefinition":"web:3"}"#),
            vec!["arn:aws:ecs:us-east-1:111111111111:task-definition/web:3".to_string()]
        );
        assert_eq!(arns("ListClusters", "{}"), vec!["*".to_string()]);
        let run = calls(
            &index,
            &scope(),
            "RunTask",
            "ecs:RunTask",
            br#"{"cluster":"prod","taskDefinition":"web:3"}"#,
        );
        assert_eq!(
            run[0].resources[0].keys,
            vec![("ecs:cluster".into(), format!("{c}prod"))]
        );
    }
}
