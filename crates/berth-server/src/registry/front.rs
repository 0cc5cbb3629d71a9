//! The registry's front door, as ECR's registry answers: HTTP Basic with the
//! `AWS` user and a GetAuthorizationToken password, every request authorized
//! as its `ecr:*` action on the repository, tags resolved from ECR's records
//! (so an image ECR no longer names is gone, and an IMMUTABLE tag stays put),
//! pushed manifests recorded; blobs and uploads stream to the engine.
use super::manifest::{self, MAX_MANIFEST_BYTES};
use super::route::{self, Route};
use crate::auth::registry_login::{self, Login, LoginError};
use crate::authz::{self, Call, Wording};
use crate::ecr::pushes;
use crate::ecr::repositories::{resource, tags_of};
use crate::state::State;
use axum::body::{to_bytes, Body};
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use berth_model::{ecr, Scope};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

pub struct Front {
    pub state: Arc<State>,
    /// The engine's Unix socket.
    pub socket: PathBuf,
    /// Pushes in progress, which the blob collector waits out.
    pub writes: Arc<super::collector::Writes>,
}

pub fn router(front: Arc<Front>) -> Router {
    Router::new().fallback(move |req: Request| {
        let front = front.clone();
        async move { serve(&front, req).await }
    })
}

/// A registry protocol error: `{"errors":[{"code","message"}]}`.
pub fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({"errors": [{"code": code, "message": message}]});
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    with_version(r)
}

fn with_version(mut r: Response) -> Response {
    r.headers_mut().insert(
        "docker-distribution-api-version",
        HeaderValue::from_static("registry/2.0"),
    );
    r
}

/// Why a request is refused before it reaches the engine.
pub struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl Refusal {
    fn unauthorized(code: &'static str, message: &str) -> Refusal {
        Refusal {
            status: StatusCode::UNAUTHORIZED,
            code,
            message: message.to_string(),
        }
    }

    /// The error; a 401 carries the Basic challenge `docker login` answers.
    fn respond(self, host: &str) -> Response {
        let mut r = error(self.status, self.code, &self.message);
        if self.status == StatusCode::UNAUTHORIZED {
            if let Ok(v) = HeaderValue::from_str(&format!(
                "Basic realm=\"http://{host}/\",service=\"ecr.amazonaws.com\""
            )) {
                r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
        }
        r
    }
}

/// The login a request carries, or the 401 that asks for one.
fn authenticate(state: &State, req: &Request) -> Result<Login, Refusal> {
    let password = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(registry_login::basic_password)
        .ok_or_else(|| Refusal::unauthorized("UNAUTHORIZED", "authentication required"))?;
    let key = state
        .read()
        .session_key
        .as_ref()
        .and_then(|k| hex::decode(&k.value.key).ok())
        .ok_or_else(|| Refusal::unauthorized("DENIED", "Your authorization token is invalid."))?;
    let now = state.clock().epoch_secs() as i64;
    registry_login::open(&key, &password, now).map_err(|e| match e {
        LoginError::Expired => Refusal::unauthorized(
            "DENIED",
            "Your authorization token has expired. Reauthenticate and try again.",
        ),
        LoginError::Invalid => {
            Refusal::unauthorized("DENIED", "Your authorization token is invalid.")
        }
    })
}

/// Whether the login's principal may take `action` on the repository.
fn authorize(
    state: &State,
    login: &Login,
    source: Option<&str>,
    scope: &Scope,
    name: &str,
    action: &'static str,
) -> Result<(), Refusal> {
    let denied = |message: String| Refusal {
        status: StatusCode::FORBIDDEN,
        code: "DENIED",
        message,
    };
    // Logins are regional; another account's repository lets in whom its policy names.
    if scope.region != login.region {
        return Err(denied(format!(
            "User: {} is not authorized to perform: {action} on resource: {} because the authorization token is for region {}",
            login.caller.arn(),
            ecr::repository_arn(scope, name),
            login.region
        )));
    }
    if scope.account != login.caller.account {
        crate::ecr::repository_policy::check_foreign(
            state,
            scope,
            name,
            &login.caller,
            action,
            source,
        )
        .map_err(|e| denied(e.message))?;
    }
    let index = state.read();
    let policies = authz::policies(&index, &login.caller, state.session_policies());
    if !policies.restricted() {
        return Ok(());
    }
    let now = state.clock().epoch_secs() as i64;
    let mut base = authz::base_context(&login.caller, &login.region, source, now);
    let call = Call {
        action,
        resources: vec![resource(scope, name, &tags_of(&index, scope, name))],
    };
    drop(index);
    authz::authorize(&policies, &login.caller, &mut base, &call, Wording::Json)
        .map_err(|e| denied(e.message))
}

fn name_unknown(scope: &Scope, name: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "NAME_UNKNOWN",
        &format!(
            "The repository with name '{name}' does not exist in the registry with id '{}'",
            scope.account
        ),
    )
}

fn manifest_unknown() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "MANIFEST_UNKNOWN",
        "Requested image not found",
    )
}

async fn serve(front: &Front, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let Some(route) = route::parse(&path) else {
        return error(StatusCode::NOT_FOUND, "NOT_FOUND", "Not found");
    };
    let login = match authenticate(&front.state, &req) {
        Ok(l) => l,
        Err(r) => return r.respond(front.state.registry_host()),
    };
    let method = req.method().as_str().to_string();
    let Some(name_in_registry) = route.name() else {
        return match route {
            Route::Base => with_version((StatusCode::OK, "{}").into_response()),
            _ => error(
                StatusCode::METHOD_NOT_ALLOWED,
                "UNSUPPORTED",
                "The operation is unsupported.",
            ),
        };
    };
    let Some((scope, name)) = ecr::parse_registry_path(name_in_registry) else {
        return error(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            &format!("The repository with name '{name_in_registry}' is not an ECR repository of this registry"),
        );
    };
    let name = name.to_string();
    let Some(action) = route.action(&method) else {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
            "The operation is unsupported.",
        );
    };
    let source = req
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    if let Err(r) = authorize(
        &front.state,
        &login,
        source.as_deref(),
        &scope,
        &name,
        action,
    ) {
        return r.respond(front.state.registry_host());
    }
    if !front
        .state
        .read()
        .ecr_repositories
        .contains_key(&(scope.clone(), name.clone()))
    {
        return name_unknown(&scope, &name);
    }
    match route {
        Route::Manifest { reference, .. } if req.method() == Method::PUT => {
            put_manifest(front, req, &scope, &name, reference).await
        }
        Route::Manifest { reference, .. } if action == "ecr:BatchGetImage" => {
            let Some(digest) = resolve(&front.state, &scope, &name, reference) else {
                return manifest_unknown();
            };
            let path = format!("/v2/{name_in_registry}/manifests/{digest}");
            forward(front, req, path).await
        }
        Route::Manifest { .. } => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
            "Delete images with BatchDeleteImage.",
        ),
        Route::Tags { .. } => tags_list(&front.state, &scope, &name, name_in_registry),
        Route::Upload { .. } => {
            let path = upload_path(front, &login, source.as_deref(), &req);
            let _writing = front.writes.lock.read().await;
            let answer = forward(front, req, path).await;
            front.writes.wrote();
            answer
        }
        Route::Blob { digest, .. } => {
            if req.method() == Method::GET {
                // Counted by the registry benchmark: one download per blob per host.
                tracing::debug!(repository = name_in_registry, digest, "blob download");
            }
            let path = path_and_query(&req);
            forward(front, req, path).await
        }
        _ => {
            let path = path_and_query(&req);
            forward(front, req, path).await
        }
    }
}

fn path_and_query(req: &Request) -> String {
    req.uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| req.uri().path().to_string())
}

/// An upload's path; a cross-repository mount keeps its `from` only when the
/// login may pull from that repository of its own account and region.
fn upload_path(front: &Front, login: &Login, source: Option<&str>, req: &Request) -> String {
    let path = path_and_query(req);
    let from = req.uri().query().and_then(|q| {
        q.split('&').find_map(|p| p.strip_prefix("from=")).map(|f| {
            percent_encoding::percent_decode_str(f)
                .decode_utf8_lossy()
                .into_owned()
        })
    });
    let Some(from) = from else { return path };
    let allowed = ecr::parse_registry_path(&from).is_some_and(|(scope, name)| {
        front
            .state
            .read()
            .ecr_repositories
            .contains_key(&(scope.clone(), name.to_string()))
            && authorize(
                &front.state,
                login,
                source,
                &scope,
                name,
                "ecr:GetDownloadUrlForLayer",
            )
            .is_ok()
    });
    if allowed {
        path
    } else {
        // Without the mount, the engine starts a plain upload and the client sends the blob.
        req.uri().path().to_string()
    }
}

/// The digest a tag or digest names in ECR's records.
fn resolve(state: &State, scope: &Scope, name: &str, reference: &str) -> Option<String> {
    let index = state.read();
    if route::is_digest(reference) {
        let k = (scope.clone(), name.to_string(), reference.to_string());
        return index
            .ecr_images
            .contains_key(&k)
            .then(|| reference.to_string());
    }
    index
        .ecr_tags
        .get(&(scope.clone(), name.to_string(), reference.to_string()))
        .map(|t| t.value.digest.clone())
}

fn tags_list(state: &State, scope: &Scope, name: &str, name_in_registry: &str) -> Response {
    let index = state.read();
    let lo = (scope.clone(), name.to_string(), String::new());
    let tags: Vec<&str> = index
        .ecr_tags
        .range(lo..)
        .take_while(|((s, n, _), _)| s == scope && n == name)
        .map(|((_, _, t), _)| t.as_str())
        .collect();
    let body = serde_json::json!({"name": name_in_registry, "tags": tags});
    let mut r = (StatusCode::OK, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    with_version(r)
}

/// A manifest push: checked against the tag's mutability, stored in the
/// engine by digest (tags live in ECR's records only), then recorded.
async fn put_manifest(
    front: &Front,
    req: Request,
    scope: &Scope,
    name: &str,
    reference: &str,
) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_MANIFEST_BYTES).await else {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "MANIFEST_INVALID",
            "The manifest is larger than 4 MiB.",
        );
    };
    let digest = manifest::digest_of(&bytes);
    let tag = (!route::is_digest(reference)).then_some(reference);
    match tag {
        Some(t) if !ecr::image_tag_ok(t) => {
            return error(
                StatusCode::BAD_REQUEST,
                "TAG_INVALID",
                &format!("Invalid tag '{t}'."),
            )
        }
        None if reference != digest => {
            return error(
                StatusCode::BAD_REQUEST,
                "DIGEST_INVALID",
                "The manifest's digest does not match the digest in the request.",
            )
        }
        _ => {}
    }
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let now = front.state.clock().epoch_secs();
    let Some(record) = manifest::record(&bytes, content_type, now) else {
        return error(
            StatusCode::BAD_REQUEST,
            "MANIFEST_INVALID",
            "The manifest is not valid JSON.",
        );
    };
    // Refused before the engine sees it; the record's compare-and-swap decides a race.
    if let Some(t) = tag {
        let index = front.state.read();
        let repo = index
            .ecr_repositories
            .get(&(scope.clone(), name.to_string()));
        let current = index
            .ecr_tags
            .get(&(scope.clone(), name.to_string(), t.to_string()))
            .map(|r| r.value.digest.as_str());
        if let Some(repo) = repo {
            if !pushes::tag_may_move(&repo.value.image_tag_mutability, current, &digest) {
                return error(
                    StatusCode::BAD_REQUEST,
                    "TAG_INVALID",
                    &pushes::immutable_tag(name, t).message,
                );
            }
        }
    }
    let path = format!("/v2/{}/manifests/{digest}", ecr::registry_path(scope, name));
    let upstream = Request::from_parts(parts, Body::from(bytes));
    let _writing = front.writes.lock.read().await;
    let answer = forward(front, upstream, path).await;
    front.writes.wrote();
    if answer.status() != StatusCode::CREATED {
        return answer;
    }
    match pushes::record(&front.state, scope, name, &digest, &record, tag).await {
        Ok(()) => answer,
        Err(e) if e.code == berth_api::ErrorCode::ImageTagAlreadyExistsException => {
            error(StatusCode::BAD_REQUEST, "TAG_INVALID", &e.message)
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN", &e.message),
    }
}

/// Sends the request to the engine at `path`, streaming both bodies.
async fn forward(front: &Front, req: Request, path: String) -> Response {
    match try_forward(front, req, path).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "the registry engine did not answer");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                "The registry is not available; try again.",
            )
        }
    }
}

async fn try_forward(
    front: &Front,
    req: Request,
    path: String,
) -> Result<Response, super::engine::EngineError> {
    let (mut parts, body) = req.into_parts();
    parts.uri = path.parse()?;
    parts.headers.remove(header::AUTHORIZATION);
    super::engine::send(&front.socket, Request::from_parts(parts, body)).await
}
