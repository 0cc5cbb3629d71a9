//! The real binary driven by the Rust AWS SDK (aws-sdk-ecs).
use aws_sdk_ecs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_ecs::types::{ContainerDefinition, Tag};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Server {
    child: Child,
    endpoint: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const KEY: &str = "AKIASDKTEST000000000";
const SECRET: &str = "sdk-secret-0123456789";

fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    std::fs::write(
        &cfg,
        format!("[[accounts]]\nid = \"333333333333\"\nkeys = [{{ access_key_id = \"{KEY}\", secret_access_key = \"{SECRET}\" }}]\n"),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&cfg)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut endpoint = None;
    while Instant::now() < deadline {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(addr) = line.strip_prefix("listening on ") {
                    endpoint = Some(format!("http://{addr}"));
                    break;
                }
            }
            _ => break,
        }
    }
    match endpoint {
        Some(endpoint) => Server {
            child,
            endpoint,
            _dir: dir,
        },
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("berth did not start in time");
        }
    }
}

fn client(endpoint: &str) -> aws_sdk_ecs::Client {
    let conf = aws_sdk_ecs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("ap-south-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(KEY, SECRET, None, None, "test"))
        .build();
    aws_sdk_ecs::Client::from_conf(conf)
}

#[tokio::test]
async fn rust_sdk_lifecycle() {
    let server = start();
    let ecs = client(&server.endpoint);

    let c = ecs
        .create_cluster()
        .cluster_name("rust")
        .send()
        .await
        .unwrap();
    let arn = c.cluster().unwrap().cluster_arn().unwrap().to_string();
    assert_eq!(arn, "arn:aws:ecs:ap-south-1:333333333333:cluster/rust");

    let container = ContainerDefinition::builder()
        .name("app")
        .image("busybox")
        .memory(32)
        .build();
    for expected in 1..=3 {
        let r = ecs
            .register_task_definition()
            .family("svc")
            .container_definitions(container.clone())
            .tags(Tag::builder().key("k").value("v").build())
            .send()
            .await
            .unwrap();
        assert_eq!(r.task_definition().unwrap().revision(), expected);
    }
    let d = ecs
        .describe_task_definition()
        .task_definition("svc:2")
        .send()
        .await
        .unwrap();
    let td = d.task_definition().unwrap();
    assert_eq!(td.container_definitions()[0].memory(), Some(32));
    assert_eq!(td.status().map(|s| s.as_str()), Some("ACTIVE"));
    assert!(td.registered_at().is_some());

    let first = ecs
        .list_task_definitions()
        .max_results(2)
        .send()
        .await
        .unwrap();
    assert_eq!(first.task_definition_arns().len(), 2);
    let rest = ecs
        .list_task_definitions()
        .next_token(first.next_token().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(rest.task_definition_arns().len(), 1);
    assert!(rest.next_token().is_none());

    let err = ecs
        .delete_cluster()
        .cluster("missing")
        .send()
        .await
        .unwrap_err();
    let service_err = err.into_service_error();
    assert!(
        service_err.is_cluster_not_found_exception(),
        "{service_err:?}"
    );

    let del = ecs.delete_cluster().cluster(arn).send().await.unwrap();
    assert_eq!(del.cluster().unwrap().status(), Some("INACTIVE"));
}
