//! STS on the query protocol: GetCallerIdentity for every kind of caller, and
//! AssumeRole, whose temporary credentials berth's own verifier accepts until
//! they expire. Berth itself assumes task roles as `ecs-tasks.amazonaws.com`.
use crate::auth::session::{self, Session};
use crate::auth::{Caller, Identity};
use crate::authz::{self, Call, Policies, Resource, Wording};
use crate::iam::entities::find;
use crate::state::iam_records::{RoleRecord, SessionKeyRecord};
use crate::state::index::guarded_put;
use crate::state::{State, StoreKey};
use berth_api::amz_date::format_iso8601;
use berth_api::ec2::Params;
use berth_api::query::{response, STS_NS};
use berth_api::{ApiError, ErrorCode};
use berth_iam::{evaluate_resource_policy, Context, Decision, Named, Request};
use berth_model::iam;
use berth_store::Txn;
use sha2::{Digest, Sha256};

pub struct Ctx<'a> {
    pub state: &'a State,
    pub caller: &'a Caller,
    pub policies: &'a Policies,
    pub context: &'a Context<'a>,
    pub params: Params,
    pub request_id: String,
    pub now: i64,
}

/// AssumeRole's session lifetime bounds, in seconds.
pub const MIN_DURATION: i64 = 900;
pub const DEFAULT_DURATION: i64 = 3600;
/// A session assuming another role (role chaining) gets at most an hour.
pub const CHAINED_MAX: i64 = 3600;

#[derive(Debug, Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    pub expiration: i64,
    pub role_arn: String,
    pub assumed_role_id: String,
    pub session_arn: String,
}

/// A stable IAM-style unique id for a config user without an IAM record.
fn config_user_id(account: &str, user: &str) -> String {
    let h = Sha256::digest(format!("{account}:{user}"));
    format!("AIDA{}", hex::encode_upper(&h[..8]))
}

fn user_id(state: &State, caller: &Caller) -> String {
    match &caller.identity {
        Identity::Root | Identity::Fleet => caller.account.clone(),
        Identity::User { name, .. } => {
            find::<crate::state::iam_records::UserRecord>(&state.read(), &caller.account, name)
                .map(|u| u.id.clone())
                .unwrap_or_else(|| config_user_id(&caller.account, name))
        }
        Identity::Session(s) => format!("{}:{}", s.role_id, s.session_name),
    }
}

pub async fn handle(ctx: &Ctx<'_>, action: &str) -> Result<String, ApiError> {
    match action {
        // Needs no permission: no policy can deny it, as in AWS.
        "GetCallerIdentity" => Ok(response(
            "GetCallerIdentity",
            STS_NS,
            &ctx.request_id,
            |x| {
                x.text("Arn", ctx.caller.arn());
                x.text("UserId", user_id(ctx.state, ctx.caller));
                x.text("Account", &ctx.caller.account);
            },
        )),
        "AssumeRole" => assume_role(ctx).await,
        "" => Err(ApiError::new(ErrorCode::MissingAction, "Missing Action")),
        other => Err(ApiError::new(
            ErrorCode::InvalidAction,
            format!("Could not find operation {other} for version 2011-06-15"),
        )),
    }
}

fn validation(member: &str, value: &str, what: &str) -> ApiError {
    ApiError::new(
        ErrorCode::ValidationError,
        format!("1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: {what}"),
    )
}

async fn assume_role(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    let required = |name: &str, member: &str| {
        ctx.params.get(name).ok_or_else(|| {
            ApiError::new(
                ErrorCode::ValidationError,
                format!("1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"),
            )
        })
    };
    let role_arn = required("RoleArn", "roleArn")?;
    let session_name = required("RoleSessionName", "roleSessionName")?;
    iam::check_session_name(session_name)?;
    let duration = match ctx.params.get("DurationSeconds") {
        None => None,
        Some(d) => Some(
            d.parse::<i64>()
                .ok()
                .filter(|d| (MIN_DURATION..=43200).contains(d))
                .ok_or_else(|| {
                    validation(
                        "durationSeconds",
                        d,
                        "Member must have value greater than or equal to 900",
                    )
                })?,
        ),
    };
    if role_arn.len() < 20 {
        return Err(validation(
            "roleArn",
            role_arn,
            "Member must have length greater than or equal to 20",
        ));
    }
    let denied = || {
        authz::denied(
            Wording::Query,
            ctx.caller,
            "sts:AssumeRole",
            role_arn,
            false,
        )
    };
    let (account, name) = iam::parse_role_arn(role_arn).ok_or_else(denied)?;
    let role = {
        let index = ctx.state.read();
        find::<RoleRecord>(&index, account, name)
            .cloned()
            .ok_or_else(denied)?
    };
    if iam::arn(account, "role", &role.path, &role.name) != role_arn {
        return Err(denied());
    }
    let arns = [ctx.caller.arn(), ctx.caller.principal_arn()];
    let who = berth_iam::Caller {
        account: &ctx.caller.account,
        arns: &arns,
        service: None,
    };
    // The call's own keys: a trust policy may require an ExternalId or a session name.
    let mut context = ctx.context.clone();
    context.set("sts:rolesessionname", session_name);
    if let Some(external) = ctx.params.get("ExternalId") {
        context.set("sts:externalid", external);
    }
    let req = Request {
        action: "sts:assumerole",
        resource: role_arn,
        context: &context,
    };
    let (decision, named) = evaluate_resource_policy(&role.trust.policy, &who, &req);
    let explicit = decision == Decision::ExplicitDeny;
    if decision != Decision::Allow {
        return Err(authz::denied(
            Wording::Query,
            ctx.caller,
            "sts:AssumeRole",
            role_arn,
            explicit,
        ));
    }
    // Naming the caller's account (or another account) leaves the decision to its own policies.
    let own_policies_decide = named == Named::Account || account != ctx.caller.account;
    if own_policies_decide {
        let call = Call {
            action: "sts:AssumeRole",
            resources: vec![Resource::arn(role_arn)],
        };
        authz::authorize(
            ctx.policies,
            ctx.caller,
            &mut ctx.context.clone(),
            &call,
            Wording::Query,
        )?;
    }
    let chained = matches!(ctx.caller.identity, Identity::Session(_));
    let max = if chained {
        CHAINED_MAX
    } else {
        role.max_session_duration
    };
    let duration = duration.unwrap_or(DEFAULT_DURATION.min(max));
    if duration > max {
        return Err(validation(
            "durationSeconds",
            &duration.to_string(),
            &format!("The requested DurationSeconds exceeds the MaxSessionDuration set for this role ({max})."),
        ));
    }
    let bounds = session_bounds(&ctx.params)?;
    let creds = mint(
        ctx.state,
        account,
        &role,
        session_name,
        ctx.now + duration,
        bounds,
    )
    .await?;
    Ok(response("AssumeRole", STS_NS, &ctx.request_id, |x| {
        write_credentials(x, &creds);
        x.elem("AssumedRoleUser", |x| {
            x.text("AssumedRoleId", &creds.assumed_role_id);
            x.text("Arn", &creds.session_arn);
        });
    }))
}

/// AssumeRole's session policies: at most a 2,048-character inline document
/// and 10 managed policy ARNs, as STS's model bounds them.
#[derive(Debug, Default, PartialEq)]
pub struct SessionBounds {
    pub policy: Option<String>,
    pub policy_arns: Vec<String>,
}

pub const MAX_SESSION_POLICY: usize = 2048;
pub const MAX_SESSION_POLICY_ARNS: usize = 10;

pub fn session_bounds(params: &Params) -> Result<SessionBounds, ApiError> {
    let policy = match params.get("Policy") {
        None => None,
        Some(doc) => {
            if doc.is_empty() || doc.chars().count() > MAX_SESSION_POLICY {
                let what = if doc.is_empty() {
                    "Member must have length greater than or equal to 1".to_string()
                } else {
                    format!("Member must have length less than or equal to {MAX_SESSION_POLICY}")
                };
                return Err(validation("policy", doc, &what));
            }
            crate::state::iam_records::IdentityDocument::parse(doc)
                .map_err(|e| ApiError::new(ErrorCode::MalformedPolicyDocument, e.to_string()))?;
            Some(doc.to_string())
        }
    };
    let mut policy_arns = vec![];
    for n in 1.. {
        let Some(arn) = params.get(&format!("PolicyArns.member.{n}.arn")) else {
            break;
        };
        if policy_arns.len() == MAX_SESSION_POLICY_ARNS {
            return Err(ApiError::new(
                ErrorCode::ValidationError,
                format!("1 validation error detected: Value at 'policyArns' failed to satisfy constraint: Member must have length less than or equal to {MAX_SESSION_POLICY_ARNS}"),
            ));
        }
        if !(20..=2048).contains(&arn.len()) || !arn.starts_with("arn:") {
            return Err(validation(
                "policyArns.member.arn",
                arn,
                "Member must have length greater than or equal to 20",
            ));
        }
        policy_arns.push(arn.to_string());
    }
    Ok(SessionBounds {
        policy,
        policy_arns,
    })
}

fn write_credentials(x: &mut berth_api::ec2::Xml, c: &Credentials) {
    x.elem("Credentials", |x| {
        x.text("AccessKeyId", &c.access_key_id);
        x.text("SecretAccessKey", &c.secret_access_key);
        x.text("SessionToken", &c.session_token);
        x.text("Expiration", format_iso8601(c.expiration));
    });
}

/// The key that signs session tokens, made on first use and kept in the store.
pub async fn session_key(state: &State) -> Result<Vec<u8>, ApiError> {
    let current = state
        .read()
        .session_key
        .as_ref()
        .map(|k| k.value.key.clone());
    let key = match current {
        Some(k) => k,
        None => {
            let fresh = SessionKeyRecord {
                key: format!(
                    "{}{}",
                    uuid::Uuid::new_v4().simple(),
                    uuid::Uuid::new_v4().simple()
                ),
            };
            state
                .mutate(&StoreKey::SessionKey, |index| match &index.session_key {
                    Some(k) => Ok((Txn::new(), k.value.key.clone())),
                    None => Ok((
                        guarded_put(Txn::new(), index, &StoreKey::SessionKey, &fresh),
                        fresh.key.clone(),
                    )),
                })
                .await?
        }
    };
    hex::decode(key).map_err(|e| ApiError::server(format!("session key: {e}")))
}

async fn mint(
    state: &State,
    account: &str,
    role: &RoleRecord,
    session_name: &str,
    expiration: i64,
    bounds: SessionBounds,
) -> Result<Credentials, ApiError> {
    let key = session_key(state).await?;
    let s = Session {
        access_key_id: crate::ids::iam("ASIA"),
        account: account.to_string(),
        role_name: role.name.clone(),
        role_path: role.path.clone(),
        role_id: role.id.clone(),
        session_name: session_name.to_string(),
        expiration,
        policy: bounds.policy,
        policy_arns: bounds.policy_arns,
    };
    let (token, secret) = session::mint(&key, &s);
    Ok(Credentials {
        access_key_id: s.access_key_id,
        secret_access_key: secret,
        session_token: token,
        expiration,
        role_arn: iam::arn(account, "role", &role.path, &role.name),
        assumed_role_id: format!("{}:{session_name}", role.id),
        session_arn: iam::session_arn(account, &role.name, session_name),
    })
}

/// Why berth, as `ecs-tasks.amazonaws.com`, cannot act as a task's role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskRoleRefusal {
    /// Not a role of the task's account, or no such role.
    NoSuchRole,
    /// The role's trust policy does not let ECS tasks assume it.
    NotTrusted,
}

/// A session of a task's role, as the ECS agent gets one for the task.
pub async fn assume_for_task(
    state: &State,
    account: &str,
    role_arn: &str,
    session_name: &str,
    lifetime: i64,
) -> Result<Result<Credentials, TaskRoleRefusal>, ApiError> {
    let Some((role_account, name)) = iam::parse_role_arn(role_arn) else {
        return Ok(Err(TaskRoleRefusal::NoSuchRole));
    };
    // The agent never hands a task credentials of a role its account does not own.
    if role_account != account {
        return Ok(Err(TaskRoleRefusal::NoSuchRole));
    }
    let role = {
        let index = state.read();
        match find::<RoleRecord>(&index, account, name) {
            Some(r) if iam::arn(account, "role", &r.path, &r.name) == role_arn => r.clone(),
            _ => return Ok(Err(TaskRoleRefusal::NoSuchRole)),
        }
    };
    let who = berth_iam::Caller {
        account: "",
        arns: &[],
        service: Some("ecs-tasks.amazonaws.com"),
    };
    let context = Context::new();
    let req = Request {
        action: "sts:assumerole",
        resource: role_arn,
        context: &context,
    };
    if evaluate_resource_policy(&role.trust.policy, &who, &req).0 != Decision::Allow {
        return Ok(Err(TaskRoleRefusal::NotTrusted));
    }
    let now = state.clock().epoch_secs() as i64;
    let session_name: String = session_name.chars().take(64).collect();
    Ok(Ok(mint(
        state,
        account,
        &role,
        &session_name,
        now + lifetime,
        SessionBounds::default(),
    )
    .await?))
}

#[cfg(test)]
mod session_bounds_tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn session_policies_are_checked_as_sts_checks_them() {
        let doc = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"ecs:List*","Resource":"*"}}"#;
        let arn = "arn:aws:iam::aws:policy/ReadOnlyAccess";
        let got = session_bounds(&params(&[
            ("Policy", doc),
            ("PolicyArns.member.1.arn", arn),
        ]))
        .unwrap();
        assert_eq!(got.policy.as_deref(), Some(doc));
        assert_eq!(got.policy_arns, vec![arn.to_string()]);
        assert_eq!(
            session_bounds(&params(&[])).unwrap(),
            SessionBounds::default()
        );
        let malformed = session_bounds(&params(&[(
            "Policy",
            r#"{"Statement":{"Effect":"Maybe"}}"#,
        )]));
        assert_eq!(
            malformed.unwrap_err().code,
            ErrorCode::MalformedPolicyDocument
        );
        let long = format!(
            "{{\"Version\":\"2012-10-17\",\"Statement\":[],\"x\":\"{}\"}}",
            "a".repeat(2048)
        );
        let e = session_bounds(&params(&[("Policy", &long)])).unwrap_err();
        assert_eq!(e.code, ErrorCode::ValidationError);
        assert!(
            e.message.contains("less than or equal to 2048"),
            "{}",
            e.message
        );
        let eleven: Vec<(String, String)> = (1..=11)
            .map(|n| (format!("PolicyArns.member.{n}.arn"), arn.to_string()))
            .collect();
        let e = session_bounds(&Params::from_pairs(eleven)).unwrap_err();
        assert_eq!(e.code, ErrorCode::ValidationError);
        assert!(
            e.message.contains("less than or equal to 10"),
            "{}",
            e.message
        );
    }
}
