//! The one HTTP endpoint: routes by protocol (ECS JSON 1.1 by X-Amz-Target,
//! query protocol by Action), authenticates, and renders AWS-style errors.
use crate::auth::{self, AuthFailure, Identity, RequestParts};
use crate::authz::{self, Wording};
use crate::config::Principal;
use crate::context::Ctx;
use crate::ecs;
use crate::state::State;
use crate::{ec2, ecr, iam, logs, secretsmanager, ssm, sts, time};
use axum::body::{to_bytes, Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use berth_api::ecs::TARGET_PREFIX;
use berth_api::{ApiError, ErrorCode};
use berth_model::Scope;
use std::collections::HashMap;
use std::sync::Arc;

/// ECS refuses requests larger than this.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// A PutLogEvents batch holds up to 1 MiB of events, which JSON escaping can
/// make several times larger on the wire.
pub const LOGS_MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub state: Arc<State>,
    pub keys: Arc<HashMap<String, Principal>>,
    pub console: Arc<crate::console::Console>,
    /// ECS's request throttling, when on (`--throttling ecs`).
    pub throttle: Option<Arc<crate::throttling::Throttle>>,
}

pub fn router(app: AppState) -> Router {
    let state = app.state.clone();
    Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route(
            "/metrics",
            axum::routing::get(move || async move {
                let text = state.metrics().render(&state);
                ([("content-type", crate::metrics::CONTENT_TYPE)], text)
            }),
        )
        .route(crate::read_leases::PATH, {
            let state = app.state.clone();
            axum::routing::get(move || async move { crate::read_leases::applied_stream(&state) })
        })
        .route(crate::logs::peers::PATH, {
            let state = app.state.clone();
            axum::routing::post(
                move |headers: axum::http::HeaderMap, body: Bytes| async move {
                    crate::logs::peers::serve(state, headers, body).await
                },
            )
            .layer(axum::extract::DefaultBodyLimit::max(LOGS_MAX_BODY_BYTES))
        })
        .route("/console", console_route(app.clone()))
        .route("/console/{*rest}", console_route(app.clone()))
        .fallback(move |req: Request| {
            let app = app.clone();
            async move { serve(app, req).await }
        })
}

fn console_route(app: AppState) -> axum::routing::MethodRouter {
    axum::routing::any(move |req: Request| {
        let app = app.clone();
        async move { crate::console::serve(app, req).await }
    })
}

#[derive(Clone, Copy, PartialEq)]
enum Protocol {
    Json,
    Query,
    /// EC2's query protocol, with its own error document.
    Ec2,
}

/// The JSON 1.1 services beside ECS, each with the handlers of its targets.
#[derive(Clone, Copy)]
enum JsonService {
    Ecr,
    Logs,
    SecretsManager,
    Ssm,
}

impl JsonService {
    /// The service and operation an `X-Amz-Target` names, if not ECS's.
    fn of(target: &str) -> Option<(JsonService, &str)> {
        let (prefix, op) = target.split_once('.')?;
        let service = match prefix {
            berth_api::ecr::TARGET_PREFIX => JsonService::Ecr,
            berth_api::logs::TARGET_PREFIX => JsonService::Logs,
            berth_api::secretsmanager::TARGET_PREFIX => JsonService::SecretsManager,
            berth_api::ssm::TARGET_PREFIX => JsonService::Ssm,
            _ => return None,
        };
        Some((service, op))
    }
}

fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn error_response(protocol: Protocol, err: &ApiError, rid: &str) -> Response {
    let status = StatusCode::from_u16(err.code.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let (ctype, body) = match protocol {
        Protocol::Json => ("application/x-amz-json-1.1", err.to_json()),
        Protocol::Query => ("text/xml", berth_api::sts::error_xml(err, rid).into_bytes()),
        Protocol::Ec2 => ("text/xml", berth_api::ec2::error_xml(err, rid).into_bytes()),
    };
    if err.code == ErrorCode::ServerException {
        tracing::error!(request_id = rid, message = %err.message, "server error");
    }
    let mut r = respond(status, ctype, body, rid);
    // The metrics count the answer by its code.
    r.extensions_mut().insert(err.code);
    r
}

fn respond(status: StatusCode, ctype: &'static str, body: Vec<u8>, rid: &str) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static(ctype));
    if let Ok(v) = HeaderValue::from_str(rid) {
        r.headers_mut().insert("x-amzn-requestid", v);
    }
    r
}

/// EC2 answers credentials it cannot validate, and stale requests, in its own words.
fn ec2_auth_error(f: &AuthFailure) -> Option<ApiError> {
    match f {
        AuthFailure::UnknownKey | AuthFailure::Mismatch => Some(ApiError::new(
            ErrorCode::AuthFailure,
            "AWS was not able to validate the provided access credentials",
        )),
        AuthFailure::Expired(m) => Some(ApiError::new(ErrorCode::RequestExpired, m.clone())),
        AuthFailure::ExpiredToken => Some(ApiError::new(
            ErrorCode::RequestExpired,
            "Request has expired.",
        )),
        _ => None,
    }
}

fn auth_error(protocol: Protocol, f: AuthFailure) -> ApiError {
    const MISMATCH: &str = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";
    const BAD_TOKEN: &str = "The security token included in the request is invalid.";
    use ErrorCode::{
        IncompleteSignature, IncompleteSignatureException, InvalidClientTokenId,
        InvalidSignatureException, MissingAuthenticationToken, MissingAuthenticationTokenException,
        SignatureDoesNotMatch, UnrecognizedClientException,
    };
    let json = protocol == Protocol::Json;
    if protocol == Protocol::Ec2 {
        if let Some(e) = ec2_auth_error(&f) {
            return e;
        }
    }
    match f {
        AuthFailure::Missing if json => ApiError::new(
            MissingAuthenticationTokenException,
            "Missing Authentication Token",
        ),
        AuthFailure::Missing => ApiError::new(
            MissingAuthenticationToken,
            "Request is missing Authentication Token",
        ),
        AuthFailure::Incomplete(m) => ApiError::new(
            if json {
                IncompleteSignatureException
            } else {
                IncompleteSignature
            },
            m,
        ),
        AuthFailure::UnknownKey => ApiError::new(
            if json {
                UnrecognizedClientException
            } else {
                InvalidClientTokenId
            },
            BAD_TOKEN,
        ),
        AuthFailure::Mismatch => ApiError::new(
            if json {
                InvalidSignatureException
            } else {
                SignatureDoesNotMatch
            },
            MISMATCH,
        ),
        AuthFailure::ExpiredToken => ApiError::new(
            if json {
                ErrorCode::ExpiredTokenException
            } else {
                ErrorCode::ExpiredToken
            },
            "The security token included in the request is expired",
        ),
        AuthFailure::Expired(m) => ApiError::new(
            if json {
                InvalidSignatureException
            } else {
                SignatureDoesNotMatch
            },
            m,
        ),
    }
}

fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// The decoded `key=value` pairs of a form or query string.
pub fn form_pairs(form: &str) -> impl Iterator<Item = (String, String)> + '_ {
    form.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let dec = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        (dec(k), dec(v))
    })
}

fn form_value(form: &str, key: &str) -> Option<String> {
    form_pairs(form).find_map(|(k, v)| (k == key).then_some(v))
}

/// The service a request is signed for (its credential scope's fourth part).
fn signed_service(headers: &HeaderMap, query: &str) -> String {
    let scope = headers
        .get("authorization")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .and_then(|a| {
            let c = a.split("Credential=").nth(1)?;
            Some(c.split([',', ' ']).next()?.to_string())
        })
        .or_else(|| form_value(query, "X-Amz-Credential"))
        .unwrap_or_default();
    scope.split('/').nth(3).unwrap_or_default().to_string()
}

/// Answers one API request, and counts it by service, operation and error code.
async fn serve(app: AppState, req: Request) -> Response {
    let began = std::time::Instant::now();
    let (response, service, operation) = answer(&app, req).await;
    let code = response.extensions().get::<ErrorCode>().map(|c| c.as_str());
    app.state
        .metrics()
        .request(service, &operation, code, began.elapsed());
    response
}

/// Answers a request; with it, the service and operation it named (for the metrics).
async fn answer(app: &AppState, req: Request) -> (Response, &'static str, String) {
    let rid = request_id();
    let (parts, body) = req.into_parts();
    let target = parts
        .headers
        .get("x-amz-target")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    // An agent's long poll waits rather than works; every other request counts as serving.
    let agent = target
        .as_deref()
        .is_some_and(|t| t.starts_with(berth_api::agent::TARGET_PREFIX));
    let _serving = (!agent).then(crate::polling::Serving::begin);
    let protocol = if target.is_some() {
        Protocol::Json
    } else if signed_service(&parts.headers, parts.uri.query().unwrap_or("")) == "ec2" {
        Protocol::Ec2
    } else {
        Protocol::Query
    };
    let limit = if target
        .as_deref()
        .is_some_and(|t| t.starts_with(berth_api::logs::TARGET_PREFIX))
    {
        LOGS_MAX_BODY_BYTES
    } else {
        MAX_BODY_BYTES
    };
    let query = parts.uri.query().unwrap_or("");
    let signed = signed_service(&parts.headers, query);
    let body: Bytes = match to_bytes(Body::new(body), limit).await {
        Ok(b) => b,
        Err(e) => {
            let e = if crate::connection_limits::is_body_timeout(&e) {
                ApiError::new(
                    ErrorCode::RequestTimeoutException,
                    "The request body was not received in time.",
                )
            } else {
                ApiError::new(
                    ErrorCode::RequestEntityTooLargeException,
                    format!("Request body is larger than the limit of {limit} bytes."),
                )
            };
            let (service, op) = crate::metrics::labels::call(target.as_deref(), &signed, None);
            return (error_response(protocol, &e, &rid), service, op.to_string());
        }
    };
    let action = if target.is_some() {
        None
    } else {
        form_value(query, "Action")
            .or_else(|| form_value(&String::from_utf8_lossy(&body), "Action"))
    };
    let (service, op) = crate::metrics::labels::call(target.as_deref(), &signed, action.as_deref());
    let operation = op.to_string();
    if let Some(answer) =
        forward_to_leader(app, &parts, target.as_deref(), &body, protocol, &rid).await
    {
        return (answer, service, operation);
    }
    let response = authenticate_and_dispatch(app, parts, target, signed, protocol, body, rid).await;
    (response, service, operation)
}

/// The leader's answer to a write that contends across servers (see `forwarding`);
/// None when this server answers it itself (it leads, or the leader cannot be reached).
async fn forward_to_leader(
    app: &AppState,
    parts: &axum::http::request::Parts,
    target: Option<&str>,
    body: &Bytes,
    protocol: Protocol,
    rid: &str,
) -> Option<Response> {
    use crate::forwarding::{self, Forwarded};
    if !forwarding::contends(target) || parts.headers.contains_key(forwarding::FORWARDED) {
        return None;
    }
    let url = app.state.leader_url()?;
    match forwarding::forward(&url, parts, body.clone()).await {
        Forwarded::Answered(r) => Some(r),
        Forwarded::NotSent(e) => {
            tracing::debug!(url, error = e, "the leader was not reached; answering here");
            None
        }
        Forwarded::Lost(e) => {
            let e = ApiError::server(format!("The request's answer was lost on its way: {e}"));
            Some(error_response(protocol, &e, rid))
        }
    }
}

async fn authenticate_and_dispatch(
    app: &AppState,
    parts: axum::http::request::Parts,
    target: Option<String>,
    signed_service: String,
    protocol: Protocol,
    body: Bytes,
    rid: String,
) -> Response {
    let query = parts.uri.query().unwrap_or("");
    let request = RequestParts {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query,
        headers: header_pairs(&parts.headers),
        body: &body,
    };
    let now = time::now_secs();
    let source_ip = parts
        .extensions
        .get::<axum::extract::ConnectInfo<crate::polling::PeerAddr>>()
        .map(|c| c.0 .0.ip().to_string());
    // Keys, policies and resources written through another server count too.
    if let Err(e) = app.state.catch_up().await {
        let e = ApiError::new(
            ErrorCode::ServerException,
            format!("The store is not answering: {e}"),
        );
        return error_response(protocol, &e, &rid);
    }
    let authenticated = {
        let index = app.state.read();
        auth::authenticate(
            &app.keys,
            &index,
            &request,
            now,
            app.state.clock().epoch_secs() as i64,
        )
    };
    let (credential, caller) = match authenticated {
        Ok(v) => v,
        Err(f) => return error_response(protocol, &auth_error(protocol, f), &rid),
    };
    let call = Call {
        caller,
        region: credential.region,
        service: signed_service,
        target,
        method: parts.method.clone(),
        query,
        body: &body,
        source_ip,
        host: parts
            .headers
            .get(axum::http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    };
    dispatch(app, call, rid).await
}

/// An authenticated call, from a signed request or a console session.
pub(crate) struct Call<'a> {
    pub caller: auth::Caller,
    pub region: String,
    /// The service the call is for, as a credential scope names it (`ecs`, `ec2`, `iam`, ...).
    pub service: String,
    pub target: Option<String>,
    pub method: Method,
    pub query: &'a str,
    pub body: &'a [u8],
    pub source_ip: Option<String>,
    /// The request's `Host` header.
    pub host: Option<String>,
}

/// Runs an authenticated call through its service's handlers, as its caller.
pub(crate) async fn dispatch(app: &AppState, call: Call<'_>, rid: String) -> Response {
    let Call {
        caller,
        region,
        service,
        target,
        method,
        query,
        body,
        source_ip,
        host,
    } = call;
    let protocol = if target.is_some() {
        Protocol::Json
    } else if service == "ec2" {
        Protocol::Ec2
    } else {
        Protocol::Query
    };
    let now = time::now_secs();
    let policies = authz::policies(&app.state.read(), &caller, app.state.session_policies());
    // The condition keys matter only to a caller with policies, and to STS (a trust
    // policy sees any caller): a root's ECS, EC2 and IAM calls skip building them.
    let trust_checked = protocol == Protocol::Query && service != "iam";
    let mut base = if policies.restricted() || trust_checked {
        authz::base_context(&caller, &region, source_ip.as_deref(), now)
    } else {
        berth_iam::Context::new()
    };
    // Fleet keys run fleet hosts and nothing else; accounts' keys never do.
    let fleet = caller.identity == Identity::Fleet;
    let fleet_refusal =
        |code: ErrorCode| ApiError::new(code, "A fleet key may only make the fleet's own calls.");
    let scope = Scope::new(caller.account.clone(), region.clone());
    match (protocol, target) {
        (Protocol::Json, Some(target)) => {
            let ctx = Ctx {
                state: &app.state,
                scope: scope.clone(),
                principal: caller.arn(),
                now: app.state.clock().epoch_secs(),
                host,
            };
            if let Some(op) = target
                .strip_prefix(berth_api::agent::TARGET_PREFIX)
                .and_then(|t| t.strip_prefix('.'))
            {
                if !fleet {
                    // The agent's calls are ECS's own agent actions.
                    let action = if op == berth_api::agent::POLL
                        || op == berth_api::agent::TASK_CREDENTIALS
                    {
                        "ecs:Poll"
                    } else {
                        "ecs:SubmitTaskStateChange"
                    };
                    let call = authz::Call {
                        action,
                        resources: vec![],
                    };
                    if let Err(e) =
                        authz::authorize(&policies, &caller, &mut base, &call, Wording::Json)
                    {
                        return error_response(protocol, &e, &rid);
                    }
                }
                return match crate::agent::handle(&ctx, op, body, fleet).await {
                    Ok(out) => respond(StatusCode::OK, "application/x-amz-json-1.1", out, &rid),
                    Err(e) => error_response(protocol, &e, &rid),
                };
            }
            if let Some((service, op)) = JsonService::of(&target) {
                if fleet {
                    let e = fleet_refusal(ErrorCode::AccessDeniedException);
                    return error_response(protocol, &e, &rid);
                }
                let mut authorize = |action: &'static str, resources| {
                    let call = authz::Call { action, resources };
                    authz::authorize(&policies, &caller, &mut base, &call, Wording::Json)
                };
                let mut open = crate::json_service::unguarded;
                let guard: &mut crate::json_service::Guard<'_> = if policies.restricted() {
                    &mut authorize
                } else {
                    &mut open
                };
                let (state, now) = (&app.state, app.state.clock().epoch_secs());
                let answer = match service {
                    JsonService::Ecr => {
                        let (scope, caller) = (scope.clone(), &caller);
                        let ctx = ecr::Ctx {
                            state,
                            scope,
                            caller,
                            now,
                        };
                        ecr::handle(&ctx, op, body, guard).await
                    }
                    JsonService::Logs => {
                        let ctx = logs::Ctx {
                            state,
                            scope: scope.clone(),
                            now,
                        };
                        logs::handle(&ctx, op, body, guard).await
                    }
                    JsonService::SecretsManager => {
                        let (scope, caller) = (scope.clone(), &caller);
                        let ctx = secretsmanager::Ctx {
                            state,
                            scope,
                            caller,
                            now,
                        };
                        secretsmanager::handle(&ctx, op, body, guard).await
                    }
                    JsonService::Ssm => {
                        let (scope, caller) = (scope.clone(), &caller);
                        let ctx = ssm::Ctx {
                            state,
                            scope,
                            caller,
                            now,
                        };
                        ssm::handle(&ctx, op, body, guard).await
                    }
                };
                return match answer {
                    Ok(out) => respond(StatusCode::OK, "application/x-amz-json-1.1", out, &rid),
                    Err(e) => error_response(protocol, &e, &rid),
                };
            }
            let Some(operation) = target
                .strip_prefix(TARGET_PREFIX)
                .and_then(|t| t.strip_prefix('.'))
            else {
                let e = ApiError::new(
                    ErrorCode::UnknownOperationException,
                    format!("Unknown operation {target}."),
                );
                return error_response(protocol, &e, &rid);
            };
            if fleet {
                return error_response(
                    protocol,
                    &fleet_refusal(ErrorCode::AccessDeniedException),
                    &rid,
                );
            }
            if method != Method::POST {
                let e = ApiError::new(
                    ErrorCode::UnknownOperationException,
                    "ECS operations are POST requests.",
                );
                return error_response(protocol, &e, &rid);
            }
            if let Some(throttle) = &app.throttle {
                if let Err(e) = throttle.admit(&scope, operation, std::time::Instant::now()) {
                    return error_response(protocol, &e, &rid);
                }
            }
            let answer = if policies.restricted() {
                let mut guard = |action, naming: ecs::permissions::Naming<'_>| {
                    let calls = ecs::permissions::calls(
                        &app.state.read(),
                        &scope,
                        operation,
                        action,
                        naming,
                    );
                    calls.iter().try_for_each(|call| {
                        authz::authorize(&policies, &caller, &mut base, call, Wording::Json)
                    })
                };
                ecs::handle(&ctx, operation, body, &mut guard).await
            } else {
                ecs::handle(&ctx, operation, body, &mut ecs::unguarded).await
            };
            match answer {
                Ok(out) => respond(StatusCode::OK, "application/x-amz-json-1.1", out, &rid),
                Err(e) => error_response(protocol, &e, &rid),
            }
        }
        (Protocol::Ec2, _) if fleet => error_response(
            protocol,
            &fleet_refusal(ErrorCode::UnauthorizedOperation),
            &rid,
        ),
        _ if fleet => error_response(protocol, &fleet_refusal(ErrorCode::AccessDenied), &rid),
        (Protocol::Ec2, _) => {
            let form = String::from_utf8_lossy(body);
            let params =
                berth_api::ec2::Params::from_pairs(form_pairs(query).chain(form_pairs(&form)));
            let action = params.get("Action").unwrap_or_default().to_string();
            if policies.restricted() {
                let call = authz::Call {
                    action: &format!("ec2:{action}"),
                    resources: ec2::permissions::resources(&scope, &action, &params),
                };
                if let Err(e) = authz::authorize(&policies, &caller, &mut base, &call, Wording::Ec2)
                {
                    return error_response(protocol, &e, &rid);
                }
            }
            let ctx = ec2::Ctx {
                state: &app.state,
                scope,
                params,
                request_id: rid.clone(),
            };
            match ec2::handle(&ctx, &action).await {
                Ok(xml) => respond(StatusCode::OK, "text/xml", xml.into_bytes(), &rid),
                Err(e) => error_response(protocol, &e, &rid),
            }
        }
        _ => {
            let form = String::from_utf8_lossy(body);
            let params =
                berth_api::ec2::Params::from_pairs(form_pairs(query).chain(form_pairs(&form)));
            let action = params.get("Action").unwrap_or_default().to_string();
            let answer = if service == "iam" {
                let call = authz::Call {
                    action: &format!("iam:{action}"),
                    resources: iam::resources(
                        &app.state.read(),
                        &caller.account,
                        caller.user_name(),
                        &action,
                        &params,
                    ),
                };
                match authz::authorize(&policies, &caller, &mut base, &call, Wording::Query) {
                    Err(e) => Err(e),
                    Ok(()) => {
                        let ctx = iam::Ctx {
                            state: &app.state,
                            account: caller.account.clone(),
                            user: caller.user_name().map(String::from),
                            params,
                            request_id: rid.clone(),
                            now,
                        };
                        iam::handle(&ctx, &action).await
                    }
                }
            } else {
                let ctx = sts::Ctx {
                    state: &app.state,
                    caller: &caller,
                    policies: &policies,
                    context: &base,
                    params,
                    request_id: rid.clone(),
                    now,
                };
                sts::handle(&ctx, &action).await
            };
            match answer {
                Ok(xml) => respond(StatusCode::OK, "text/xml", xml.into_bytes(), &rid),
                Err(e) => error_response(protocol, &e, &rid),
            }
        }
    }
}
