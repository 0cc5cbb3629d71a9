//! IAM on the query protocol (SigV4 service `iam`, XML answers): roles, users,
//! their inline and attached policies, customer managed policies, access keys.
//! IAM has no region: records live under `iam/{account}/…`.
pub mod access_keys;
pub mod entities;
pub mod policies;
pub mod xml;

use crate::state::State;
use berth_api::ec2::Params;
use berth_api::{ApiError, ErrorCode};

pub struct Ctx<'a> {
    pub state: &'a State,
    pub account: String,
    /// The IAM user making the call, if one is (GetUser and CreateAccessKey default to it).
    pub user: Option<String>,
    pub params: Params,
    pub request_id: String,
    pub now: i64,
}

/// Operations berth answers; others are refused by name.
pub const IMPLEMENTED: &[&str] = &[
    "AttachRolePolicy",
    "AttachUserPolicy",
    "CreateAccessKey",
    "CreatePolicy",
    "CreateRole",
    "CreateUser",
    "DeleteAccessKey",
    "DeletePolicy",
    "DeleteRole",
    "DeleteRolePolicy",
    "DeleteUser",
    "DeleteUserPolicy",
    "DetachRolePolicy",
    "DetachUserPolicy",
    "GetPolicy",
    "GetPolicyVersion",
    "GetRole",
    "GetRolePolicy",
    "GetUser",
    "GetUserPolicy",
    "ListAccessKeys",
    "ListAttachedRolePolicies",
    "ListAttachedUserPolicies",
    "ListPolicies",
    "ListRolePolicies",
    "ListRoleTags",
    "ListRoles",
    "ListUserPolicies",
    "ListUserTags",
    "ListUsers",
    "PutRolePolicy",
    "PutUserPolicy",
    "TagRole",
    "TagUser",
    "UntagRole",
    "UntagUser",
    "UpdateAccessKey",
    "UpdateAssumeRolePolicy",
];

pub async fn handle(ctx: &Ctx<'_>, action: &str) -> Result<String, ApiError> {
    use entities::{Role, User};
    match action {
        "" => Err(ApiError::new(ErrorCode::MissingAction, "Missing Action")),
        "CreateRole" => entities::create_role(ctx).await,
        "GetRole" => entities::get::<Role>(ctx),
        "ListRoles" => entities::list::<Role>(ctx),
        "DeleteRole" => entities::delete::<Role>(ctx).await,
        "UpdateAssumeRolePolicy" => entities::update_trust(ctx).await,
        "CreateUser" => entities::create_user(ctx).await,
        "GetUser" => entities::get::<User>(ctx),
        "ListUsers" => entities::list::<User>(ctx),
        "DeleteUser" => entities::delete::<User>(ctx).await,
        "PutRolePolicy" => entities::put_inline::<Role>(ctx).await,
        "PutUserPolicy" => entities::put_inline::<User>(ctx).await,
        "GetRolePolicy" => entities::get_inline::<Role>(ctx),
        "GetUserPolicy" => entities::get_inline::<User>(ctx),
        "ListRolePolicies" => entities::list_inline::<Role>(ctx),
        "ListUserPolicies" => entities::list_inline::<User>(ctx),
        "DeleteRolePolicy" => entities::delete_inline::<Role>(ctx).await,
        "DeleteUserPolicy" => entities::delete_inline::<User>(ctx).await,
        "AttachRolePolicy" => entities::attach::<Role>(ctx).await,
        "AttachUserPolicy" => entities::attach::<User>(ctx).await,
        "DetachRolePolicy" => entities::detach::<Role>(ctx).await,
        "DetachUserPolicy" => entities::detach::<User>(ctx).await,
        "ListAttachedRolePolicies" => entities::list_attached::<Role>(ctx),
        "ListAttachedUserPolicies" => entities::list_attached::<User>(ctx),
        "TagRole" => entities::tag::<Role>(ctx).await,
        "TagUser" => entities::tag::<User>(ctx).await,
        "UntagRole" => entities::untag::<Role>(ctx).await,
        "UntagUser" => entities::untag::<User>(ctx).await,
        "ListRoleTags" => entities::list_tags::<Role>(ctx),
        "ListUserTags" => entities::list_tags::<User>(ctx),
        "CreatePolicy" => policies::create(ctx).await,
        "GetPolicy" => policies::get(ctx),
        "GetPolicyVersion" => policies::get_version(ctx),
        "ListPolicies" => policies::list(ctx),
        "DeletePolicy" => policies::delete(ctx).await,
        "CreateAccessKey" => access_keys::create(ctx).await,
        "ListAccessKeys" => access_keys::list(ctx),
        "UpdateAccessKey" => access_keys::update(ctx).await,
        "DeleteAccessKey" => access_keys::delete(ctx).await,
        other => Err(ApiError::new(
            ErrorCode::InvalidAction,
            format!("Could not find operation {other} for version 2010-05-08"),
        )),
    }
}

/// The model's member name for a parameter: `RoleName` → `roleName`.
fn member(name: &str) -> String {
    let mut c = name.chars();
    c.next()
        .map(|f| f.to_ascii_lowercase().to_string() + c.as_str())
        .unwrap_or_default()
}

pub fn required<'a>(params: &'a Params, name: &str) -> Result<&'a str, ApiError> {
    params.get(name).ok_or_else(|| {
        ApiError::new(
            ErrorCode::ValidationError,
            format!(
                "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
                member(name)
            ),
        )
    })
}

pub fn no_such_entity(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::NoSuchEntity, message)
}

pub fn malformed(e: berth_iam::PolicyError) -> ApiError {
    ApiError::new(ErrorCode::MalformedPolicyDocument, e.0)
}

/// `Tags.member.N.Key` / `.Value`.
pub fn tags(params: &Params) -> Vec<(String, String)> {
    params
        .members("Tags.member")
        .into_iter()
        .map(|t| {
            (
                t.get("Key").unwrap_or_default().to_string(),
                t.get("Value").unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// `MaxItems` (1–1000, 100 by default) and `Marker` (the last name of the page before).
pub fn page<'a, T>(
    params: &Params,
    items: impl Iterator<Item = (&'a str, T)>,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    let max = match params.get("MaxItems") {
        None => 100,
        Some(m) => m
            .parse::<usize>()
            .ok()
            .filter(|m| (1..=1000).contains(m))
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::ValidationError,
                    format!("1 validation error detected: Value '{m}' at 'maxItems' failed to satisfy constraint: Member must have value between 1 and 1000"),
                )
            })?,
    };
    let after = params.get("Marker").unwrap_or_default();
    let mut out = vec![];
    let mut last = String::new();
    for (name, item) in items.filter(|(n, _)| after.is_empty() || *n > after) {
        if out.len() == max {
            return Ok((out, Some(last)));
        }
        last = name.to_string();
        out.push(item);
    }
    Ok((out, None))
}

/// `IsTruncated` and, when it is, `Marker`.
pub fn write_page_end(x: &mut berth_api::ec2::Xml, marker: Option<String>) {
    x.text("IsTruncated", marker.is_some());
    x.opt("Marker", marker);
}

/// The resource an IAM action acts on: the role, user or policy it names.
pub fn resources(
    index: &crate::state::index::Index,
    account: &str,
    caller_user: Option<&str>,
    action: &str,
    params: &Params,
) -> Vec<crate::authz::Resource> {
    use crate::authz::Resource;
    use crate::state::iam_records::{RoleRecord, UserRecord};
    let path_of = |kind: &str, name: &str| -> String {
        match kind {
            "role" => entities::find::<RoleRecord>(index, account, name).map(|r| r.path.clone()),
            _ => entities::find::<UserRecord>(index, account, name).map(|u| u.path.clone()),
        }
        .or_else(|| params.get("Path").map(String::from))
        .unwrap_or_else(|| "/".into())
    };
    let arn = |kind: &str, name: &str| {
        Resource::arn(berth_model::iam::arn(
            account,
            kind,
            &path_of(kind, name),
            name,
        ))
    };
    if let Some(role) = params.get("RoleName") {
        return vec![arn("role", role)];
    }
    // GetUser and the access key calls without a name act on the calling user.
    let own = [
        "GetUser",
        "CreateAccessKey",
        "ListAccessKeys",
        "UpdateAccessKey",
        "DeleteAccessKey",
    ];
    let user = params
        .get("UserName")
        .or(caller_user.filter(|_| own.contains(&action)));
    if let Some(user) = user {
        return vec![arn("user", user)];
    }
    if let Some(policy) = params.get("PolicyArn") {
        return vec![Resource::arn(policy)];
    }
    match (action, params.get("PolicyName")) {
        ("CreatePolicy", Some(name)) => vec![Resource::arn(berth_model::iam::arn(
            account,
            "policy",
            params.get("Path").unwrap_or("/"),
            name,
        ))],
        _ => vec![Resource::any()],
    }
}
