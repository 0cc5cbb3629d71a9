use crate::testing::{Harness, ACCOUNT_A, ACCOUNT_B};
use berth_api::ErrorCode;
use serde_json::json;

async fn put(
    h: &Harness,
    body: serde_json::Value,
) -> Result<serde_json::Value, berth_api::ApiError> {
    h.ssm(ACCOUNT_A, "PutParameter", body).await
}

#[tokio::test]
async fn versions_overwrite_and_selectors() {
    let h = Harness::new().await;
    let v1 = put(
        &h,
        json!({"Name": "/app/url", "Value": "a", "Type": "String"}),
    )
    .await
    .unwrap();
    assert_eq!(v1, json!({"Version": 1, "Tier": "Standard"}));
    let e = put(
        &h,
        json!({"Name": "/app/url", "Value": "b", "Type": "String"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::ParameterAlreadyExists);
    let v2 = put(
        &h,
        json!({"Name": "/app/url", "Value": "b", "Overwrite": true}),
    )
    .await
    .unwrap();
    assert_eq!(v2["Version"], 2);
    let get = |name: &'static str| {
        let h = &h;
        async move {
            h.ssm(ACCOUNT_A, "GetParameter", json!({"Name": name}))
                .await
        }
    };
    let p = get("/app/url").await.unwrap();
    assert_eq!(p["Parameter"]["Value"], "b");
    assert_eq!(p["Parameter"]["Type"], "String");
    assert_eq!(
        p["Parameter"]["ARN"],
        "arn:aws:ssm:us-east-1:111111111111:parameter/app/url"
    );
    let p = get("/app/url:1").await.unwrap();
    assert_eq!(p["Parameter"]["Value"], "a");
    assert_eq!(p["Parameter"]["Selector"], ":1");
    assert_eq!(
        get("/app/url:7").await.unwrap_err().code,
        ErrorCode::ParameterVersionNotFound
    );
    let l = h
        .ssm(
            ACCOUNT_A,
            "LabelParameterVersion",
            json!({"Name": "/app/url", "ParameterVersion": 1, "Labels": ["prod", "1bad"]}),
        )
        .await
        .unwrap();
    assert_eq!(l, json!({"InvalidLabels": ["1bad"], "ParameterVersion": 1}));
    assert_eq!(
        get("/app/url:prod").await.unwrap()["Parameter"]["Value"],
        "a"
    );
    h.ssm(
        ACCOUNT_A,
        "LabelParameterVersion",
        json!({"Name": "/app/url", "Labels": ["prod"]}),
    )
    .await
    .unwrap();
    assert_eq!(
        get("/app/url:prod").await.unwrap()["Parameter"]["Value"],
        "b"
    );
    let p = get("arn:aws:ssm:us-east-1:111111111111:parameter/app/url")
        .await
        .unwrap();
    assert_eq!(p["Parameter"]["Name"], "/app/url");
    let hist = h
        .ssm(
            ACCOUNT_A,
            "GetParameterHistory",
            json!({"Name": "/app/url"}),
        )
        .await
        .unwrap();
    let hist = hist["Parameters"].as_array().unwrap();
    assert_eq!(hist.len(), 2);
    assert_eq!(hist[0]["Labels"], json!([]));
    assert_eq!(hist[1]["Labels"], json!(["prod"]));
    assert_eq!(
        hist[1]["LastModifiedUser"],
        "arn:aws:iam::111111111111:root"
    );
    assert_eq!(
        get("/app/missing").await.unwrap_err().code,
        ErrorCode::ParameterNotFound
    );
    let e = h
        .ssm(ACCOUNT_B, "GetParameter", json!({"Name": "/app/url"}))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::ParameterNotFound);
}

#[tokio::test]
async fn secure_strings_are_sealed_and_shown_only_decrypted_when_asked() {
    let h = Harness::new().await;
    put(
        &h,
        json!({"Name": "/db/pass", "Value": "s3cret-needle", "Type": "SecureString"}),
    )
    .await
    .unwrap();
    let stored = serde_json::to_string(
        &h.state
            .read()
            .parameters
            .values()
            .map(|v| &v.value)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    assert!(!stored.contains("s3cret-needle"));
    let p = h
        .ssm(ACCOUNT_A, "GetParameter", json!({"Name": "/db/pass"}))
        .await
        .unwrap();
    assert_ne!(p["Parameter"]["Value"], "s3cret-needle");
    let p = h
        .ssm(
            ACCOUNT_A,
            "GetParameter",
            json!({"Name": "/db/pass", "WithDecryption": true}),
        )
        .await
        .unwrap();
    assert_eq!(p["Parameter"]["Value"], "s3cret-needle");
    let d = h
        .ssm(ACCOUNT_A, "DescribeParameters", json!({}))
        .await
        .unwrap();
    assert_eq!(d["Parameters"][0]["KeyId"], "alias/aws/ssm");
    let many = h
        .ssm(
            ACCOUNT_A,
            "GetParameters",
            json!({"Names": ["/db/pass", "/nope"], "WithDecryption": true}),
        )
        .await
        .unwrap();
    assert_eq!(many["Parameters"][0]["Value"], "s3cret-needle");
    assert_eq!(many["InvalidParameters"], json!(["/nope"]));
}

#[tokio::test]
async fn paths_filters_and_pages() {
    let h = Harness::new().await;
    for n in ["/app/a", "/app/b", "/app/db/url", "/other/x"] {
        put(&h, json!({"Name": n, "Value": n, "Type": "String"}))
            .await
            .unwrap();
    }
    put(
        &h,
        json!({"Name": "/app/key", "Value": "k", "Type": "SecureString"}),
    )
    .await
    .unwrap();
    let names = |v: &serde_json::Value| -> Vec<String> {
        v["Parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["Name"].as_str().unwrap().to_string())
            .collect()
    };
    let one = h
        .ssm(ACCOUNT_A, "GetParametersByPath", json!({"Path": "/app"}))
        .await
        .unwrap();
    assert_eq!(names(&one), ["/app/a", "/app/b", "/app/key"]);
    let all = h
        .ssm(
            ACCOUNT_A,
            "GetParametersByPath",
            json!({"Path": "/app", "Recursive": true}),
        )
        .await
        .unwrap();
    assert_eq!(names(&all), ["/app/a", "/app/b", "/app/db/url", "/app/key"]);
    let typed = h
        .ssm(
            ACCOUNT_A,
            "GetParametersByPath",
            json!({"Path": "/app", "Recursive": true, "ParameterFilters": [{"Key": "Type", "Values": ["SecureString"]}]}),
        )
        .await
        .unwrap();
    assert_eq!(names(&typed), ["/app/key"]);
    let first = h
        .ssm(
            ACCOUNT_A,
            "GetParametersByPath",
            json!({"Path": "/app", "Recursive": true, "MaxResults": 3}),
        )
        .await
        .unwrap();
    assert_eq!(names(&first).len(), 3);
    let rest = h
        .ssm(
            ACCOUNT_A,
            "GetParametersByPath",
            json!({"Path": "/app", "Recursive": true, "MaxResults": 3, "NextToken": first["NextToken"]}),
        )
        .await
        .unwrap();
    assert_eq!(names(&rest), ["/app/key"]);
    let e = h
        .ssm(
            ACCOUNT_A,
            "GetParametersByPath",
            json!({"Path": "/app", "NextToken": "garbage"}),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidNextToken);
    let d = h
        .ssm(
            ACCOUNT_A,
            "DescribeParameters",
            json!({"ParameterFilters": [{"Key": "Name", "Option": "BeginsWith", "Values": ["/other"]}]}),
        )
        .await
        .unwrap();
    assert_eq!(names(&d), ["/other/x"]);
    let e = h
        .ssm(
            ACCOUNT_A,
            "DescribeParameters",
            json!({"ParameterFilters": [{"Key": "Colour", "Values": ["x"]}]}),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidFilterKey);
    let del = h
        .ssm(
            ACCOUNT_A,
            "DeleteParameters",
            json!({"Names": ["/app/a", "/nope"]}),
        )
        .await
        .unwrap();
    assert_eq!(
        del,
        json!({"DeletedParameters": ["/app/a"], "InvalidParameters": ["/nope"]})
    );
    let e = h
        .ssm(ACCOUNT_A, "DeleteParameter", json!({"Name": "/app/a"}))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::ParameterNotFound);
}

#[tokio::test]
async fn names_patterns_tiers_and_tags_are_checked() {
    let h = Harness::new().await;
    let e = put(
        &h,
        json!({"Name": "/aws/x", "Value": "v", "Type": "String"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::ValidationException);
    let e = put(
        &h,
        json!({"Name": "/p", "Value": "abc", "Type": "String", "AllowedPattern": "^\\d+$"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::ParameterPatternMismatchException);
    put(
        &h,
        json!({"Name": "/p", "Value": "123", "Type": "String", "AllowedPattern": "^\\d+$"}),
    )
    .await
    .unwrap();
    // The pattern stays with the parameter.
    let e = put(&h, json!({"Name": "/p", "Value": "x", "Overwrite": true}))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::ParameterPatternMismatchException);
    let big = "x".repeat(4097);
    let e = put(&h, json!({"Name": "/big", "Value": big, "Type": "String"}))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::ValidationException);
    let ok = put(
        &h,
        json!({"Name": "/big", "Value": big, "Type": "String", "Tier": "Advanced"}),
    )
    .await
    .unwrap();
    assert_eq!(ok["Tier"], "Advanced");
    let e = put(&h, json!({"Name": "/t", "Value": "v", "Type": "String", "Overwrite": true, "Tags": [{"Key": "a", "Value": "b"}]}))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::ValidationException);
    put(
        &h,
        json!({"Name": "/t", "Value": "v", "Type": "String", "Tags": [{"Key": "a", "Value": "b"}]}),
    )
    .await
    .unwrap();
    h.ssm(ACCOUNT_A, "AddTagsToResource", json!({"ResourceType": "Parameter", "ResourceId": "/t", "Tags": [{"Key": "c", "Value": "d"}]}))
        .await
        .unwrap();
    h.ssm(
        ACCOUNT_A,
        "RemoveTagsFromResource",
        json!({"ResourceType": "Parameter", "ResourceId": "/t", "TagKeys": ["a"]}),
    )
    .await
    .unwrap();
    let tags = h
        .ssm(
            ACCOUNT_A,
            "ListTagsForResource",
            json!({"ResourceType": "Parameter", "ResourceId": "/t"}),
        )
        .await
        .unwrap();
    assert_eq!(tags, json!({"TagList": [{"Key": "c", "Value": "d"}]}));
    let e = h
        .ssm(
            ACCOUNT_A,
            "ListTagsForResource",
            json!({"ResourceType": "Parameter", "ResourceId": "/none"}),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidResourceId);
    let e = h
        .ssm(ACCOUNT_A, "SendCommand", json!({}))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::UnknownOperationException);
}

#[tokio::test]
async fn the_oldest_of_a_hundred_versions_goes_unless_labelled() {
    let h = Harness::new().await;
    put(&h, json!({"Name": "/n", "Value": "0", "Type": "String"}))
        .await
        .unwrap();
    h.ssm(
        ACCOUNT_A,
        "LabelParameterVersion",
        json!({"Name": "/n", "Labels": ["keep"]}),
    )
    .await
    .unwrap();
    for i in 1..100 {
        put(
            &h,
            json!({"Name": "/n", "Value": i.to_string(), "Overwrite": true}),
        )
        .await
        .unwrap();
    }
    let e = put(&h, json!({"Name": "/n", "Value": "x", "Overwrite": true}))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::ParameterMaxVersionLimitExceeded);
    h.ssm(
        ACCOUNT_A,
        "UnlabelParameterVersion",
        json!({"Name": "/n", "ParameterVersion": 1, "Labels": ["keep"]}),
    )
    .await
    .unwrap();
    let v = put(&h, json!({"Name": "/n", "Value": "x", "Overwrite": true}))
        .await
        .unwrap();
    assert_eq!(v["Version"], 101);
    let e = h
        .ssm(ACCOUNT_A, "GetParameter", json!({"Name": "/n:1"}))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::ParameterVersionNotFound);
}
