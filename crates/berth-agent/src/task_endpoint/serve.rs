//! The endpoint's HTTP side and its place on the host: 169.254.170.2 as a
//! local address of the host's loopback interface (so bridge containers reach
//! it through their gateway, and host-network ones directly; kernels without
//! dummy interfaces have a loopback), and a rule that no link-local
//! destination is ever forwarded off the host. One server per process: the
//! agents of one process (`berth dev` runs two) share it, each with its own
//! tasks.
use super::{metadata, Endpoints, Entry, ADDRESS};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// The host interface that holds the endpoint's address, and the label it has there.
pub const INTERFACE: &str = "lo";
pub const LABEL: &str = "lo:berth";
pub const PORT: u16 = 80;

/// Link-local destinations (169.254.170.2, 169.254.169.254, …) never leave the host.
pub const LINK_LOCAL_RULES: &str = "table inet berth_link_local
flush table inet berth_link_local
table inet berth_link_local {
  chain forward {
    type filter hook forward priority -10; policy accept;
    ip daddr 169.254.0.0/16 drop
  }
}
";

async fn ip(args: &[&str]) -> Result<String, String> {
    crate::netns::run_with_input("ip", args, None).await
}

/// Puts the endpoint's address on the host (idempotently) and the link-local rule in place.
pub async fn plumb_host() -> Result<(), String> {
    let addr = format!("{ADDRESS}/32");
    let shown = ip(&["-4", "addr", "show", "dev", INTERFACE]).await?;
    if !shown.contains(&addr) {
        // Another agent of this host may add it at the same moment.
        if let Err(e) = ip(&["addr", "add", &addr, "dev", INTERFACE, "label", LABEL]).await {
            if !e.contains("File exists") {
                return Err(e);
            }
        }
    }
    crate::netns::run_with_input("nft", &["-f", "-"], Some(LINK_LOCAL_RULES)).await?;
    Ok(())
}

/// The agents whose tasks this process's endpoint serves.
#[derive(Default)]
pub struct Host {
    agents: std::sync::Mutex<Vec<Arc<Endpoints>>>,
}

impl Host {
    fn agents(&self) -> Vec<Arc<Endpoints>> {
        self.agents
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn of_credentials(&self, id: &str) -> Option<(Arc<Endpoints>, Entry)> {
        self.agents()
            .into_iter()
            .find_map(|e| e.task_of_credentials(id).map(|t| (e, t)))
    }

    fn of_token(&self, token: &str) -> Option<(Arc<Endpoints>, Entry, String)> {
        self.agents()
            .into_iter()
            .find_map(|e| e.task_of_token(token).map(|(t, n)| (e, t, n)))
    }
}

/// The ECS agent's answer to an id it does not know (or a caller that is not the task).
fn refused(what: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"code": "InvalidIdInRequest", "message": format!("{what}: the id in the request is not valid")})),
    )
        .into_response()
}

fn now() -> i64 {
    crate::client::now() as i64
}

async fn credentials(
    State(host): State<Arc<Host>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
) -> Response {
    let Some((e, entry)) = host.of_credentials(&id) else {
        return refused("CredentialsV2Request");
    };
    if !e.comes_from_task(&entry, peer.ip()).await {
        return refused("CredentialsV2Request");
    }
    let arn = entry.report.task_arn.clone().unwrap_or_default();
    match e.task_credentials(&arn, now()).await {
        Ok(c) => Json(json!({
            "RoleArn": c.role_arn,
            "AccessKeyId": c.access_key_id,
            "SecretAccessKey": c.secret_access_key,
            "Token": c.session_token,
            "Expiration": berth_api::amz_date::format_iso8601(c.expiration),
        }))
        .into_response(),
        Err(m) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"code": "InternalServerError", "message": m})),
        )
            .into_response(),
    }
}

/// The metadata request's agent, task and container, if the caller is that task.
async fn caller(
    host: &Host,
    token: &str,
    peer: SocketAddr,
) -> Option<(Arc<Endpoints>, Entry, String)> {
    let (e, entry, name) = host.of_token(token)?;
    e.comes_from_task(&entry, peer.ip())
        .await
        .then_some((e, entry, name))
}

fn docker_id(entry: &Entry, name: &str) -> Option<String> {
    entry
        .report
        .containers
        .iter()
        .flatten()
        .find(|c| c.name.as_deref() == Some(name))
        .and_then(|c| c.runtime_id.clone())
}

async fn facts_of(e: &Endpoints, entry: &Entry) -> HashMap<String, crate::docker::ContainerFacts> {
    let mut out = HashMap::new();
    let Some(docker) = e.docker() else { return out };
    for c in entry.report.containers.iter().flatten() {
        if let (Some(name), Some(id)) = (&c.name, &c.runtime_id) {
            if let Ok(f) = docker.facts(id).await {
                out.insert(name.clone(), f);
            }
        }
    }
    out
}

async fn container_doc(
    State(host): State<Arc<Host>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
) -> Response {
    let Some((e, entry, name)) = caller(&host, &token, peer).await else {
        return refused("TaskMetadataRequest");
    };
    let facts = facts_of(&e, &entry).await;
    Json(metadata::container(&entry, &name, facts.get(&name))).into_response()
}

async fn task_doc(
    State(host): State<Arc<Host>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
) -> Response {
    let Some((e, entry, _)) = caller(&host, &token, peer).await else {
        return refused("TaskMetadataRequest");
    };
    let facts = facts_of(&e, &entry).await;
    Json(metadata::task(&entry, &facts)).into_response()
}

async fn container_stats(
    State(host): State<Arc<Host>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
) -> Response {
    let Some((e, entry, name)) = caller(&host, &token, peer).await else {
        return refused("TaskStatsRequest");
    };
    let (Some(docker), Some(id)) = (e.docker(), docker_id(&entry, &name)) else {
        return Json(json!({})).into_response();
    };
    match docker.stats_once(&id).await {
        Ok(s) => Json(s).into_response(),
        Err(m) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"message": m})),
        )
            .into_response(),
    }
}

async fn task_stats(
    State(host): State<Arc<Host>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
) -> Response {
    let Some((e, entry, _)) = caller(&host, &token, peer).await else {
        return refused("TaskStatsRequest");
    };
    let mut out = serde_json::Map::new();
    if let Some(docker) = e.docker() {
        for c in entry.report.containers.iter().flatten() {
            if let Some(id) = &c.runtime_id {
                if let Ok(s) = docker.stats_once(id).await {
                    out.insert(id.clone(), s);
                }
            }
        }
    }
    Json(serde_json::Value::Object(out)).into_response()
}

pub fn router(e: Arc<Host>) -> Router {
    let mut r = Router::new().route("/v2/credentials/{id}", get(credentials));
    for v in ["v3", "v4"] {
        r = r
            .route(&format!("/{v}/{{token}}"), get(container_doc))
            .route(&format!("/{v}/{{token}}/task"), get(task_doc))
            .route(&format!("/{v}/{{token}}/stats"), get(container_stats))
            .route(&format!("/{v}/{{token}}/task/stats"), get(task_stats));
    }
    r.with_state(e)
}

static HOST: tokio::sync::OnceCell<Result<Arc<Host>, String>> = tokio::sync::OnceCell::const_new();

/// Serves this agent's tasks at 169.254.170.2:80: the process's first agent
/// starts the server (in the background), the others join it.
pub async fn start(e: Arc<Endpoints>) -> Result<(), String> {
    let host = HOST
        .get_or_init(|| async {
            plumb_host().await?;
            let listener = tokio::net::TcpListener::bind((ADDRESS, PORT))
                .await
                .map_err(|err| format!("binding {ADDRESS}:{PORT}: {err}"))?;
            let host = Arc::new(Host::default());
            let app = router(host.clone()).into_make_service_with_connect_info::<SocketAddr>();
            tokio::spawn(async move {
                if let Err(err) = axum::serve(listener, app).await {
                    tracing::error!(error = %err, "task endpoint stopped");
                }
            });
            Ok(host)
        })
        .await
        .clone()?;
    host.agents
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(e);
    Ok(())
}
