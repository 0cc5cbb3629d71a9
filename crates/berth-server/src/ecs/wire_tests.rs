//! Errors where the order ECS checks in, or the error it picks, shows on the wire.
use crate::testing::{Harness, ACCOUNT_A};
use berth_api::ErrorCode;
use serde_json::json;

#[tokio::test]
async fn describes_look_for_the_cluster_before_the_list() {
    let h = Harness::new().await;
    for (op, member, what) in [
        ("DescribeTasks", "tasks", "Tasks"),
        (
            "DescribeContainerInstances",
            "containerInstances",
            "Container Instances",
        ),
    ] {
        let err = h
            .ecs(ACCOUNT_A, op, json!({"cluster": "nope", member: []}))
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::ClusterNotFoundException, "{op}");
        h.ecs(ACCOUNT_A, "CreateCluster", json!({"clusterName": "here"}))
            .await
            .unwrap();
        let err = h
            .ecs(ACCOUNT_A, op, json!({"cluster": "here", member: []}))
            .await
            .unwrap_err();
        assert_eq!(
            (err.code, err.message),
            (
                ErrorCode::InvalidParameterException,
                format!("{what} cannot be empty.")
            )
        );
    }
}

#[tokio::test]
async fn a_missing_service_given_bare_is_named_in_the_short_form() {
    let h = Harness::new().await;
    h.ecs(ACCOUNT_A, "CreateCluster", json!({"clusterName": "here"}))
        .await
        .unwrap();
    let out = h
        .ecs(
            ACCOUNT_A,
            "DescribeServices",
            json!({"cluster": "here", "services": ["gone"]}),
        )
        .await
        .unwrap();
    assert_eq!(
        out["failures"],
        json!([{"arn": format!("arn:aws:ecs:us-east-1:{ACCOUNT_A}:service/gone"), "reason": "MISSING"}])
    );
}
