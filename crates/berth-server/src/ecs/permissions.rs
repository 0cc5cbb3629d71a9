//! What each ECS operation is authorized on: its IAM action, the resource
//! ARNs it acts on (as the ECS service authorization reference lists them,
//! with `ecs:cluster` and the cluster's tags as condition keys), and the
//! `iam:PassRole` a launch implies for the task definition's roles.
use crate::authz::{Call, Resource};
use crate::lookup;
use crate::state::borrowed_key::borrowed;
use crate::state::index::Index;
use berth_api::ecs::shapes::{self, Tag};
use berth_model::task_definition::parse_reference;
use berth_model::{arn, Scope};

/// The members of a decoded request that name its resources, borrowed from it:
/// authorization reads the request the handler reads, parsed once.
#[derive(Default, Clone, Copy)]
pub struct Naming<'a> {
    pub cluster: Option<&'a str>,
    pub cluster_name: Option<&'a str>,
    pub clusters: &'a [String],
    pub container_instances: &'a [String],
    pub task: Option<&'a str>,
    pub tasks: &'a [String],
    pub service_name: Option<&'a str>,
    pub service: Option<&'a str>,
    pub services: &'a [String],
    pub task_definition: Option<&'a str>,
    pub resource_arn: Option<&'a str>,
}

/// A request shape's resource-naming members.
pub trait Names {
    fn naming(&self) -> Naming<'_>;
}

/// One member of a request shape, as `Naming` holds it.
trait Member<'a, T> {
    fn member(&'a self) -> T;
}

impl<'a> Member<'a, Option<&'a str>> for Option<String> {
    fn member(&'a self) -> Option<&'a str> {
        self.as_deref()
    }
}

impl<'a> Member<'a, &'a [String]> for Option<Vec<String>> {
    fn member(&'a self) -> &'a [String] {
        self.as_deref().unwrap_or_default()
    }
}

macro_rules! names {
    ($($shape:ident { $($member:ident),* }),* $(,)?) => {
        $(impl Names for shapes::$shape {
            fn naming(&self) -> Naming<'_> {
                Naming { $($member: Member::member(&self.$member),)* ..Naming::default() }
            }
        })*
    };
}

names! {
    CreateClusterRequest { cluster_name },
    DescribeClustersRequest { clusters },
    ListClustersRequest {},
    UpdateClusterRequest { cluster },
    UpdateClusterSettingsRequest { cluster },
    DeleteClusterRequest { cluster },
    PutClusterCapacityProvidersRequest { cluster },
    RegisterTaskDefinitionRequest {},
    DescribeTaskDefinitionRequest {},
    ListTaskDefinitionsRequest {},
    ListTaskDefinitionFamiliesRequest {},
    DeregisterTaskDefinitionRequest {},
    DeleteTaskDefinitionsRequest {},
    TagResourceRequest { resource_arn },
    UntagResourceRequest { resource_arn },
    ListTagsForResourceRequest { resource_arn },
    ListAccountSettingsRequest {},
    PutAccountSettingRequest {},
    PutAccountSettingDefaultRequest {},
    DeleteAccountSettingRequest {},
    RegisterContainerInstanceRequest { cluster },
    DescribeContainerInstancesRequest { cluster, container_instances },
    ListContainerInstancesRequest { cluster },
    DeregisterContainerInstanceRequest { cluster },
    UpdateContainerInstancesStateRequest { cluster, container_instances },
    DiscoverPollEndpointRequest { cluster },
    PutAttributesRequest { cluster },
    DeleteAttributesRequest { cluster },
    ListAttributesRequest { cluster },
    RunTaskRequest { cluster, task_definition },
    StartTaskRequest { cluster, task_definition },
    StopTaskRequest { cluster, task },
    DescribeTasksRequest { cluster, tasks },
    ListTasksRequest { cluster },
    UpdateTaskProtectionRequest { cluster, tasks },
    GetTaskProtectionRequest { cluster, tasks },
    CreateServiceRequest { cluster, service_name, task_definition },
    UpdateServiceRequest { cluster, service, task_definition },
    DeleteServiceRequest { cluster, service },
    DescribeServicesRequest { cluster, services },
    ListServicesRequest { cluster },
}

/// A cluster as an authorization resource: its ARN with its tags.
fn cluster(index: &Index, scope: &Scope, name_or_arn: Option<&str>) -> Resource {
    let name = lookup::resolve_name(scope, name_or_arn).unwrap_or_default();
    let a = arn::cluster(scope, &name);
    let r = Resource::arn(a.clone()).with("ecs:cluster", a);
    with_tags(r, cluster_tags(index, scope, &name))
}

fn cluster_tags<'i>(index: &'i Index, scope: &Scope, name: &str) -> Option<&'i [Tag]> {
    let c = index
        .clusters
        .get(borrowed(&[&scope.account, &scope.region, name]))?;
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

/// The tags of the cluster, service, task or task definition revision an ARN names
/// in the caller's scope, as `aws:ResourceTag/…` keys of the resource.
fn tagged(index: &Index, scope: &Scope, r: Resource) -> Resource {
    let Some(a) =
        arn::parse(&r.arn).filter(|a| a.account == scope.account && a.region == scope.region)
    else {
        return r;
    };
    let tags = match a.resource_type.as_str() {
        "cluster" => cluster_tags(index, scope, &a.resource),
        "service" => a.resource.split_once('/').and_then(|(cluster, name)| {
            let key = [&scope.account, &scope.region, cluster, name];
            index
                .services
                .get(borrowed(&key))
                .and_then(|s| s.value.service.tags.as_deref())
        }),
        "task" => a.resource.split_once('/').and_then(|(cluster, id)| {
            let key = [&scope.account, &scope.region, cluster, id];
            index
                .tasks
                .get(borrowed(&key))
                .and_then(|t| t.value.summary.tags.as_deref())
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

/// The one resource a request names, or else its list.
fn one_or_many<'a>(one: Option<&'a str>, many: &'a [String]) -> impl Iterator<Item = &'a str> {
    let many = if one.is_some() { &[][..] } else { many };
    one.into_iter().chain(many.iter().map(String::as_str))
}

/// The calls one ECS operation makes on IAM's behalf: its own, and `iam:PassRole`.
pub fn calls<'a>(
    index: &Index,
    scope: &Scope,
    operation: &str,
    action: &'a str,
    input: Naming,
) -> Vec<Call<'a>> {
    let the_cluster = || cluster(index, scope, input.cluster);
    let cluster_arn = || the_cluster().arn;
    let mut passed = vec![];
    let resources = match operation {
        "CreateCluster" => vec![cluster(
            index,
            scope,
            Some(input.cluster_name.unwrap_or("default")),
        )],
        "DescribeClusters" => {
            if input.clusters.is_empty() {
                vec![the_cluster()]
            } else {
                input
                    .clusters
                    .iter()
                    .map(|c| cluster(index, scope, Some(c.as_str())))
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
        | "DescribeContainerInstances"
        | "PutAttributes"
        | "DeleteAttributes"
        | "ListAttributes" => {
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
        "DescribeTasks" | "StopTask" | "UpdateTaskProtection" | "GetTaskProtection" => {
            let c = cluster_arn();
            one_or_many(input.task, input.tasks)
                .map(|t| tagged(index, scope, in_cluster(scope, &c, "task", t)))
                .collect()
        }
        "CreateService" | "UpdateService" | "DeleteService" | "DescribeServices" => {
            let c = cluster_arn();
            if let Some(td) = input.task_definition {
                passed = task_definition(index, scope, td, &c).1;
            }
            one_or_many(input.service_name.or(input.service), input.services)
                .map(|s| tagged(index, scope, in_cluster(scope, &c, "service", s)))
                .collect()
        }
        "RunTask" | "StartTask" => {
            let c = cluster_arn();
            let (r, roles) =
                task_definition(index, scope, input.task_definition.unwrap_or_default(), &c);
            passed = roles;
            vec![r]
        }
        "TagResource" | "UntagResource" | "ListTagsForResource" => {
            let r = Resource::arn(input.resource_arn.unwrap_or("*"));
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
    use berth_api::ecs::decode_input;
    use std::borrow::Cow;

    /// The calls of `op` on a request decoded as its handler decodes it.
    fn calls_of<'a>(index: &Index, op: &str, action: &'a str, body: &str) -> Vec<Call<'a>> {
        macro_rules! by_shape {
            ($($name:literal => $shape:ident),*) => {
                match op {
                    $($name => {
                        let input: shapes::$shape = decode_input(body.as_bytes()).unwrap();
                        calls(index, &scope(), op, action, input.naming())
                    })*
                    _ => panic!("no shape for {op}"),
                }
            };
        }
        by_shape!("DescribeClusters" => DescribeClustersRequest, "StopTask" => StopTaskRequest,
            "RunTask" => RunTaskRequest, "ListClusters" => ListClustersRequest,
            "DescribeServices" => DescribeServicesRequest, "DescribeTasks" => DescribeTasksRequest,
            "ListTagsForResource" => ListTagsForResourceRequest)
    }

    fn scope() -> Scope {
        Scope::new("111111111111", "us-east-1")
    }

    #[test]
    fn operations_name_their_resources() {
        let index = Index::default();
        let arns = |op: &str, body: &str| -> Vec<String> {
            calls_of(&index, op, "ecs:x", body)[0]
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
        let run = calls_of(
            &index,
            "RunTask",
            "ecs:RunTask",
            r#"{"cluster":"prod","taskDefinition":"web:3"}"#,
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
        h.instance(ACCOUNT_A, "prod").await;
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
        let run = h
            .ecs(
                ACCOUNT_A,
                "RunTask",
                json!({"cluster": "prod", "taskDefinition": "web:1",
                       "tags": [{"key": "job", "value": "nightly"}]}),
            )
            .await
            .unwrap();
        let task = run["tasks"][0]["taskArn"].as_str().unwrap().to_string();
        let index = h.state.read();
        let keys = |op: &str, body: serde_json::Value| {
            let c = calls_of(&index, op, "ecs:x", &body.to_string());
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
            vec![("ecs:cluster".into(), prod.clone()), tag("team", "web")]
        );
        assert_eq!(
            keys("DescribeTasks", json!({"cluster": "prod", "tasks": [task]})),
            vec![("ecs:cluster".into(), prod.clone()), tag("job", "nightly")]
        );
        let td = "arn:aws:ecs:us-east-1:111111111111:task-definition/web:1";
        assert_eq!(
            keys("ListTagsForResource", json!({"resourceArn": td})),
            vec![tag("team", "web")]
        );
        // Another account's ARN names nothing of this caller's.
        let other = "arn:aws:ecs:us-east-1:222222222222:task-definition/web:1";
        assert!(keys("ListTagsForResource", json!({"resourceArn": other})).is_empty());
    }
}
