//! The Logs API over the in-memory store and event store.
use crate::testing::{Harness, ACCOUNT_A, ACCOUNT_B};
use berth_api::ErrorCode;
use serde_json::{json, Value};

const NOW_MS: i64 = 1_700_000_000_000;

async fn group_with_stream(h: &Harness) {
    h.logs(
        ACCOUNT_A,
        "CreateLogGroup",
        json!({"logGroupName": "/ecs/web"}),
    )
    .await
    .unwrap();
    h.logs(
        ACCOUNT_A,
        "CreateLogStream",
        json!({"logGroupName": "/ecs/web", "logStreamName": "ecs/app/1"}),
    )
    .await
    .unwrap();
}

async fn put(h: &Harness, events: Value) -> Value {
    h.logs(
        ACCOUNT_A,
        "PutLogEvents",
        json!({"logGroupName": "/ecs/web", "logStreamName": "ecs/app/1", "logEvents": events}),
    )
    .await
    .unwrap()
}

/// GetLogEvents of the stream from its head.
async fn head_of_stream(h: &Harness) -> Value {
    h.logs(
        ACCOUNT_A,
        "GetLogEvents",
        json!({"logGroupName": "/ecs/web", "logStreamName": "ecs/app/1", "startFromHead": true}),
    )
    .await
    .unwrap()
}

fn messages(v: &Value) -> Vec<String> {
    v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn groups_and_streams_are_made_described_and_deleted() {
    let h = Harness::new().await;
    group_with_stream(&h).await;
    let again = h
        .logs(
            ACCOUNT_A,
            "CreateLogGroup",
            json!({"logGroupName": "/ecs/web"}),
        )
        .await
        .unwrap_err();
    assert_eq!(again.code, ErrorCode::ResourceAlreadyExistsException);
    let no_group = h
        .logs(
            ACCOUNT_A,
            "CreateLogStream",
            json!({"logGroupName": "/nope", "logStreamName": "s"}),
        )
        .await
        .unwrap_err();
    assert_eq!(
        (no_group.code, no_group.message.as_str()),
        (
            ErrorCode::ResourceNotFoundException,
            "The specified log group does not exist."
        )
    );
    let groups = h
        .logs(
            ACCOUNT_A,
            "DescribeLogGroups",
            json!({"logGroupNamePrefix": "/ecs"}),
        )
        .await
        .unwrap();
    let g = &groups["logGroups"][0];
    assert_eq!(g["logGroupName"], "/ecs/web");
    assert_eq!(
        g["arn"],
        "arn:aws:logs:us-east-1:111111111111:log-group:/ecs/web:*"
    );
    assert_eq!(g["creationTime"], NOW_MS);
    assert_eq!(
        h.logs(ACCOUNT_B, "DescribeLogGroups", json!({}))
            .await
            .unwrap()["logGroups"],
        json!([])
    );
    h.logs(
        ACCOUNT_A,
        "PutRetentionPolicy",
        json!({"logGroupName": "/ecs/web", "retentionInDays": 7}),
    )
    .await
    .unwrap();
    let bad = h
        .logs(
            ACCOUNT_A,
            "PutRetentionPolicy",
            json!({"logGroupName": "/ecs/web", "retentionInDays": 8}),
        )
        .await
        .unwrap_err();
    assert_eq!(bad.code, ErrorCode::InvalidParameterException);
    let streams = h
        .logs(
            ACCOUNT_A,
            "DescribeLogStreams",
            json!({"logGroupName": "/ecs/web"}),
        )
        .await
        .unwrap();
    assert_eq!(streams["logStreams"][0]["logStreamName"], "ecs/app/1");
    put(&h, json!([{"timestamp": NOW_MS, "message": "hello"}])).await;
    let streams = h
        .logs(
            ACCOUNT_A,
            "DescribeLogStreams",
            json!({"logGroupName": "/ecs/web", "orderBy": "LastEventTime", "descending": true}),
        )
        .await
        .unwrap();
    assert_eq!(streams["logStreams"][0]["lastEventTimestamp"], NOW_MS);
    h.logs(
        ACCOUNT_A,
        "DeleteLogGroup",
        json!({"logGroupName": "/ecs/web"}),
    )
    .await
    .unwrap();
    assert!(h.state.read().log_streams.is_empty());
    assert_eq!(
        h.state
            .log_events()
            .stats("111111111111/us-east-1//ecs/web:ecs/app/1")
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn events_page_from_either_end_with_logs_tokens() {
    let h = Harness::new().await;
    group_with_stream(&h).await;
    let events: Vec<Value> = (0..25)
        .map(|i| json!({"timestamp": NOW_MS - 1000 + i, "message": format!("m{i}")}))
        .collect();
    let out = put(&h, json!(events)).await;
    assert_eq!(out.get("rejectedLogEventsInfo"), None);
    let ask = |extra: Value| {
        let mut body =
            json!({"logGroupName": "/ecs/web", "logStreamName": "ecs/app/1", "limit": 10});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    // Newest first page, then backwards to the start, then the same token back at the end.
    let tail = h
        .logs(ACCOUNT_A, "GetLogEvents", ask(json!({})))
        .await
        .unwrap();
    assert_eq!(messages(&tail).first().map(String::as_str), Some("m15"));
    let mut seen = messages(&tail);
    let mut token = tail["nextBackwardToken"].as_str().unwrap().to_string();
    loop {
        let page = h
            .logs(ACCOUNT_A, "GetLogEvents", ask(json!({"nextToken": token})))
            .await
            .unwrap();
        let next = page["nextBackwardToken"].as_str().unwrap().to_string();
        if next == token {
            assert!(messages(&page).is_empty());
            break;
        }
        let mut m = messages(&page);
        m.extend(seen);
        seen = m;
        token = next;
    }
    let all: Vec<String> = (0..25).map(|i| format!("m{i}")).collect();
    assert_eq!(seen, all);
    // From the head forwards, to the end and no further.
    let mut forward = vec![];
    let head = h
        .logs(
            ACCOUNT_A,
            "GetLogEvents",
            ask(json!({"startFromHead": true})),
        )
        .await
        .unwrap();
    forward.extend(messages(&head));
    let mut token = head["nextForwardToken"].as_str().unwrap().to_string();
    for _ in 0..10 {
        let page = h
            .logs(ACCOUNT_A, "GetLogEvents", ask(json!({"nextToken": token})))
            .await
            .unwrap();
        let next = page["nextForwardToken"].as_str().unwrap().to_string();
        forward.extend(messages(&page));
        if next == token {
            break;
        }
        token = next;
    }
    assert_eq!(forward, all);
    // New events appear after the last forward token.
    put(&h, json!([{"timestamp": NOW_MS, "message": "late"}])).await;
    let page = h
        .logs(ACCOUNT_A, "GetLogEvents", ask(json!({"nextToken": token})))
        .await
        .unwrap();
    assert_eq!(messages(&page), ["late"]);
    let bad = h
        .logs(ACCOUNT_A, "GetLogEvents", ask(json!({"nextToken": "zzz"})))
        .await
        .unwrap_err();
    assert_eq!(bad.code, ErrorCode::InvalidParameterException);
}

#[tokio::test]
async fn put_log_events_keeps_logs_limits() {
    let h = Harness::new().await;
    group_with_stream(&h).await;
    let day = 86_400_000i64;
    let hour = 3_600_000i64;
    let old = put(
        &h,
        json!([
            {"timestamp": NOW_MS - 14 * day - hour, "message": "old"},
            {"timestamp": NOW_MS - 14 * day + hour, "message": "edge"}
        ]),
    )
    .await;
    assert_eq!(
        old["rejectedLogEventsInfo"],
        json!({"tooOldLogEventEndIndex": 0})
    );
    let new = put(
        &h,
        json!([
            {"timestamp": NOW_MS + hour, "message": "soon"},
            {"timestamp": NOW_MS + 3 * hour, "message": "future"}
        ]),
    )
    .await;
    assert_eq!(
        new["rejectedLogEventsInfo"],
        json!({"tooNewLogEventStartIndex": 1})
    );
    let got = head_of_stream(&h).await;
    assert_eq!(messages(&got), ["edge", "soon"]);
    let span = h
        .logs(ACCOUNT_A, "PutLogEvents", json!({"logGroupName": "/ecs/web", "logStreamName": "ecs/app/1",
            "logEvents": [{"timestamp": NOW_MS - 2 * day, "message": "a"}, {"timestamp": NOW_MS, "message": "b"}]}))
        .await
        .unwrap_err();
    assert_eq!(span.code, ErrorCode::InvalidParameterException);
    let big = "x".repeat(600_000);
    let large = h
        .logs(ACCOUNT_A, "PutLogEvents", json!({"logGroupName": "/ecs/web", "logStreamName": "ecs/app/1",
            "logEvents": [{"timestamp": NOW_MS, "message": big}, {"timestamp": NOW_MS, "message": big}]}))
        .await
        .unwrap_err();
    assert!(
        large.message.starts_with("Upload too large"),
        "{}",
        large.message
    );
    let no_stream = h
        .logs(
            ACCOUNT_A,
            "PutLogEvents",
            json!({"logGroupName": "/ecs/web", "logStreamName": "nope",
            "logEvents": [{"timestamp": NOW_MS, "message": "x"}]}),
        )
        .await
        .unwrap_err();
    assert_eq!(
        (no_stream.code, no_stream.message.as_str()),
        (
            ErrorCode::ResourceNotFoundException,
            "The specified log stream does not exist."
        )
    );
}

async fn stream(h: &Harness, name: &str, events: Value) {
    h.logs(
        ACCOUNT_A,
        "CreateLogStream",
        json!({"logGroupName": "/ecs/web", "logStreamName": name}),
    )
    .await
    .unwrap();
    h.logs(
        ACCOUNT_A,
        "PutLogEvents",
        json!({"logGroupName": "/ecs/web", "logStreamName": name, "logEvents": events}),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn filter_log_events_merges_streams_and_applies_patterns() {
    let h = Harness::new().await;
    group_with_stream(&h).await;
    put(
        &h,
        json!([
            {"timestamp": NOW_MS - 50, "message": "ERROR disk full"},
            {"timestamp": NOW_MS - 30, "message": "{\"level\":\"error\",\"latency\":250}"},
            {"timestamp": NOW_MS - 10, "message": "INFO ok"},
        ]),
    )
    .await;
    stream(
        &h,
        "ecs/app/2",
        json!([
            {"timestamp": NOW_MS - 40, "message": "WARN slow"},
            {"timestamp": NOW_MS - 20, "message": "{\"level\":\"info\",\"latency\":5}"},
        ]),
    )
    .await;
    let filter = |pattern: &str, extra: Value| {
        let mut body = json!({"logGroupName": "/ecs/web", "filterPattern": pattern});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    let all = h
        .logs(ACCOUNT_A, "FilterLogEvents", filter("", json!({})))
        .await
        .unwrap();
    assert_eq!(
        messages(&all),
        [
            "ERROR disk full",
            "WARN slow",
            "{\"level\":\"error\",\"latency\":250}",
            "{\"level\":\"info\",\"latency\":5}",
            "INFO ok"
        ]
    );
    let streams: Vec<&str> = all["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["logStreamName"].as_str().unwrap())
        .collect();
    assert_eq!(
        streams,
        [
            "ecs/app/1",
            "ecs/app/2",
            "ecs/app/1",
            "ecs/app/2",
            "ecs/app/1"
        ]
    );
    assert_eq!(all.get("nextToken"), None);
    for (pattern, want) in [
        ("?ERROR ?WARN", vec!["ERROR disk full", "WARN slow"]),
        ("ERROR -disk", vec![]),
        ("\"disk full\"", vec!["ERROR disk full"]),
        (
            "{ $.level = \"error\" && $.latency > 100 }",
            vec!["{\"level\":\"error\",\"latency\":250}"],
        ),
    ] {
        let out = h
            .logs(ACCOUNT_A, "FilterLogEvents", filter(pattern, json!({})))
            .await
            .unwrap();
        assert_eq!(messages(&out), want, "{pattern}");
    }
    // Named streams, a time window, and pages that continue where they ended.
    let named = h
        .logs(
            ACCOUNT_A,
            "FilterLogEvents",
            filter(
                "",
                json!({"logStreamNames": ["ecs/app/2"], "startTime": NOW_MS - 30}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(messages(&named), ["{\"level\":\"info\",\"latency\":5}"]);
    let mut token: Option<String> = None;
    let mut walked = vec![];
    for _ in 0..10 {
        let mut extra = json!({"limit": 2});
        if let Some(t) = &token {
            extra["nextToken"] = json!(t);
        }
        let page = h
            .logs(ACCOUNT_A, "FilterLogEvents", filter("", extra))
            .await
            .unwrap();
        walked.extend(messages(&page));
        match page["nextToken"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    assert_eq!(walked, messages(&all));
    let bad = h
        .logs(ACCOUNT_A, "FilterLogEvents", filter("{ $.a = ", json!({})))
        .await
        .unwrap_err();
    assert_eq!(bad.code, ErrorCode::InvalidParameterException);
    let both = h
        .logs(
            ACCOUNT_A,
            "FilterLogEvents",
            filter(
                "",
                json!({"logStreamNames": ["a"], "logStreamNamePrefix": "a"}),
            ),
        )
        .await
        .unwrap_err();
    assert_eq!(both.code, ErrorCode::InvalidParameterException);
    let other = h
        .logs(ACCOUNT_B, "FilterLogEvents", filter("", json!({})))
        .await
        .unwrap_err();
    assert_eq!(other.code, ErrorCode::ResourceNotFoundException);
}

#[tokio::test]
async fn log_group_tags_by_arn_and_by_name() {
    let h = Harness::new().await;
    group_with_stream(&h).await;
    let arn = format!("arn:aws:logs:us-east-1:{ACCOUNT_A}:log-group:/ecs/web");
    h.logs(
        ACCOUNT_A,
        "TagResource",
        json!({"resourceArn": arn, "tags": {"team": "web", "env": "dev"}}),
    )
    .await
    .unwrap();
    h.logs(
        ACCOUNT_A,
        "UntagResource",
        json!({"resourceArn": arn, "tagKeys": ["env"]}),
    )
    .await
    .unwrap();
    let tags = h
        .logs(
            ACCOUNT_A,
            "ListTagsForResource",
            json!({"resourceArn": arn}),
        )
        .await
        .unwrap();
    assert_eq!(tags["tags"], json!({"team": "web"}));
    h.logs(
        ACCOUNT_A,
        "TagLogGroup",
        json!({"logGroupName": "/ecs/web", "tags": {"owner": "me"}}),
    )
    .await
    .unwrap();
    let by_name = h
        .logs(
            ACCOUNT_A,
            "ListTagsLogGroup",
            json!({"logGroupName": "/ecs/web"}),
        )
        .await
        .unwrap();
    assert_eq!(by_name["tags"], json!({"owner": "me", "team": "web"}));
    let elsewhere = h
        .logs(
            ACCOUNT_B,
            "ListTagsForResource",
            json!({"resourceArn": arn}),
        )
        .await
        .unwrap_err();
    assert_eq!(elsewhere.code, ErrorCode::ResourceNotFoundException);
}

#[tokio::test]
async fn retention_removes_expired_events_on_a_pass() {
    let h = Harness::new().await;
    group_with_stream(&h).await;
    let day = 86_400_000;
    put(
        &h,
        json!([
            {"timestamp": NOW_MS - 3 * day, "message": "old"},
            {"timestamp": NOW_MS - 3 * day + 1, "message": "old too"},
        ]),
    )
    .await;
    put(&h, json!([{"timestamp": NOW_MS, "message": "new"}])).await;
    h.logs(
        ACCOUNT_A,
        "PutRetentionPolicy",
        json!({"logGroupName": "/ecs/web", "retentionInDays": 1}),
    )
    .await
    .unwrap();
    crate::logs::retention::apply(&h.state).await;
    let left = head_of_stream(&h).await;
    assert_eq!(messages(&left), ["new"]);
    let streams = h
        .logs(
            ACCOUNT_A,
            "DescribeLogStreams",
            json!({"logGroupName": "/ecs/web"}),
        )
        .await
        .unwrap();
    assert_eq!(
        streams["logStreams"][0]["firstEventTimestamp"],
        json!(NOW_MS)
    );
}

#[tokio::test]
async fn a_batch_berths_agent_resends_is_accepted_once() {
    let h = Harness::new().await;
    group_with_stream(&h).await;
    let batch = json!({"logGroupName": "/ecs/web", "logStreamName": "ecs/app/1",
        "sequenceToken": "berth:c0ffee:512",
        "logEvents": [{"timestamp": NOW_MS, "message": "once"}]});
    h.logs(ACCOUNT_A, "PutLogEvents", batch.clone())
        .await
        .unwrap();
    let again = h.logs(ACCOUNT_A, "PutLogEvents", batch).await.unwrap_err();
    assert_eq!(again.code, ErrorCode::DataAlreadyAcceptedException);
    // Tokens of other clients are ignored, as Logs ignores them.
    for _ in 0..2 {
        h.logs(
            ACCOUNT_A,
            "PutLogEvents",
            json!({"logGroupName": "/ecs/web", "logStreamName": "ecs/app/1",
                "sequenceToken": "4959030214554658539621880621",
                "logEvents": [{"timestamp": NOW_MS, "message": "twice"}]}),
        )
        .await
        .unwrap();
    }
    let got = head_of_stream(&h).await;
    assert_eq!(messages(&got), ["once", "twice", "twice"]);
}

#[tokio::test]
async fn a_sweep_removes_the_events_of_streams_deleted_elsewhere_and_keeps_the_rest() {
    let h = Harness::new().await;
    group_with_stream(&h).await;
    put(&h, json!([{"timestamp": NOW_MS, "message": "kept"}])).await;
    // Another server deleted this stream: its record is gone, its events here are not.
    let orphan = crate::logs::stream_key(
        &berth_model::Scope::new(ACCOUNT_A, crate::testing::REGION),
        "/ecs/web",
        "ecs/app/deleted",
    );
    h.state
        .log_events()
        .put(&orphan, &[(NOW_MS, "orphan".into())], NOW_MS)
        .unwrap();
    assert_eq!(crate::logs::housekeeping::sweep(&h.state).await, 1);
    assert_eq!(h.state.log_events().stats(&orphan).unwrap(), None);
    let left = head_of_stream(&h).await;
    assert_eq!(messages(&left), ["kept"]);
    assert_eq!(crate::logs::housekeeping::sweep(&h.state).await, 0);
}
