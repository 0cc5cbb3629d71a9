//! Managed policies: AWS's (in every account, read-only) and the account's own.
use super::{malformed, no_such_entity, page, required, tags, write_page_end, xml, Ctx};
use crate::state::iam_records::{IdentityDocument, ManagedPolicyRecord};
use crate::state::index::{guarded_delete, guarded_put, Index};
use crate::state::keys::{IamKind, StoreKey};
use berth_api::amz_date::format_iso8601;
use berth_api::query::{empty, encode_document, response, IAM_NS};
use berth_api::{ApiError, ErrorCode};
use berth_iam::managed::{self, Managed};
use berth_iam::Policy;
use berth_model::iam;
use berth_store::Txn;
use sha2::{Digest, Sha256};
use std::sync::{Arc, OnceLock};

/// When AWS's managed policies were made, as their CreateDate shows.
const AWS_MANAGED_CREATED: i64 = 1_423_180_800; // 2015-02-06

pub enum Found<'a> {
    Aws(&'static Managed),
    Customer(&'a ManagedPolicyRecord),
}

/// AWS's managed policies, parsed once.
fn aws_policies() -> &'static Vec<(String, Arc<Policy>)> {
    static PARSED: OnceLock<Vec<(String, Arc<Policy>)>> = OnceLock::new();
    PARSED.get_or_init(|| {
        managed::ALL
            .iter()
            .filter_map(|m| {
                let p = Policy::parse(m.document, berth_iam::Kind::Identity).ok()?;
                Some((m.arn(), Arc::new(p)))
            })
            .collect()
    })
}

/// The parsed document of the policy an ARN names in this account (or AWS's).
pub fn document(index: &Index, account: &str, arn: &str) -> Option<Arc<Policy>> {
    match find(index, account, arn)? {
        Found::Aws(m) => aws_policies()
            .iter()
            .find(|(a, _)| a.ends_with(m.name) && a == arn)
            .map(|(_, p)| p.clone()),
        Found::Customer(p) => Some(p.document.policy.clone()),
    }
}

/// The customer policy `arn:aws:iam::ACCOUNT:policy/PATH/NAME` of this account, or AWS's by its ARN.
pub fn find<'a>(index: &'a Index, account: &str, arn: &str) -> Option<Found<'a>> {
    if let Some(m) = managed::by_arn(arn) {
        return Some(Found::Aws(m));
    }
    let rest = arn
        .strip_prefix("arn:aws:iam::")?
        .strip_prefix(account)?
        .strip_prefix(":policy")?;
    let name = rest.rsplit('/').next()?;
    let p = &index
        .iam_policies
        .get(&(account.to_string(), name.to_string()))?
        .value;
    (rest.strip_prefix(p.path.as_str()) == Some(p.name.as_str())).then_some(Found::Customer(p))
}

pub fn name_and_path(index: &Index, account: &str, arn: &str) -> Option<(String, String)> {
    Some(match find(index, account, arn)? {
        Found::Aws(m) => (m.name.to_string(), m.path.to_string()),
        Found::Customer(p) => (p.name.clone(), p.path.clone()),
    })
}

fn aws_id(m: &Managed) -> String {
    iam::unique_id("ANPA", &Sha256::digest(m.name.as_bytes()))
}

/// How many of the account's roles and users hold the policy.
fn attachments(index: &Index, account: &str, arn: &str) -> usize {
    let holds = |attached: &Vec<String>| attached.iter().any(|a| a == arn);
    let roles = index
        .iam_roles
        .iter()
        .filter(|((a, _), r)| a == account && holds(&r.value.permissions.attached))
        .count();
    let users = index
        .iam_users
        .iter()
        .filter(|((a, _), u)| a == account && holds(&u.value.permissions.attached))
        .count();
    roles + users
}

fn view<'a>(index: &Index, account: &str, found: &Found<'a>) -> xml::PolicyView<'a> {
    match found {
        Found::Aws(m) => {
            let arn = m.arn();
            xml::PolicyView {
                name: m.name,
                id: aws_id(m),
                attachments: attachments(index, account, &arn),
                arn,
                path: m.path,
                created: AWS_MANAGED_CREATED,
                description: Some(m.description),
                tags: &[],
            }
        }
        Found::Customer(p) => {
            let arn = iam::arn(account, "policy", &p.path, &p.name);
            xml::PolicyView::customer(account, p, attachments(index, account, &arn))
        }
    }
}

fn not_found(arn: &str) -> ApiError {
    no_such_entity(format!("Policy {arn} does not exist or is not attachable."))
}

pub async fn create(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    let name = required(&ctx.params, "PolicyName")?;
    iam::check_policy_name(name)?;
    let document =
        IdentityDocument::parse(required(&ctx.params, "PolicyDocument")?).map_err(malformed)?;
    let path = ctx.params.get("Path").unwrap_or("/").to_string();
    iam::check_path(&path)?;
    let tags = tags(&ctx.params);
    iam::check_tags(&tags)?;
    let record = ManagedPolicyRecord {
        name: name.to_string(),
        path,
        id: crate::ids::iam("ANPA"),
        created: ctx.now,
        description: ctx.params.get("Description").map(String::from),
        document,
        tags,
    };
    let key = StoreKey::iam(&ctx.account, IamKind::Policy, name);
    ctx.state
        .mutate(&key, |index| {
            if index.mod_revision(&key) != 0 {
                return Err(ApiError::new(
                    ErrorCode::EntityAlreadyExists,
                    format!(
                        "A policy called {name} already exists. Duplicate names are not allowed."
                    ),
                ));
            }
            Ok((guarded_put(Txn::new(), index, &key, &record), ()))
        })
        .await?;
    let found = Found::Customer(&record);
    let index = ctx.state.read();
    let v = view(&index, &ctx.account, &found);
    Ok(response("CreatePolicy", IAM_NS, &ctx.request_id, |x| {
        x.elem("Policy", |x| xml::policy(x, &v, false))
    }))
}

pub fn get(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    let arn = required(&ctx.params, "PolicyArn")?;
    let index = ctx.state.read();
    let found = find(&index, &ctx.account, arn).ok_or_else(|| not_found(arn))?;
    let v = view(&index, &ctx.account, &found);
    Ok(response("GetPolicy", IAM_NS, &ctx.request_id, |x| {
        x.elem("Policy", |x| xml::policy(x, &v, true))
    }))
}

pub fn get_version(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    let arn = required(&ctx.params, "PolicyArn")?;
    let version = required(&ctx.params, "VersionId")?;
    let index = ctx.state.read();
    let found = find(&index, &ctx.account, arn).ok_or_else(|| not_found(arn))?;
    if version != "v1" {
        return Err(no_such_entity(format!(
            "Policy {arn} version {version} does not exist or is not attachable."
        )));
    }
    let (text, created) = match &found {
        Found::Aws(m) => (m.document.to_string(), AWS_MANAGED_CREATED),
        Found::Customer(p) => (p.document.text.clone(), p.created),
    };
    Ok(response("GetPolicyVersion", IAM_NS, &ctx.request_id, |x| {
        x.elem("PolicyVersion", |x| {
            x.text("Document", encode_document(&text));
            x.text("VersionId", "v1");
            x.text("IsDefaultVersion", true);
            x.text("CreateDate", format_iso8601(created));
        })
    }))
}

pub fn list(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    let scope = ctx.params.get("Scope").unwrap_or("All");
    if !["All", "AWS", "Local"].contains(&scope) {
        return Err(ApiError::new(
            ErrorCode::ValidationError,
            format!("1 validation error detected: Value '{scope}' at 'scope' failed to satisfy constraint: Member must satisfy enum value set: [All, AWS, Local]"),
        ));
    }
    let only_attached = ctx.params.get("OnlyAttached") == Some("true");
    let prefix = ctx.params.get("PathPrefix").unwrap_or("/");
    let index = ctx.state.read();
    let mut all: Vec<xml::PolicyView> = vec![];
    if scope != "Local" {
        all.extend(
            managed::ALL
                .iter()
                .map(|m| view(&index, &ctx.account, &Found::Aws(m))),
        );
    }
    if scope != "AWS" {
        let a = ctx.account.clone();
        all.extend(
            index
                .iam_policies
                .range((a.clone(), String::new())..)
                .take_while(|((acc, _), _)| *acc == a)
                .map(|(_, p)| view(&index, &ctx.account, &Found::Customer(&p.value))),
        );
    }
    all.retain(|v| v.path.starts_with(prefix) && (!only_attached || v.attachments > 0));
    all.sort_by(|a, b| a.arn.cmp(&b.arn));
    let (items, marker) = page(&ctx.params, all.iter().map(|v| (v.arn.as_str(), v)))?;
    Ok(response("ListPolicies", IAM_NS, &ctx.request_id, |x| {
        x.members("Policies", &items, |x, v| xml::policy(x, v, false));
        write_page_end(x, marker);
    }))
}

/// DeletePolicy's transaction: refused while a role or user holds the policy,
/// and guarded on every role and user of the account, so one attached meanwhile
/// makes it plan again (and refuse).
pub(crate) fn plan_delete(
    index: &Index,
    account: &str,
    arn: &str,
    key: &StoreKey,
) -> Result<Txn, ApiError> {
    if find(index, account, arn).is_none() {
        return Err(not_found(arn));
    }
    if attachments(index, account, arn) > 0 {
        return Err(ApiError::new(
            ErrorCode::DeleteConflict,
            "Cannot delete a policy attached to entities.",
        ));
    }
    let mut txn = guarded_delete(Txn::new(), index, key);
    let roles = index
        .iam_roles
        .iter()
        .map(|(k, v)| (IamKind::Role, k, v.mod_revision));
    let users = index
        .iam_users
        .iter()
        .map(|(k, v)| (IamKind::User, k, v.mod_revision));
    for (kind, (a, name), revision) in roles.chain(users) {
        if a == account {
            txn = txn.compare_mod(StoreKey::iam(account, kind, name).encode(), revision);
        }
    }
    Ok(txn)
}

pub async fn delete(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    let arn = required(&ctx.params, "PolicyArn")?;
    if managed::by_arn(arn).is_some() {
        return Err(ApiError::new(
            ErrorCode::UnmodifiableEntity,
            format!("Cannot delete policy {arn}: it is an AWS managed policy."),
        ));
    }
    let name = {
        let index = ctx.state.read();
        match find(&index, &ctx.account, arn) {
            Some(Found::Customer(p)) => p.name.clone(),
            _ => return Err(not_found(arn)),
        }
    };
    let key = StoreKey::iam(&ctx.account, IamKind::Policy, &name);
    ctx.state
        .mutate(&key, |index| {
            plan_delete(index, &ctx.account, arn, &key).map(|t| (t, ()))
        })
        .await?;
    Ok(empty("DeletePolicy", IAM_NS, &ctx.request_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iam::entities::{attach_to, plan_update};
    use crate::state::iam_records::RoleRecord;
    use crate::testing::{Harness, ACCOUNT_A};

    const DOC: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"ecs:List*","Resource":"*"}}"#;
    const TRUST: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}}"#;

    /// A customer policy `p` and a role `r` holding nothing; the policy's ARN.
    async fn policy_and_role(h: &Harness) -> String {
        let p = [("PolicyName", "p"), ("PolicyDocument", DOC)];
        h.iam(ACCOUNT_A, "CreatePolicy", &p).await.unwrap();
        let r = [("RoleName", "r"), ("AssumeRolePolicyDocument", TRUST)];
        h.iam(ACCOUNT_A, "CreateRole", &r).await.unwrap();
        format!("arn:aws:iam::{ACCOUNT_A}:policy/p")
    }

    /// Commits `stale` (planned before the world changed), then plans again as `plan` says.
    async fn commit_stale(
        h: &Harness,
        key: &StoreKey,
        stale: Txn,
        mut plan: impl FnMut(&Index) -> Result<Txn, ApiError>,
    ) -> Result<(), ApiError> {
        let mut stale = Some(stale);
        h.state
            .mutate(key, |index| match stale.take() {
                Some(t) => Ok((t, ())),
                None => plan(index).map(|t| (t, ())),
            })
            .await
    }

    #[tokio::test]
    async fn a_policy_attached_while_its_deletion_was_planned_stays() {
        let h = Harness::new().await;
        let arn = policy_and_role(&h).await;
        let key = StoreKey::iam(ACCOUNT_A, IamKind::Policy, "p");
        let stale = plan_delete(&h.state.read(), ACCOUNT_A, &arn, &key).unwrap();
        let attach = [("RoleName", "r"), ("PolicyArn", arn.as_str())];
        h.iam(ACCOUNT_A, "AttachRolePolicy", &attach).await.unwrap();
        let e = commit_stale(&h, &key, stale, |index| {
            plan_delete(index, ACCOUNT_A, &arn, &key)
        })
        .await
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::DeleteConflict);
        let got = h.iam(ACCOUNT_A, "GetPolicy", &[("PolicyArn", &arn)]).await;
        assert!(got
            .unwrap()
            .contains("<AttachmentCount>1</AttachmentCount>"));
    }

    #[tokio::test]
    async fn a_policy_deleted_while_an_attachment_was_planned_is_not_attached() {
        let h = Harness::new().await;
        let arn = policy_and_role(&h).await;
        let mut change = |index: &Index, e: &mut RoleRecord| attach_to(index, ACCOUNT_A, &arn, e);
        let stale = plan_update(&h.state.read(), ACCOUNT_A, "r", &mut change).unwrap();
        h.iam(ACCOUNT_A, "DeletePolicy", &[("PolicyArn", &arn)])
            .await
            .unwrap();
        let key = StoreKey::iam(ACCOUNT_A, IamKind::Role, "r");
        let e = commit_stale(&h, &key, stale, |index| {
            plan_update(index, ACCOUNT_A, "r", &mut change)
        })
        .await
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::NoSuchEntity);
        let listed = h
            .iam(ACCOUNT_A, "ListAttachedRolePolicies", &[("RoleName", "r")])
            .await
            .unwrap();
        assert!(!listed.contains("<PolicyArn>"), "{listed}");
    }
}
