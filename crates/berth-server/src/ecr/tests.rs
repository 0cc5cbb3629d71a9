//! The ECR API over the in-memory store: repositories, pushes as the registry
//! records them, images listed, described, fetched and deleted.
use super::pushes;
use crate::state::ecr_records::ImageRecord;
use crate::testing::{Harness, ACCOUNT_A, ACCOUNT_B, REGION};
use berth_api::ErrorCode;
use berth_model::Scope;
use serde_json::json;

fn image(n: u8) -> (String, ImageRecord) {
    let manifest = format!(r#"{{"schemaVersion":2,"n":{n}}}"#);
    let digest = format!("sha256:{:064x}", n);
    let record = ImageRecord {
        media_type: "application/vnd.docker.distribution.manifest.v2+json".into(),
        manifest,
        size: 1000 + n as i64,
        pushed_at: 1_700_000_000.0 + n as f64,
        artifact_media_type: None,
        blobs: vec![],
        manifests: vec![],
    };
    (digest, record)
}

async fn push(
    h: &Harness,
    repo: &str,
    n: u8,
    tag: Option<&str>,
) -> Result<String, berth_api::ApiError> {
    let (digest, record) = image(n);
    let scope = Scope::new(ACCOUNT_A, REGION);
    pushes::record(&h.state, &scope, repo, &digest, &record, tag).await?;
    Ok(digest)
}

#[tokio::test]
async fn repositories_are_made_described_and_deleted() {
    let h = Harness::new().await;
    let made = h
        .ecr(
            ACCOUNT_A,
            "CreateRepository",
            json!({"repositoryName": "team/web", "tags": [{"Key": "team", "Value": "a"}]}),
        )
        .await
        .unwrap();
    let r = &made["repository"];
    assert_eq!(
        r["repositoryArn"],
        "arn:aws:ecr:us-east-1:111111111111:repository/team/web"
    );
    assert_eq!(r["registryId"], ACCOUNT_A);
    assert_eq!(r["imageTagMutability"], "MUTABLE");
    assert_eq!(r["imageScanningConfiguration"]["scanOnPush"], false);
    assert_eq!(r["encryptionConfiguration"]["encryptionType"], "AES256");
    assert_eq!(
        r["repositoryUri"],
        "registry.berth.invalid/111111111111/us-east-1/team/web"
    );
    assert_eq!(r["createdAt"], 1_700_000_000.0);

    let again = h
        .ecr(
            ACCOUNT_A,
            "CreateRepository",
            json!({"repositoryName": "team/web"}),
        )
        .await
        .unwrap_err();
    assert_eq!(again.code, ErrorCode::RepositoryAlreadyExistsException);
    let bad = h
        .ecr(
            ACCOUNT_A,
            "CreateRepository",
            json!({"repositoryName": "Team"}),
        )
        .await
        .unwrap_err();
    assert_eq!(bad.code, ErrorCode::InvalidParameterException);

    let listed = h
        .ecr(ACCOUNT_A, "DescribeRepositories", json!({}))
        .await
        .unwrap();
    assert_eq!(listed["repositories"].as_array().unwrap().len(), 1);
    // Another account sees none of it.
    let other = h
        .ecr(ACCOUNT_B, "DescribeRepositories", json!({}))
        .await
        .unwrap();
    assert_eq!(other["repositories"], json!([]));
    let missing = h
        .ecr(
            ACCOUNT_B,
            "DescribeRepositories",
            json!({"repositoryNames": ["team/web"]}),
        )
        .await
        .unwrap_err();
    assert_eq!(missing.code, ErrorCode::RepositoryNotFoundException);
    assert_eq!(
        missing.message,
        "The repository with name 'team/web' does not exist in the registry with id '222222222222'"
    );

    let arn = "arn:aws:ecr:us-east-1:111111111111:repository/team/web";
    h.ecr(
        ACCOUNT_A,
        "TagResource",
        json!({"resourceArn": arn, "tags": [{"Key": "env", "Value": "prod"}]}),
    )
    .await
    .unwrap();
    h.ecr(
        ACCOUNT_A,
        "UntagResource",
        json!({"resourceArn": arn, "tagKeys": ["team"]}),
    )
    .await
    .unwrap();
    let tags = h
        .ecr(
            ACCOUNT_A,
            "ListTagsForResource",
            json!({"resourceArn": arn}),
        )
        .await
        .unwrap();
    assert_eq!(tags["tags"], json!([{"Key": "env", "Value": "prod"}]));

    push(&h, "team/web", 1, Some("v1")).await.unwrap();
    let full = h
        .ecr(
            ACCOUNT_A,
            "DeleteRepository",
            json!({"repositoryName": "team/web"}),
        )
        .await
        .unwrap_err();
    assert_eq!(full.code, ErrorCode::RepositoryNotEmptyException);
    let gone = h
        .ecr(
            ACCOUNT_A,
            "DeleteRepository",
            json!({"repositoryName": "team/web", "force": true}),
        )
        .await
        .unwrap();
    assert_eq!(gone["repository"]["repositoryName"], "team/web");
    let index = h.state.read();
    assert!(
        index.ecr_images.is_empty()
            && index.ecr_tags.is_empty()
            && index.ecr_repositories.is_empty()
    );
}

#[tokio::test]
async fn immutable_tags_refuse_a_second_image() {
    let h = Harness::new().await;
    h.ecr(
        ACCOUNT_A,
        "CreateRepository",
        json!({"repositoryName": "web", "imageTagMutability": "IMMUTABLE"}),
    )
    .await
    .unwrap();
    push(&h, "web", 1, Some("v1")).await.unwrap();
    // The same image again under its tag is no change.
    push(&h, "web", 1, Some("v1")).await.unwrap();
    let refused = push(&h, "web", 2, Some("v1")).await.unwrap_err();
    assert_eq!(refused.code, ErrorCode::ImageTagAlreadyExistsException);
    h.ecr(
        ACCOUNT_A,
        "PutImageTagMutability",
        json!({"repositoryName": "web", "imageTagMutability": "MUTABLE"}),
    )
    .await
    .unwrap();
    let d2 = push(&h, "web", 2, Some("v1")).await.unwrap();
    let index = h.state.read();
    let tag = index.ecr_tags.values().next().unwrap();
    assert_eq!(tag.value.digest, d2);
}

#[tokio::test]
async fn images_are_listed_described_fetched_and_deleted_as_ecr_does() {
    let h = Harness::new().await;
    h.ecr(
        ACCOUNT_A,
        "CreateRepository",
        json!({"repositoryName": "web"}),
    )
    .await
    .unwrap();
    let d1 = push(&h, "web", 1, Some("v1")).await.unwrap();
    push(&h, "web", 1, Some("latest")).await.unwrap();
    let d2 = push(&h, "web", 2, None).await.unwrap();

    let all = h
        .ecr(ACCOUNT_A, "ListImages", json!({"repositoryName": "web"}))
        .await
        .unwrap();
    assert_eq!(all["imageIds"].as_array().unwrap().len(), 3);
    let untagged = h
        .ecr(
            ACCOUNT_A,
            "ListImages",
            json!({"repositoryName": "web", "filter": {"tagStatus": "UNTAGGED"}}),
        )
        .await
        .unwrap();
    assert_eq!(untagged["imageIds"], json!([{"imageDigest": d2}]));
    let paged = h
        .ecr(
            ACCOUNT_A,
            "ListImages",
            json!({"repositoryName": "web", "maxResults": 2}),
        )
        .await
        .unwrap();
    assert_eq!(paged["imageIds"].as_array().unwrap().len(), 2);
    let rest = h
        .ecr(
            ACCOUNT_A,
            "ListImages",
            json!({"repositoryName": "web", "nextToken": paged["nextToken"]}),
        )
        .await
        .unwrap();
    assert_eq!(rest["imageIds"].as_array().unwrap().len(), 1);

    let described = h
        .ecr(
            ACCOUNT_A,
            "DescribeImages",
            json!({"repositoryName": "web", "imageIds": [{"imageTag": "v1"}]}),
        )
        .await
        .unwrap();
    let d = &described["imageDetails"][0];
    assert_eq!(d["imageDigest"], d1);
    assert_eq!(d["imageTags"], json!(["latest", "v1"]));
    assert_eq!(d["imageSizeInBytes"], 1001);
    assert_eq!(d["imagePushedAt"], 1_700_000_001.0);
    let missing = h
        .ecr(
            ACCOUNT_A,
            "DescribeImages",
            json!({"repositoryName": "web", "imageIds": [{"imageTag": "nope"}]}),
        )
        .await
        .unwrap_err();
    assert_eq!(missing.code, ErrorCode::ImageNotFoundException);

    let got = h
        .ecr(ACCOUNT_A, "BatchGetImage", json!({"repositoryName": "web", "imageIds": [{"imageTag": "v1"}, {"imageTag": "nope"}]}))
        .await
        .unwrap();
    assert_eq!(got["images"][0]["imageManifest"], image(1).1.manifest);
    assert_eq!(got["images"][0]["imageId"]["imageDigest"], d1);
    assert_eq!(got["failures"][0]["failureCode"], "ImageNotFound");

    // A tag goes alone; the image goes with its last one.
    let del = h
        .ecr(
            ACCOUNT_A,
            "BatchDeleteImage",
            json!({"repositoryName": "web", "imageIds": [{"imageTag": "v1"}]}),
        )
        .await
        .unwrap();
    assert_eq!(
        del["imageIds"],
        json!([{"imageDigest": d1, "imageTag": "v1"}])
    );
    assert_eq!(h.state.read().ecr_images.len(), 2);
    h.ecr(
        ACCOUNT_A,
        "BatchDeleteImage",
        json!({"repositoryName": "web", "imageIds": [{"imageTag": "latest"}, {"imageDigest": d2}]}),
    )
    .await
    .unwrap();
    let index = h.state.read();
    assert!(
        index.ecr_images.is_empty() && index.ecr_tags.is_empty() && index.ecr_image_tags.is_empty()
    );
}

#[tokio::test]
async fn a_login_is_the_callers_for_twelve_hours() {
    let h = Harness::new().await;
    let out = h
        .ecr(ACCOUNT_A, "GetAuthorizationToken", json!({}))
        .await
        .unwrap();
    let data = &out["authorizationData"][0];
    assert_eq!(data["expiresAt"], 1_700_000_000.0 + 12.0 * 3600.0);
    let token = data["authorizationToken"].as_str().unwrap();
    let password = crate::auth::registry_login::basic_password(&format!("Basic {token}")).unwrap();
    let key = crate::sts::session_key(&h.state).await.unwrap();
    let login = crate::auth::registry_login::open(&key, &password, 1_700_000_100).unwrap();
    assert_eq!(login.caller, crate::auth::Caller::root(ACCOUNT_A));
    assert_eq!(login.region, REGION);
}

#[tokio::test]
async fn a_lifecycle_policy_expires_what_it_names() {
    let h = Harness::new().await;
    h.ecr(
        ACCOUNT_A,
        "CreateRepository",
        json!({"repositoryName": "web"}),
    )
    .await
    .unwrap();
    let policy = r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#;
    let bad = h
        .ecr(
            ACCOUNT_A,
            "PutLifecyclePolicy",
            json!({"repositoryName": "web", "lifecyclePolicyText": "{}"}),
        )
        .await
        .unwrap_err();
    assert_eq!(bad.code, ErrorCode::InvalidParameterException);
    let none = h
        .ecr(
            ACCOUNT_A,
            "GetLifecyclePolicy",
            json!({"repositoryName": "web"}),
        )
        .await
        .unwrap_err();
    assert_eq!(none.code, ErrorCode::LifecyclePolicyNotFoundException);
    h.ecr(
        ACCOUNT_A,
        "PutLifecyclePolicy",
        json!({"repositoryName": "web", "lifecyclePolicyText": policy}),
    )
    .await
    .unwrap();
    let got = h
        .ecr(
            ACCOUNT_A,
            "GetLifecyclePolicy",
            json!({"repositoryName": "web"}),
        )
        .await
        .unwrap();
    assert_eq!(got["lifecyclePolicyText"], policy);
    for n in 1..=3 {
        push(&h, "web", n, None).await.unwrap();
    }
    push(&h, "web", 4, Some("v1")).await.unwrap();
    super::lifecycle::apply(&h.state).await;
    let left: Vec<String> = h
        .state
        .read()
        .ecr_images
        .keys()
        .map(|(_, _, d)| d.clone())
        .collect();
    // The newest untagged image (3) and the tagged one (4) stay.
    assert_eq!(left, [image(3).0, image(4).0]);
    h.ecr(
        ACCOUNT_A,
        "DeleteLifecyclePolicy",
        json!({"repositoryName": "web"}),
    )
    .await
    .unwrap();
    let again = h
        .ecr(
            ACCOUNT_A,
            "DeleteLifecyclePolicy",
            json!({"repositoryName": "web"}),
        )
        .await
        .unwrap_err();
    assert_eq!(again.code, ErrorCode::LifecyclePolicyNotFoundException);
}

#[tokio::test]
async fn another_account_gets_in_only_where_the_repository_policy_lets_it() {
    let h = Harness::new().await;
    h.ecr(
        ACCOUNT_A,
        "CreateRepository",
        json!({"repositoryName": "shared"}),
    )
    .await
    .unwrap();
    push(&h, "shared", 1, Some("v1")).await.unwrap();
    let ask = json!({"registryId": ACCOUNT_A, "repositoryName": "shared"});
    let refused = h
        .ecr(ACCOUNT_B, "DescribeImages", ask.clone())
        .await
        .unwrap_err();
    assert_eq!(refused.code, ErrorCode::AccessDeniedException);
    assert!(
        refused
            .message
            .contains("because no resource-based policy allows the ecr:DescribeImages action"),
        "{}",
        refused.message
    );
    let malformed = h
        .ecr(
            ACCOUNT_A,
            "SetRepositoryPolicy",
            json!({"repositoryName": "shared", "policyText": "{\"Statement\": 5}"}),
        )
        .await
        .unwrap_err();
    assert_eq!(malformed.code, ErrorCode::InvalidParameterException);
    let missing = h
        .ecr(
            ACCOUNT_A,
            "GetRepositoryPolicy",
            json!({"repositoryName": "shared"}),
        )
        .await
        .unwrap_err();
    assert_eq!(missing.code, ErrorCode::RepositoryPolicyNotFoundException);
    let policy = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT_B}:root")},
        "Action": ["ecr:DescribeImages", "ecr:BatchGetImage"]}]})
    .to_string();
    h.ecr(
        ACCOUNT_A,
        "SetRepositoryPolicy",
        json!({"repositoryName": "shared", "policyText": policy}),
    )
    .await
    .unwrap();
    let described = h
        .ecr(ACCOUNT_B, "DescribeImages", ask.clone())
        .await
        .unwrap();
    assert_eq!(described["imageDetails"][0]["imageTags"], json!(["v1"]));
    assert_eq!(described["imageDetails"][0]["registryId"], ACCOUNT_A);
    let delete = json!({"registryId": ACCOUNT_A, "repositoryName": "shared", "imageIds": [{"imageTag": "v1"}]});
    let not_allowed = h
        .ecr(ACCOUNT_B, "BatchDeleteImage", delete)
        .await
        .unwrap_err();
    assert_eq!(not_allowed.code, ErrorCode::AccessDeniedException);
    let got = h
        .ecr(
            ACCOUNT_A,
            "GetRepositoryPolicy",
            json!({"repositoryName": "shared"}),
        )
        .await
        .unwrap();
    assert_eq!(got["policyText"], policy);
    h.ecr(
        ACCOUNT_A,
        "DeleteRepositoryPolicy",
        json!({"repositoryName": "shared"}),
    )
    .await
    .unwrap();
    assert_eq!(
        h.ecr(ACCOUNT_B, "DescribeImages", ask)
            .await
            .unwrap_err()
            .code,
        ErrorCode::AccessDeniedException
    );
}
