//! The launch path through the real handlers and controller, on the store in RAM.
use crate::controller::{requeue::Requeue, services};
use crate::testing::{Harness, ACCOUNT_A};
use serde_json::{json, Value};

async fn web(h: &Harness, memory: i64) {
    h.ecs(
        ACCOUNT_A,
        "RegisterTaskDefinition",
        json!({
            "family": "web",
            "containerDefinitions": [{"name": "web", "image": "busybox", "memory": memory}],
        }),
    )
    .await
    .expect("RegisterTaskDefinition");
}

async fn service_tasks(h: &Harness) -> Vec<Value> {
    let listed = h
        .ecs(
            ACCOUNT_A,
            "ListTasks",
            json!({"cluster": "prod", "serviceName": "web"}),
        )
        .await
        .expect("ListTasks");
    listed["taskArns"].as_array().unwrap().clone()
}

fn arns(v: &Value, list: &str, member: &str) -> Vec<String> {
    v[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t[member].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn run_task_places_what_fits_and_says_why_the_rest_did_not() {
    let h = Harness::new().await;
    let instance = h.instance(ACCOUNT_A, "prod").await;
    web(&h, 1500).await;
    let out = h
        .ecs(
            ACCOUNT_A,
            "RunTask",
            json!({"cluster": "prod", "taskDefinition": "web", "count": 3}),
        )
        .await
        .expect("RunTask");
    // 4096 MiB registered: two copies of 1500 fit, the third does not.
    let placed = arns(&out, "tasks", "containerInstanceArn");
    assert_eq!(placed, [instance.clone(), instance.clone()]);
    assert_eq!(
        out["failures"],
        json!([{"arn": instance, "reason": "RESOURCE:MEMORY"}])
    );
    for t in out["tasks"].as_array().unwrap() {
        assert_eq!(t["lastStatus"], "PENDING");
        assert_eq!(t["group"], "family:web");
    }
}

#[tokio::test]
async fn start_task_refuses_by_name() {
    let h = Harness::new().await;
    let instance = h.instance(ACCOUNT_A, "prod").await;
    web(&h, 64).await;
    let missing = instance.replace(
        instance.rsplit('/').next().unwrap(),
        "0123456789abcdef0123456789abcdef",
    );
    let out = h
        .ecs(
            ACCOUNT_A,
            "StartTask",
            json!({"cluster": "prod", "taskDefinition": "web",
                   "containerInstances": [instance.clone(), missing.clone()]}),
        )
        .await
        .expect("StartTask");
    assert_eq!(arns(&out, "tasks", "containerInstanceArn"), [instance]);
    assert_eq!(
        out["failures"],
        json!([{"arn": missing, "reason": "MISSING"}])
    );
}

#[tokio::test]
async fn a_fargate_only_definition_on_ec2_is_an_invalid_parameter() {
    let h = Harness::new().await;
    h.ecs(ACCOUNT_A, "CreateCluster", json!({"clusterName": "prod"}))
        .await
        .unwrap();
    h.ecs(
        ACCOUNT_A,
        "RegisterTaskDefinition",
        json!({"family": "f", "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc",
               "cpu": "256", "memory": "512",
               "containerDefinitions": [{"name": "web", "image": "busybox"}]}),
    )
    .await
    .unwrap();
    let err = h
        .ecs(
            ACCOUNT_A,
            "RunTask",
            json!({"cluster": "prod", "taskDefinition": "f", "launchType": "EC2"}),
        )
        .await
        .expect_err("FARGATE only");
    assert_eq!(
        (err.code, err.message.as_str()),
        (
            berth_api::ErrorCode::InvalidParameterException,
            "Task definition does not support launch_type EC2."
        )
    );
}

#[tokio::test]
async fn a_cluster_without_instances_is_refused() {
    let h = Harness::new().await;
    h.ecs(ACCOUNT_A, "CreateCluster", json!({"clusterName": "empty"}))
        .await
        .unwrap();
    web(&h, 64).await;
    let err = h
        .ecs(
            ACCOUNT_A,
            "RunTask",
            json!({"cluster": "empty", "taskDefinition": "web"}),
        )
        .await
        .expect_err("no instance");
    assert_eq!(
        err.message,
        "No Container Instances were found in your cluster."
    );
}

#[tokio::test]
async fn a_service_pass_starts_its_copies_through_the_launch_path() {
    let h = Harness::new().await;
    let instance = h.instance(ACCOUNT_A, "prod").await;
    web(&h, 64).await;
    h.ecs(
        ACCOUNT_A,
        "CreateService",
        json!({"cluster": "prod", "serviceName": "web", "taskDefinition": "web", "desiredCount": 2}),
    )
    .await
    .expect("CreateService");
    services::reconcile(&h.state, true, &mut Requeue::default()).await;
    let tasks = service_tasks(&h).await;
    assert_eq!(tasks.len(), 2);
    let described = h
        .ecs(
            ACCOUNT_A,
            "DescribeTasks",
            json!({"cluster": "prod", "tasks": tasks}),
        )
        .await
        .unwrap();
    assert_eq!(
        arns(&described, "tasks", "containerInstanceArn"),
        [instance.clone(), instance]
    );
    for t in described["tasks"].as_array().unwrap() {
        assert_eq!(t["group"], "service:web");
        assert!(t["startedBy"].as_str().unwrap().starts_with("ecs-svc/"));
    }
    let service = h
        .ecs(
            ACCOUNT_A,
            "DescribeServices",
            json!({"cluster": "prod", "services": ["web"]}),
        )
        .await
        .unwrap();
    let s = &service["services"][0];
    assert_eq!(s["pendingCount"], 2);
    assert!(s["events"][0]["message"]
        .as_str()
        .unwrap()
        .starts_with("(service web) has started 2 tasks:"));
    // A second pass with nothing changed starts nothing more.
    services::reconcile(&h.state, true, &mut Requeue::default()).await;
    assert_eq!(service_tasks(&h).await, tasks);
}
