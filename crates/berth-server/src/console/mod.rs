//! The console at `/console`: static pages (no build step, nothing from a
//! CDN) and a session-guarded door through which they make API calls, run as
//! the signed-in key's owner by the same handlers as a signed request.
pub mod checks;
pub mod sessions;

use crate::auth;
use crate::http::{dispatch, AppState, Call};
use crate::time;
use axum::body::{to_bytes, Body};
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};
use sessions::{Session, Sessions};
use std::sync::Mutex;

/// What the console needs beside the API: its sessions, the dev account's
/// one-click key, and a line to show every page (berth dev without Docker).
pub struct Console {
    pub sessions: Sessions,
    pub limits: sessions::Limits,
    /// `berth dev`'s key: loopback visitors may sign in with it in one click.
    pub dev_key: Option<String>,
    pub notice: Mutex<Option<String>>,
}

impl Console {
    pub fn new(limits: sessions::Limits, dev_key: Option<String>) -> Console {
        Console {
            sessions: Sessions::new(limits),
            limits,
            dev_key,
            notice: Mutex::new(None),
        }
    }

    pub fn set_notice(&self, notice: Option<String>) {
        *self.notice.lock().unwrap_or_else(|e| e.into_inner()) = notice;
    }

    fn notice(&self) -> Option<String> {
        self.notice
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

const INDEX: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/style.css");
/// Every script and style comes from berth; no page may be framed.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";
const MAX_BODY: usize = 1024 * 1024;

/// Serves every `/console` path.
pub async fn serve(app: AppState, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().trim_end_matches('/');
    let method = parts.method.clone();
    match (method.clone(), path) {
        (Method::GET, "/console") => asset("text/html; charset=utf-8", INDEX),
        (Method::GET, "/console/app.js") => asset("text/javascript; charset=utf-8", APP_JS),
        (Method::GET, "/console/style.css") => asset("text/css; charset=utf-8", STYLE),
        (Method::GET, "/console/session") => whoami(&app, &parts.headers, peer(&parts)),
        (Method::POST, "/console/session")
        | (Method::POST, "/console/session/dev")
        | (Method::POST, "/console/session/region")
        | (Method::DELETE, "/console/session")
        | (Method::POST, "/console/api") => {
            let h = &parts.headers;
            let text = |name| h.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
            if !checks::same_site(text("host"), text("origin"), text("sec-fetch-site")) {
                return refuse(StatusCode::FORBIDDEN, "Cross-site requests are refused.");
            }
            if method != Method::DELETE && !checks::is_json(text("content-type")) {
                return refuse(StatusCode::UNSUPPORTED_MEDIA_TYPE, "Send JSON.");
            }
            let Ok(body) = to_bytes(Body::new(body), MAX_BODY).await else {
                return refuse(StatusCode::PAYLOAD_TOO_LARGE, "The request is too large.");
            };
            let ip = peer(&parts);
            match (method, path) {
                (Method::POST, "/console/session") => sign_in(&app, &body),
                (Method::POST, "/console/session/dev") => dev_sign_in(&app, ip),
                (m, p) => {
                    let Some((id, session)) = signed_in(&app, h) else {
                        return refuse(StatusCode::UNAUTHORIZED, "Sign in first.");
                    };
                    let csrf = text("x-berth-csrf").unwrap_or_default();
                    if !auth::sigv4::constant_time_eq(csrf.as_bytes(), session.csrf.as_bytes()) {
                        return refuse(
                            StatusCode::FORBIDDEN,
                            "The form's token is missing or wrong.",
                        );
                    }
                    match (m, p) {
                        (Method::DELETE, _) => {
                            app.console.sessions.close(&id);
                            with_cookie(json!({}), None, 0)
                        }
                        (_, "/console/session/region") => set_region(&app, &id, &body),
                        _ => api(&app, session, &body, ip, text("host")).await,
                    }
                }
            }
        }
        (Method::GET, _) => refuse(StatusCode::NOT_FOUND, "No such page."),
        _ => refuse(StatusCode::METHOD_NOT_ALLOWED, "Not allowed here."),
    }
}

fn asset(ctype: &'static str, text: &'static str) -> Response {
    let mut r = text.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    h.insert("cache-control", HeaderValue::from_static("no-cache"));
    r
}

fn answer(status: StatusCode, body: Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert("cache-control", HeaderValue::from_static("no-store"));
    r
}

fn refuse(status: StatusCode, message: &str) -> Response {
    answer(status, json!({ "message": message }))
}

fn with_cookie(body: Value, id: Option<&str>, max_age: u64) -> Response {
    let mut r = answer(StatusCode::OK, body);
    if let Ok(v) = HeaderValue::from_str(&checks::set_cookie(id, max_age)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

fn peer(parts: &axum::http::request::Parts) -> Option<std::net::IpAddr> {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<crate::polling::PeerAddr>>()
        .map(|c| c.0 .0.ip())
}

fn signed_in(app: &AppState, headers: &HeaderMap) -> Option<(String, Session)> {
    let cookies = headers.get_all(header::COOKIE);
    let id = cookies
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(checks::session_id)?
        .to_string();
    let session = app.console.sessions.touch(&id, time::now_secs() as u64)?;
    Some((id, session))
}

/// The caller a session's key belongs to now (a deleted or deactivated key ends it).
fn session_caller(app: &AppState, session: &Session) -> Option<auth::Caller> {
    let index = app.state.read();
    match auth::key_caller(&app.keys, &index, &session.access_key_id)? {
        Ok((caller, _)) if caller.identity != auth::Identity::Fleet => Some(caller),
        _ => None,
    }
}

fn describe(
    app: &AppState,
    caller: &auth::Caller,
    session: &Session,
    ip: Option<std::net::IpAddr>,
) -> Value {
    json!({
        "signedIn": true,
        "account": caller.account,
        "arn": caller.arn(),
        "region": session.region,
        "csrf": session.csrf,
        "sourceIp": ip.map(|i| i.to_string()),
        "notice": app.console.notice(),
    })
}

fn whoami(app: &AppState, headers: &HeaderMap, ip: Option<std::net::IpAddr>) -> Response {
    if let Some((_, session)) = signed_in(app, headers) {
        if let Some(caller) = session_caller(app, &session) {
            return answer(StatusCode::OK, describe(app, &caller, &session, ip));
        }
    }
    let dev = app.console.dev_key.is_some() && ip.is_some_and(|i| i.is_loopback());
    answer(
        StatusCode::UNAUTHORIZED,
        json!({ "signedIn": false, "dev": dev, "notice": app.console.notice() }),
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignIn {
    access_key_id: String,
    secret_access_key: String,
    region: Option<String>,
}

const DEFAULT_REGION: &str = "us-east-1";

fn open_session(app: &AppState, key: &str, region: &str, caller: &auth::Caller) -> Response {
    let now = time::now_secs() as u64;
    let Some((id, session)) = app.console.sessions.open(key, region, now) else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "Too many sessions are open.",
        );
    };
    let body = describe(app, caller, &session, None);
    with_cookie(body, Some(&id), app.console.limits.lifetime_secs)
}

fn sign_in(app: &AppState, body: &[u8]) -> Response {
    let Ok(form) = serde_json::from_slice::<SignIn>(body) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "Give an access key ID and its secret.",
        );
    };
    let region = form.region.unwrap_or_else(|| DEFAULT_REGION.into());
    if !checks::valid_region(&region) {
        return refuse(StatusCode::BAD_REQUEST, "That is not a region name.");
    }
    let owner = auth::key_caller(&app.keys, &app.state.read(), &form.access_key_id);
    match owner {
        Some(Ok((caller, secret)))
            if caller.identity != auth::Identity::Fleet
                && auth::sigv4::constant_time_eq(
                    secret.as_bytes(),
                    form.secret_access_key.as_bytes(),
                ) =>
        {
            open_session(app, &form.access_key_id, &region, &caller)
        }
        _ => refuse(
            StatusCode::UNAUTHORIZED,
            "The access key ID or secret access key is not valid.",
        ),
    }
}

fn dev_sign_in(app: &AppState, ip: Option<std::net::IpAddr>) -> Response {
    let key = match &app.console.dev_key {
        Some(k) if ip.is_some_and(|i| i.is_loopback()) => k,
        _ => {
            return refuse(
                StatusCode::FORBIDDEN,
                "One-click sign-in is for berth dev on loopback.",
            )
        }
    };
    match auth::key_caller(&app.keys, &app.state.read(), key) {
        Some(Ok((caller, _))) => open_session(app, key, DEFAULT_REGION, &caller),
        _ => refuse(StatusCode::UNAUTHORIZED, "The dev key is not configured."),
    }
}

fn set_region(app: &AppState, id: &str, body: &[u8]) -> Response {
    let region = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("region")?.as_str().map(String::from));
    match region {
        Some(r) if checks::valid_region(&r) => {
            app.console.sessions.set_region(id, &r);
            answer(StatusCode::OK, json!({ "region": r }))
        }
        _ => refuse(StatusCode::BAD_REQUEST, "That is not a region name."),
    }
}

#[derive(Deserialize)]
struct ApiCall {
    service: String,
    operation: String,
    #[serde(default)]
    input: Value,
}

/// One API call, as the session's key owner.
async fn api(
    app: &AppState,
    session: Session,
    body: &[u8],
    ip: Option<std::net::IpAddr>,
    host: Option<&str>,
) -> Response {
    let Ok(call) = serde_json::from_slice::<ApiCall>(body) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "Name a service, an operation and its input.",
        );
    };
    if !checks::valid_operation(&call.operation) {
        return refuse(StatusCode::BAD_REQUEST, "That is not an operation name.");
    }
    if app.state.catch_up().await.is_err() {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "The store is not answering.",
        );
    }
    let Some(caller) = session_caller(app, &session) else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "The key this session signed in with is no longer valid.",
        );
    };
    let json_prefix = match call.service.as_str() {
        "ecs" => Some(berth_api::ecs::TARGET_PREFIX),
        "ecr" => Some(berth_api::ecr::TARGET_PREFIX),
        "logs" => Some(berth_api::logs::TARGET_PREFIX),
        "secretsmanager" => Some(berth_api::secretsmanager::TARGET_PREFIX),
        "ssm" => Some(berth_api::ssm::TARGET_PREFIX),
        "ec2" | "iam" | "sts" => None,
        _ => return refuse(StatusCode::BAD_REQUEST, "That service is not served here."),
    };
    let (target, payload) = match json_prefix {
        Some(prefix) => {
            let input = if call.input.is_null() {
                json!({})
            } else {
                call.input
            };
            (
                Some(format!("{prefix}.{}", call.operation)),
                input.to_string(),
            )
        }
        None => (
            None,
            query_form(&call.service, &call.operation, &call.input),
        ),
    };
    let (service, operation) = (call.service, call.operation);
    let labels = crate::metrics::labels::call(target.as_deref(), &service, Some(&operation));
    let labels = (labels.0, labels.1.to_string());
    let call = Call {
        caller,
        region: session.region,
        service,
        target,
        method: Method::POST,
        query: "",
        body: payload.as_bytes(),
        source_ip: ip.map(|i| i.to_string()),
        host: host.map(str::to_string),
    };
    let began = std::time::Instant::now();
    let mut r = dispatch(app, call, uuid::Uuid::new_v4().to_string()).await;
    let code = r
        .extensions()
        .get::<berth_api::ErrorCode>()
        .map(|c| c.as_str());
    app.state
        .metrics()
        .request(labels.0, &labels.1, code, began.elapsed());
    // The page's own measure of the server's share (Resource Timing's serverTiming).
    let ms = began.elapsed().as_secs_f64() * 1000.0;
    let h = r.headers_mut();
    h.insert("cache-control", HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&format!("api;dur={ms:.3}")) {
        h.insert("server-timing", v);
    }
    r
}

/// A query-protocol body: the action, its API version, and the input's flat parameters.
fn query_form(service: &str, operation: &str, input: &Value) -> String {
    let version = match service {
        "ec2" => "2016-11-15",
        "iam" => "2010-05-08",
        _ => "2011-06-15",
    };
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let mut out = format!("Action={}&Version={version}", enc(operation));
    if let Some(params) = input.as_object() {
        for (k, v) in params {
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            out.push_str(&format!("&{}={}", enc(k), enc(&v)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_calls_are_flat_forms_with_their_version() {
        let f = query_form(
            "ec2",
            "CreateSecurityGroup",
            &json!({"GroupName": "web & co", "IpPermissions.1.FromPort": 80}),
        );
        assert_eq!(
            f,
            "Action=CreateSecurityGroup&Version=2016-11-15&GroupName=web%20%26%20co&IpPermissions%2E1%2EFromPort=80"
        );
        assert!(query_form("iam", "ListRoles", &Value::Null).ends_with("Version=2010-05-08"));
    }
}
