//! What each ECS operation is authorized on: its IAM action, the resource
//! ARNs it acts on (as the ECS service authorization reference lists them,
//! with `ecs:cluster` and the cluster's tags as condition keys), and the
//! `iam:PassRole` a launch implies for the task definition's roles.
use crate::authz::{Call, Resource};
use crate::lookup;
use crate::state::index::Index;
use berth_api::ecs::shapes::Tag;
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
    let r = Resource::arn(a.clone()).with("ecs:cluster", a);
    with_tags(r, cluster_tags(index, scope, name))
}

fn cluster_tags<'i>(index: &'i Index, scope: &Scope, name: String) -> Option<&'i [Tag]> {
    let c = index.clusters.get(&(scope.clone(), name))?;
    c.value.tags.as_deref()
}

fn with_tags(mut r: Resource, tags: Option<&[Tag]>) -> Resource {
    for t in tags.into_iter().flatten() {
        if let (Some(k), Some(v)) = (&t.key, &t.value) {
            r = r.with(format!("aws:ResourceTag/{k}"), v.clone());
        }
    }
    r
}

/// The tags of the cluster, service or task definition revision an ARN names
/// in the caller's scope, as `aws:ResourceTag/…` keys of the resource.
fn tagged(index: &Index, scope: &Scope, r: Resource) -> Resource {
    let Some(a) =
        arn::parse(&r.arn).filter(|a| a.account == scope.account && a.region == scope.region)
    else {
        return r;
    };
    let tags = match a.resource_type.as_str() {
        "cluster" => cluster_tags(index, scope, a.resource.clone()),
        "service" => a.resource.split_once('/').and_then(|(cluster, name)| {
            let key = (scope.clone(), cluster.to_string(), name.to_string());
            index
                .services
                .get(&key)
                .and_then(|s| s.value.service.tags.as_deref())
        }),
        "task-definition" => a.resource.rsplit_once(':').and_then(|(family, rev)| {
            let key = (scope.clone(), family.to_string(), rev.parse().ok()?);
            index.task_definitions.get(&key).map(|t| &t.value.tags[..])
        }),
        _ => None,
    };
    with_tags(r, tags)
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
    let r = Resource::arn(a).with("ecs:cluster", cluster_arn);
    (with_tags(r, found.map(|v| &v.value.tags[..])), roles)
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
                .map(|s| tagged(index, scope, in_cluster(scope, &c, "service", s)))
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
            let r = Resource::arn(input.resource_arn.as_deref().unwrap_or("*"));
            vec![tagged(index, scope, r)]
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

    #[tokio::test]
    async fn services_and_task_definitions_bring_their_tags() {
        use crate::testing::{Harness, ACCOUNT_A};
        use serde_json::json;
        let h = Harness::new().await;
        h.ecs(ACCOUNT_A, "CreateCluster", json!({"clusterName": "prod"}))
            .await
            .unwrap();
        h.ecs(
            ACCOUNT_A,
            "RegisterTaskDefinition",
            json!({"family": "web", "tags": [{"key": "team", "value": "web"}],
                   "containerDefinitions": [{"name": "app", "image": "busybox", "memory": 64}]}),
        )
        .await
        .unwrap();
        h.ecs(
            ACCOUNT_A,
            "CreateService",
            json!({"cluster": "prod", "serviceName": "api", "taskDefinition": "web:1",
                   "desiredCount": 0, "tags": [{"key": "env", "value": "prod"}]}),
        )
        .await
        .unwrap();
        let index = h.state.read();
        let keys = |op: &str, body: serde_json::Value| {
            let c = calls(&index, &scope(), op, "ecs:x", body.to_string().as_bytes());
            c[0].resources[0].keys.clone()
        };
        let tag = |k: &str, v: &str| (Cow::Owned(format!("aws:ResourceTag/{k}")), v.to_string());
        let prod = "arn:aws:ecs:us-east-1:111111111111:cluster/prod".to_string();
        assert_eq!(
            keys(
                "DescribeServices",
                json!({"cluster": "prod", "services": ["api"]})
            ),
            vec![("ecs:cluster".into(), prod.clone()), tag("env", "prod")]
        );
        assert_eq!(
            keys(
                "RunTask",
                json!({"cluster": "prod", "taskDefinition": "web:1"})
            ),
            vec![("ecs:cluster".into(), prod), tag("team", "web")]
        );
        let td = "arn:aws:ecs:us-east-1:111111111111:task-definition/web:1";
        assert_eq!(
            keys("TagResource", json!({"resourceArn": td})),
            vec![tag("team", "web")]
        );
        // Another account's ARN names nothing of this caller's.
        let other = "arn:aws:ecs:us-east-1:222222222222:task-definition/web:1";
        assert!(keys("TagResource", json!({"resourceArn": other})).is_empty());
    }
}
