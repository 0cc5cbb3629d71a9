//! The endpoint's HTTP side and its place on the host: 169.254.170.2 as a
//! local address of the host's loopback interface (so bridge containers reach
//! it through their gateway, and host-network ones directly; kernels without
//! dummy interfaces have a loopback), and a rule that no link-local
//! destination is ever forwarded off the host. One server per process: the
//! agents of one process (`berth dev` runs two) share it, each with its own
//! tasks; the processes of one host share the address (`siblings.rs`).
use super::{metadata, siblings, Endpoints, Entry, ADDRESS};
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde_json::json;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

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
pub struct Host {
    agents: std::sync::Mutex<Vec<Arc<Endpoints>>>,
    /// Where this host's agent processes keep their sockets.
    siblings: PathBuf,
}

/// Who asks: the address a request came from, and whether an id this process
/// does not know is asked of its siblings (only for a request that came to
/// 169.254.170.2 itself, not for one a sibling forwarded).
#[derive(Debug, Clone, Copy)]
struct Asker {
    source: IpAddr,
    forwards: bool,
}

impl Host {
    pub fn new(siblings: PathBuf) -> Host {
        Host {
            agents: Default::default(),
            siblings,
        }
    }

    /// The sibling's answer for an id this process does not know, or ECS's refusal.
    async fn elsewhere(&self, asker: Asker, uri: &Uri, what: &str) -> Response {
        if asker.forwards {
            let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
            if let Some(r) = siblings::ask(&self.siblings, path, asker.source).await {
                return r;
            }
        }
        refused(what)
    }

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
    Extension(asker): Extension<Asker>,
    uri: Uri,
    Path(id): Path<String>,
) -> Response {
    let Some((e, entry)) = host.of_credentials(&id) else {
        return host.elsewhere(asker, &uri, "CredentialsV2Request").await;
    };
    if !e.comes_from_task(&entry, asker.source).await {
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
/// `Err` is the answer to give: a sibling's, or ECS's refusal.
async fn caller(
    host: &Host,
    token: &str,
    asker: Asker,
    uri: &Uri,
    what: &str,
) -> Result<(Arc<Endpoints>, Entry, String), Response> {
    let Some((e, entry, name)) = host.of_token(token) else {
        return Err(host.elsewhere(asker, uri, what).await);
    };
    if e.comes_from_task(&entry, asker.source).await {
        Ok((e, entry, name))
    } else {
        Err(refused(what))
    }
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
    Extension(asker): Extension<Asker>,
    uri: Uri,
    Path(token): Path<String>,
) -> Response {
    let (e, entry, name) = match caller(&host, &token, asker, &uri, "TaskMetadataRequest").await {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    let facts = facts_of(&e, &entry).await;
    Json(metadata::container(&entry, &name, facts.get(&name))).into_response()
}

async fn task_doc(
    State(host): State<Arc<Host>>,
    Extension(asker): Extension<Asker>,
    uri: Uri,
    Path(token): Path<String>,
) -> Response {
    let (e, entry, _) = match caller(&host, &token, asker, &uri, "TaskMetadataRequest").await {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    let facts = facts_of(&e, &entry).await;
    Json(metadata::task(&entry, &facts)).into_response()
}

async fn container_stats(
    State(host): State<Arc<Host>>,
    Extension(asker): Extension<Asker>,
    uri: Uri,
    Path(token): Path<String>,
) -> Response {
    let (e, entry, name) = match caller(&host, &token, asker, &uri, "TaskStatsRequest").await {
        Ok(found) => found,
        Err(answer) => return answer,
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
    Extension(asker): Extension<Asker>,
    uri: Uri,
    Path(token): Path<String>,
) -> Response {
    let (e, entry, _) = match caller(&host, &token, asker, &uri, "TaskStatsRequest").await {
        Ok(found) => found,
        Err(answer) => return answer,
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

/// A request to 169.254.170.2 comes from its peer.
async fn from_peer(mut req: Request, next: Next) -> Response {
    let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied() else {
        return refused("Request");
    };
    req.extensions_mut().insert(Asker {
        source: peer.ip(),
        forwards: true,
    });
    next.run(req).await
}

/// A request a sibling forwarded comes from the address it names.
async fn from_sibling(mut req: Request, next: Next) -> Response {
    let source = req
        .headers()
        .get(siblings::SOURCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<IpAddr>().ok());
    let Some(source) = source else {
        return refused("Request");
    };
    req.extensions_mut().insert(Asker {
        source,
        forwards: false,
    });
    next.run(req).await
}

/// Holds 169.254.170.2:80 for this host: now, or once the process that holds
/// it goes away (its tasks are then this process's siblings no more).
async fn hold_address(host: Arc<Host>, mut listener: Option<tokio::net::TcpListener>) {
    loop {
        let bound = match listener.take() {
            Some(l) => Ok(l),
            None => tokio::net::TcpListener::bind((ADDRESS, PORT)).await,
        };
        match bound {
            Ok(l) => {
                let app = router(host.clone())
                    .layer(middleware::from_fn(from_peer))
                    .into_make_service_with_connect_info::<SocketAddr>();
                tracing::info!("serving the task endpoint at {ADDRESS}:{PORT}");
                if let Err(err) = axum::serve(l, app).await {
                    tracing::error!(error = %err, "task endpoint stopped");
                }
            }
            Err(err) if err.kind() == std::io::ErrorKind::AddrInUse => {}
            Err(err) => tracing::warn!(error = %err, "binding {ADDRESS}:{PORT}"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

static HOST: tokio::sync::OnceCell<Result<Arc<Host>, String>> = tokio::sync::OnceCell::const_new();

/// Serves this agent's tasks: at 169.254.170.2:80 if no other process of this
/// host holds it (else through that one), and on this process's sibling
/// socket. The process's first agent starts the servers, the others join them.
pub async fn start(e: Arc<Endpoints>) -> Result<(), String> {
    let host = HOST
        .get_or_init(|| async {
            plumb_host().await?;
            let dir = PathBuf::from(siblings::DIRECTORY);
            let own = siblings::listen(&dir)?;
            let listener = match tokio::net::TcpListener::bind((ADDRESS, PORT)).await {
                Ok(l) => Some(l),
                Err(err) if err.kind() == std::io::ErrorKind::AddrInUse => {
                    tracing::info!(
                        "another agent process holds {ADDRESS}:{PORT}; serving through it"
                    );
                    None
                }
                Err(err) => return Err(format!("binding {ADDRESS}:{PORT}: {err}")),
            };
            let host = Arc::new(Host::new(dir));
            let app = router(host.clone()).layer(middleware::from_fn(from_sibling));
            tokio::spawn(async move {
                if let Err(err) = axum::serve(own, app).await {
                    tracing::error!(error = %err, "sibling socket stopped");
                }
            });
            tokio::spawn(hold_address(host.clone(), listener));
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

/// Takes this process's sibling socket away as it stops (if it ever served tasks).
pub fn stop() {
    if HOST.initialized() {
        siblings::leave(std::path::Path::new(siblings::DIRECTORY));
    }
}
