use crate::testing::{Harness, ACCOUNT_A, ACCOUNT_B};
use berth_api::ErrorCode;
use serde_json::json;

async fn create(h: &Harness, name: &str, value: &str) -> serde_json::Value {
    h.secrets(
        ACCOUNT_A,
        "CreateSecret",
        json!({"Name": name, "SecretString": value}),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn a_secret_reads_back_by_name_full_arn_and_partial_arn() {
    let h = Harness::new().await;
    let out = create(&h, "prod/db", "hunter2").await;
    let arn = out["ARN"].as_str().unwrap().to_string();
    let suffix = arn.rsplit_once('-').unwrap().1;
    assert_eq!(suffix.len(), 6);
    assert!(arn.starts_with("arn:aws:secretsmanager:us-east-1:111111111111:secret:prod/db-"));
    let partial = arn.rsplit_once('-').unwrap().0.to_string();
    for id in ["prod/db", arn.as_str(), partial.as_str()] {
        let v = h
            .secrets(ACCOUNT_A, "GetSecretValue", json!({"SecretId": id}))
            .await
            .unwrap();
        assert_eq!(v["SecretString"], "hunter2", "{id}");
        assert_eq!(v["ARN"], arn.as_str());
        assert_eq!(v["VersionStages"], json!(["AWSCURRENT"]));
    }
    let wrong = format!("{partial}-XXXXXX");
    let e = h
        .secrets(ACCOUNT_A, "GetSecretValue", json!({"SecretId": wrong}))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::ResourceNotFoundException);
    // Another account does not see it.
    let e = h
        .secrets(ACCOUNT_B, "GetSecretValue", json!({"SecretId": "prod/db"}))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::ResourceNotFoundException);
    let e = h
        .secrets(
            ACCOUNT_A,
            "CreateSecret",
            json!({"Name": "prod/db", "SecretString": "x"}),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::ResourceExistsException);
}

#[tokio::test]
async fn put_secret_value_moves_current_to_previous_and_custom_stages_select() {
    let h = Harness::new().await;
    create(&h, "api", "one").await;
    let two = h
        .secrets(
            ACCOUNT_A,
            "PutSecretValue",
            json!({"SecretId": "api", "SecretString": "two"}),
        )
        .await
        .unwrap();
    assert_eq!(two["VersionStages"], json!(["AWSCURRENT"]));
    let get = |stage: &'static str| {
        let h = &h;
        async move {
            h.secrets(
                ACCOUNT_A,
                "GetSecretValue",
                json!({"SecretId": "api", "VersionStage": stage}),
            )
            .await
        }
    };
    assert_eq!(get("AWSCURRENT").await.unwrap()["SecretString"], "two");
    assert_eq!(get("AWSPREVIOUS").await.unwrap()["SecretString"], "one");
    h.secrets(
        ACCOUNT_A,
        "PutSecretValue",
        json!({"SecretId": "api", "SecretString": "canary", "VersionStages": ["blue"]}),
    )
    .await
    .unwrap();
    assert_eq!(get("blue").await.unwrap()["SecretString"], "canary");
    assert_eq!(get("AWSCURRENT").await.unwrap()["SecretString"], "two");
    let e = get("green").await.unwrap_err();
    assert_eq!(e.code, ErrorCode::ResourceNotFoundException);
    assert!(e.message.contains("staging label: green"), "{}", e.message);
    // By version id.
    let id = two["VersionId"].as_str().unwrap();
    let v = h
        .secrets(
            ACCOUNT_A,
            "GetSecretValue",
            json!({"SecretId": "api", "VersionId": id}),
        )
        .await
        .unwrap();
    assert_eq!(v["SecretString"], "two");
    // A token reused with another value is refused; with the same value it is the same version.
    let token = "0123456789abcdef0123456789abcdef";
    let put = |v: &'static str| {
        let h = &h;
        async move {
            h.secrets(
                ACCOUNT_A,
                "PutSecretValue",
                json!({"SecretId": "api", "SecretString": v, "ClientRequestToken": token}),
            )
            .await
        }
    };
    assert_eq!(put("three").await.unwrap()["VersionId"], token);
    assert_eq!(put("three").await.unwrap()["VersionId"], token);
    assert_eq!(
        put("four").await.unwrap_err().code,
        ErrorCode::ResourceExistsException
    );
}

#[tokio::test]
async fn a_secret_scheduled_for_deletion_refuses_reads_until_restored_and_goes_when_due() {
    let h = Harness::new().await;
    create(&h, "old", "v").await;
    let e = h
        .secrets(
            ACCOUNT_A,
            "DeleteSecret",
            json!({"SecretId": "old", "RecoveryWindowInDays": 7, "ForceDeleteWithoutRecovery": true}),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidParameterException);
    let e = h
        .secrets(
            ACCOUNT_A,
            "DeleteSecret",
            json!({"SecretId": "old", "RecoveryWindowInDays": 3}),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidParameterException);
    let d = h
        .secrets(
            ACCOUNT_A,
            "DeleteSecret",
            json!({"SecretId": "old", "RecoveryWindowInDays": 7}),
        )
        .await
        .unwrap();
    let now = h.state.clock().epoch_secs();
    assert_eq!(d["DeletionDate"].as_f64().unwrap(), now + 7.0 * 86_400.0);
    let e = h
        .secrets(ACCOUNT_A, "GetSecretValue", json!({"SecretId": "old"}))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidRequestException);
    assert!(e.message.contains("marked for deletion"));
    let described = h
        .secrets(ACCOUNT_A, "DescribeSecret", json!({"SecretId": "old"}))
        .await
        .unwrap();
    assert!(described["DeletedDate"].is_number());
    let listed = h
        .secrets(ACCOUNT_A, "ListSecrets", json!({}))
        .await
        .unwrap();
    assert_eq!(listed["SecretList"], json!([]));
    let listed = h
        .secrets(
            ACCOUNT_A,
            "ListSecrets",
            json!({"IncludePlannedDeletion": true}),
        )
        .await
        .unwrap();
    assert_eq!(listed["SecretList"].as_array().unwrap().len(), 1);
    h.secrets(ACCOUNT_A, "RestoreSecret", json!({"SecretId": "old"}))
        .await
        .unwrap();
    let v = h
        .secrets(ACCOUNT_A, "GetSecretValue", json!({"SecretId": "old"}))
        .await
        .unwrap();
    assert_eq!(v["SecretString"], "v");
    h.secrets(
        ACCOUNT_A,
        "DeleteSecret",
        json!({"SecretId": "old", "RecoveryWindowInDays": 7}),
    )
    .await
    .unwrap();
    super::secrets::purge(&h.state).await;
    assert_eq!(h.state.read().secrets.len(), 1, "not due yet");
    h.clock
        .advance(std::time::Duration::from_secs(7 * 86_400 + 1));
    super::secrets::purge(&h.state).await;
    assert_eq!(h.state.read().secrets.len(), 0);
    let e = h
        .secrets(ACCOUNT_A, "DescribeSecret", json!({"SecretId": "old"}))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::ResourceNotFoundException);
}

#[tokio::test]
async fn values_are_sealed_in_the_store_and_binary_values_round_trip() {
    let h = Harness::new().await;
    create(&h, "s", "plain-text-needle").await;
    h.secrets(
        ACCOUNT_A,
        "CreateSecret",
        json!({"Name": "b", "SecretBinary": "AAEC"}),
    )
    .await
    .unwrap();
    let stored = serde_json::to_string(
        &h.state
            .read()
            .secrets
            .values()
            .map(|v| &v.value)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    assert!(!stored.contains("plain-text-needle"));
    assert!(!stored.contains("AAEC"));
    let v = h
        .secrets(ACCOUNT_A, "GetSecretValue", json!({"SecretId": "b"}))
        .await
        .unwrap();
    assert_eq!(v["SecretBinary"], "AAEC");
    assert!(v.get("SecretString").is_none());
    let e = h
        .secrets(
            ACCOUNT_A,
            "CreateSecret",
            json!({"Name": "both", "SecretString": "a", "SecretBinary": "AA=="}),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidParameterException);
    let e = h
        .secrets(
            ACCOUNT_A,
            "CreateSecret",
            json!({"Name": "bad name!", "SecretString": "a"}),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::ValidationException);
}

#[tokio::test]
async fn list_secrets_filters_by_prefix_and_tags_and_pages() {
    let h = Harness::new().await;
    for n in ["app/a", "app/b", "db/c"] {
        create(&h, n, "v").await;
    }
    h.secrets(
        ACCOUNT_A,
        "TagResource",
        json!({"SecretId": "db/c", "Tags": [{"Key": "team", "Value": "data"}]}),
    )
    .await
    .unwrap();
    let names = |v: &serde_json::Value| -> Vec<String> {
        v["SecretList"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["Name"].as_str().unwrap().to_string())
            .collect()
    };
    let out = h
        .secrets(
            ACCOUNT_A,
            "ListSecrets",
            json!({"Filters": [{"Key": "name", "Values": ["app/"]}]}),
        )
        .await
        .unwrap();
    assert_eq!(names(&out), ["app/a", "app/b"]);
    let out = h
        .secrets(
            ACCOUNT_A,
            "ListSecrets",
            json!({"Filters": [{"Key": "tag-key", "Values": ["team"]}]}),
        )
        .await
        .unwrap();
    assert_eq!(names(&out), ["db/c"]);
    let out = h
        .secrets(
            ACCOUNT_A,
            "ListSecrets",
            json!({"Filters": [{"Key": "name", "Values": ["!app"]}]}),
        )
        .await
        .unwrap();
    assert_eq!(names(&out), ["db/c"]);
    let first = h
        .secrets(ACCOUNT_A, "ListSecrets", json!({"MaxResults": 2}))
        .await
        .unwrap();
    assert_eq!(names(&first), ["app/a", "app/b"]);
    let rest = h
        .secrets(
            ACCOUNT_A,
            "ListSecrets",
            json!({"MaxResults": 2, "NextToken": first["NextToken"]}),
        )
        .await
        .unwrap();
    assert_eq!(names(&rest), ["db/c"]);
    assert!(rest.get("NextToken").is_none());
    h.secrets(
        ACCOUNT_A,
        "UntagResource",
        json!({"SecretId": "db/c", "TagKeys": ["team"]}),
    )
    .await
    .unwrap();
    let d = h
        .secrets(ACCOUNT_A, "DescribeSecret", json!({"SecretId": "db/c"}))
        .await
        .unwrap();
    assert!(d.get("Tags").is_none());
}

#[tokio::test]
async fn a_resource_policy_denies_even_the_root_and_allows_a_user_without_policies() {
    let h = Harness::new().await;
    create(&h, "guarded", "v").await;
    let e = h
        .secrets(
            ACCOUNT_A,
            "PutResourcePolicy",
            json!({"SecretId": "guarded", "ResourcePolicy": "{not json"}),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::MalformedPolicyDocumentException);
    let user = "arn:aws:iam::111111111111:user/reader";
    let policy = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": user}, "Action": "secretsmanager:GetSecretValue", "Resource": "*"},
        {"Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "secretsmanager:PutSecretValue", "Resource": "*"}
    ]});
    h.secrets(
        ACCOUNT_A,
        "PutResourcePolicy",
        json!({"SecretId": "guarded", "ResourcePolicy": policy.to_string()}),
    )
    .await
    .unwrap();
    let got = h
        .secrets(
            ACCOUNT_A,
            "GetResourcePolicy",
            json!({"SecretId": "guarded"}),
        )
        .await
        .unwrap();
    assert_eq!(got["ResourcePolicy"], policy.to_string());
    let e = h
        .secrets(
            ACCOUNT_A,
            "PutSecretValue",
            json!({"SecretId": "guarded", "SecretString": "w"}),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::AccessDeniedException);
    assert!(
        e.message
            .contains("explicit deny in a resource-based policy"),
        "{}",
        e.message
    );
    // A user whose own policies allow nothing reads it through the resource policy.
    let reader = crate::auth::Caller {
        account: ACCOUNT_A.into(),
        identity: crate::auth::Identity::User {
            name: "reader".into(),
            path: "/".into(),
            from_config: false,
        },
    };
    let mut deny_all = |action: &'static str, _| -> Result<(), berth_api::ApiError> {
        Err(berth_api::ApiError::new(
            ErrorCode::AccessDeniedException,
            action,
        ))
    };
    let v = h
        .secretsmanager_as(
            &reader,
            "GetSecretValue",
            json!({"SecretId": "guarded"}),
            &mut deny_all,
        )
        .await
        .unwrap();
    assert_eq!(v["SecretString"], "v");
    let e = h
        .secretsmanager_as(
            &reader,
            "DescribeSecret",
            json!({"SecretId": "guarded"}),
            &mut deny_all,
        )
        .await
        .unwrap_err();
    assert_eq!(e.message, "secretsmanager:DescribeSecret");
    h.secrets(
        ACCOUNT_A,
        "DeleteResourcePolicy",
        json!({"SecretId": "guarded"}),
    )
    .await
    .unwrap();
    let e = h
        .secretsmanager_as(
            &reader,
            "GetSecretValue",
            json!({"SecretId": "guarded"}),
            &mut deny_all,
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::AccessDeniedException);
}

#[tokio::test]
async fn update_secret_changes_the_description_and_with_a_value_makes_it_current() {
    let h = Harness::new().await;
    create(&h, "u", "one").await;
    let out = h
        .secrets(
            ACCOUNT_A,
            "UpdateSecret",
            json!({"SecretId": "u", "Description": "the db", "KmsKeyId": "alias/mine"}),
        )
        .await
        .unwrap();
    assert!(out.get("VersionId").is_none());
    let out = h
        .secrets(
            ACCOUNT_A,
            "UpdateSecret",
            json!({"SecretId": "u", "SecretString": "two"}),
        )
        .await
        .unwrap();
    let two = out["VersionId"].as_str().unwrap().to_string();
    let d = h
        .secrets(ACCOUNT_A, "DescribeSecret", json!({"SecretId": "u"}))
        .await
        .unwrap();
    assert_eq!(d["Description"], "the db");
    assert_eq!(d["KmsKeyId"], "alias/mine");
    assert_eq!(d["VersionIdsToStages"][&two], json!(["AWSCURRENT"]));
    assert_eq!(d["VersionIdsToStages"].as_object().unwrap().len(), 2);
    // A version id and a stage it does not hold select nothing.
    let e = h
        .secrets(
            ACCOUNT_A,
            "GetSecretValue",
            json!({"SecretId": "u", "VersionId": two, "VersionStage": "AWSPREVIOUS"}),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::ResourceNotFoundException);
    let ids = h
        .secrets(ACCOUNT_A, "ListSecretVersionIds", json!({"SecretId": "u"}))
        .await
        .unwrap();
    assert_eq!(ids["Versions"].as_array().unwrap().len(), 2);
    // UpdateSecretVersionStage moves a label, and AWSCURRENT never goes away.
    let prev = d["VersionIdsToStages"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(id, _)| **id != two)
        .map(|(id, _)| id.clone())
        .unwrap();
    h.secrets(
        ACCOUNT_A,
        "UpdateSecretVersionStage",
        json!({"SecretId": "u", "VersionStage": "AWSCURRENT", "MoveToVersionId": prev, "RemoveFromVersionId": two}),
    )
    .await
    .unwrap();
    let v = h
        .secrets(ACCOUNT_A, "GetSecretValue", json!({"SecretId": "u"}))
        .await
        .unwrap();
    assert_eq!(v["SecretString"], "one");
    let e = h
        .secrets(
            ACCOUNT_A,
            "UpdateSecretVersionStage",
            json!({"SecretId": "u", "VersionStage": "AWSCURRENT", "RemoveFromVersionId": prev}),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidParameterException);
}
