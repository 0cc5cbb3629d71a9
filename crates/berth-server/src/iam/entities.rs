//! Roles and users: what they share (inline policies, attached managed
//! policies, tags, listing) is written once over the [`Entity`] trait.
use super::{malformed, no_such_entity, page, required, tags, write_page_end, xml, Ctx};
use crate::state::borrowed_key::borrowed;
use crate::state::iam_records::{
    IdentityDocument, Permissions, RoleRecord, TrustDocument, UserRecord,
};
use crate::state::index::{guarded_delete, guarded_put, Index, Versioned};
use crate::state::keys::{IamKind, StoreKey};
use berth_api::ec2::Xml;
use berth_api::query::{empty, encode_document, response, IAM_NS};
use berth_api::{ApiError, ErrorCode};
use berth_model::iam;
use berth_store::Txn;
use serde::Serialize;
use std::collections::BTreeMap;

pub trait Entity: Clone + Serialize + 'static {
    const KIND: IamKind;
    /// `RoleName` / `UserName`.
    const PARAM: &'static str;
    /// `role` / `user`, as IAM's messages and ARNs name it.
    const NOUN: &'static str;
    /// `Role` / `User`: the result member of Get and the list member of List.
    const MEMBER: &'static str;
    fn map(index: &Index) -> &BTreeMap<(String, String), Versioned<Self>>;
    fn name(&self) -> &str;
    fn path(&self) -> &str;
    fn permissions(&self) -> &Permissions;
    fn permissions_mut(&mut self) -> &mut Permissions;
    fn tags_mut(&mut self) -> &mut Vec<(String, String)>;
    fn tags(&self) -> &[(String, String)];
    fn write(&self, x: &mut Xml, account: &str, with_tags: bool);
}

pub struct Role;
pub struct User;

/// Picks the record type for the operation's generic functions.
pub trait Of {
    type Record: Entity;
}
impl Of for Role {
    type Record = RoleRecord;
}
impl Of for User {
    type Record = UserRecord;
}

/// Roles and users keep the same members under the same names.
macro_rules! entity {
    ($record:ty, $kind:ident, $param:literal, $noun:literal, $member:literal, $map:ident, $write:path) => {
        impl Entity for $record {
            const KIND: IamKind = IamKind::$kind;
            const PARAM: &'static str = $param;
            const NOUN: &'static str = $noun;
            const MEMBER: &'static str = $member;
            fn map(index: &Index) -> &BTreeMap<(String, String), Versioned<Self>> {
                &index.$map
            }
            fn name(&self) -> &str {
                &self.name
            }
            fn path(&self) -> &str {
                &self.path
            }
            fn permissions(&self) -> &Permissions {
                &self.permissions
            }
            fn permissions_mut(&mut self) -> &mut Permissions {
                &mut self.permissions
            }
            fn tags_mut(&mut self) -> &mut Vec<(String, String)> {
                &mut self.tags
            }
            fn tags(&self) -> &[(String, String)] {
                &self.tags
            }
            fn write(&self, x: &mut Xml, account: &str, with_tags: bool) {
                $write(x, account, self, with_tags)
            }
        }
    };
}

entity!(
    RoleRecord,
    Role,
    "RoleName",
    "role",
    "Role",
    iam_roles,
    xml::role
);
entity!(
    UserRecord,
    User,
    "UserName",
    "user",
    "User",
    iam_users,
    xml::user
);

fn not_found<E: Entity>(name: &str) -> ApiError {
    no_such_entity(format!("The {} with name {name} cannot be found.", E::NOUN))
}

pub fn find<'a, E: Entity>(index: &'a Index, account: &str, name: &str) -> Option<&'a E> {
    E::map(index)
        .get(borrowed(&[account, name]))
        .map(|v| &v.value)
}

fn in_account<'a, E: Entity>(index: &'a Index, account: &str) -> impl Iterator<Item = &'a E> + 'a {
    let a = account.to_string();
    E::map(index)
        .range((a.clone(), String::new())..)
        .take_while(move |((acc, _), _)| *acc == a)
        .map(|(_, v)| &v.value)
}

/// Names are unique in an account regardless of case, as IAM's are.
fn taken<E: Entity>(index: &Index, account: &str, name: &str) -> bool {
    in_account::<E>(index, account).any(|e| e.name().eq_ignore_ascii_case(name))
}

/// Changes one role or user in its own turn; `change` may refuse.
async fn update<E: Entity>(
    ctx: &Ctx<'_>,
    name: &str,
    mut change: impl FnMut(&Index, &mut E) -> Result<(), ApiError>,
) -> Result<(), ApiError> {
    update_guarded(ctx, name, |index, e| change(index, e).map(|()| Txn::new())).await
}

/// Like `update`, but `change` answers the guards of the other records its
/// decision rests on: if one changes meanwhile, the change is planned again.
async fn update_guarded<E: Entity>(
    ctx: &Ctx<'_>,
    name: &str,
    mut change: impl FnMut(&Index, &mut E) -> Result<Txn, ApiError>,
) -> Result<(), ApiError> {
    let key = StoreKey::iam(&ctx.account, E::KIND, name);
    ctx.state
        .mutate(&key, |index| {
            plan_update(index, &ctx.account, name, &mut change).map(|t| (t, ()))
        })
        .await
}

/// The transaction that writes one role or user as `change` leaves it.
pub(crate) fn plan_update<E: Entity>(
    index: &Index,
    account: &str,
    name: &str,
    change: &mut impl FnMut(&Index, &mut E) -> Result<Txn, ApiError>,
) -> Result<Txn, ApiError> {
    let key = StoreKey::iam(account, E::KIND, name);
    let mut e = find::<E>(index, account, name)
        .cloned()
        .ok_or_else(|| not_found::<E>(name))?;
    let guards = change(index, &mut e)?;
    Ok(guarded_put(guards, index, &key, &e))
}

fn path_param(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    let path = ctx.params.get("Path").unwrap_or("/").to_string();
    iam::check_path(&path)?;
    Ok(path)
}

async fn create<E: Entity>(ctx: &Ctx<'_>, name: &str, record: E) -> Result<(), ApiError> {
    // One turn per account and kind, so two names differing in case cannot both be made.
    let turn = StoreKey::iam(&ctx.account, E::KIND, "*");
    let key = StoreKey::iam(&ctx.account, E::KIND, name);
    ctx.state
        .mutate(&turn, |index| {
            if taken::<E>(index, &ctx.account, name) {
                return Err(ApiError::new(
                    ErrorCode::EntityAlreadyExists,
                    format!("{} with name {name} already exists.", E::MEMBER),
                ));
            }
            Ok((guarded_put(Txn::new(), index, &key, &record), ()))
        })
        .await
}

pub async fn create_role(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    let name = required(&ctx.params, "RoleName")?;
    iam::check_role_name(name)?;
    let trust = TrustDocument::parse(required(&ctx.params, "AssumeRolePolicyDocument")?)
        .map_err(malformed)?;
    let max_session_duration = match ctx.params.get("MaxSessionDuration") {
        None => 3600,
        Some(v) => v.parse::<i64>().ok().filter(|d| (3600..=43200).contains(d)).ok_or_else(|| {
            ApiError::new(ErrorCode::ValidationError, format!("1 validation error detected: Value '{v}' at 'maxSessionDuration' failed to satisfy constraint: Member must have value between 3600 and 43200"))
        })?,
    };
    let tags = tags(&ctx.params);
    iam::check_tags(&tags)?;
    let role = RoleRecord {
        name: name.to_string(),
        path: path_param(ctx)?,
        id: crate::ids::iam("AROA"),
        created: ctx.now,
        trust,
        description: ctx.params.get("Description").map(String::from),
        max_session_duration,
        tags,
        permissions: Permissions::default(),
    };
    create(ctx, name, role.clone()).await?;
    Ok(response("CreateRole", IAM_NS, &ctx.request_id, |x| {
        x.elem("Role", |x| xml::role(x, &ctx.account, &role, true))
    }))
}

pub async fn create_user(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    let name = required(&ctx.params, "UserName")?;
    iam::check_user_name(name)?;
    let tags = tags(&ctx.params);
    iam::check_tags(&tags)?;
    let user = UserRecord {
        name: name.to_string(),
        path: path_param(ctx)?,
        id: crate::ids::iam("AIDA"),
        created: ctx.now,
        tags,
        permissions: Permissions::default(),
    };
    create(ctx, name, user.clone()).await?;
    Ok(response("CreateUser", IAM_NS, &ctx.request_id, |x| {
        x.elem("User", |x| xml::user(x, &ctx.account, &user, true))
    }))
}

/// The name a call names; GetUser without one means the calling user.
fn name_param<'a, E: Entity>(ctx: &'a Ctx<'_>) -> Result<&'a str, ApiError> {
    match (ctx.params.get(E::PARAM), E::KIND, ctx.user.as_deref()) {
        (Some(n), _, _) => Ok(n),
        (None, IamKind::User, Some(me)) => Ok(me),
        _ => required(&ctx.params, E::PARAM),
    }
}

pub fn get<T: Of>(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    let name = name_param::<T::Record>(ctx)?;
    let index = ctx.state.read();
    let e = find::<T::Record>(&index, &ctx.account, name)
        .ok_or_else(|| not_found::<T::Record>(name))?;
    let action = format!("Get{}", T::Record::MEMBER);
    Ok(response(&action, IAM_NS, &ctx.request_id, |x| {
        x.elem(T::Record::MEMBER, |x| e.write(x, &ctx.account, true))
    }))
}

pub fn list<T: Of>(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    let prefix = ctx.params.get("PathPrefix").unwrap_or("/");
    let index = ctx.state.read();
    let all = in_account::<T::Record>(&index, &ctx.account)
        .filter(|e| e.path().starts_with(prefix))
        .map(|e| (e.name(), e));
    let (items, marker) = page(&ctx.params, all)?;
    let action = format!("List{}s", T::Record::MEMBER);
    Ok(response(&action, IAM_NS, &ctx.request_id, |x| {
        x.members(&format!("{}s", T::Record::MEMBER), &items, |x, e| {
            e.write(x, &ctx.account, false)
        });
        write_page_end(x, marker);
    }))
}

pub async fn delete<T: Of>(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    let name = required(&ctx.params, T::Record::PARAM)?;
    let key = StoreKey::iam(&ctx.account, T::Record::KIND, name);
    let account = ctx.account.clone();
    ctx.state
        .mutate(&key, |index| {
            let e = find::<T::Record>(index, &account, name)
                .ok_or_else(|| not_found::<T::Record>(name))?;
            let conflict = |m: &str| Err(ApiError::new(ErrorCode::DeleteConflict, m.to_string()));
            if !e.permissions().inline.is_empty() {
                return conflict("Cannot delete entity, must delete policies first.");
            }
            if !e.permissions().attached.is_empty() {
                return conflict("Cannot delete entity, must detach all policies first.");
            }
            if T::Record::KIND == IamKind::User
                && index
                    .access_keys
                    .values()
                    .any(|k| k.value.account == account && k.value.user == name)
            {
                return conflict("Cannot delete entity, must delete access keys first.");
            }
            Ok((guarded_delete(Txn::new(), index, &key), ()))
        })
        .await?;
    let action = format!("Delete{}", T::Record::MEMBER);
    Ok(empty(&action, IAM_NS, &ctx.request_id))
}

pub async fn update_trust(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    let name = required(&ctx.params, "RoleName")?;
    let doc = TrustDocument::parse(required(&ctx.params, "PolicyDocument")?).map_err(malformed)?;
    update::<RoleRecord>(ctx, name, |_, r| {
        r.trust = doc.clone();
        Ok(())
    })
    .await?;
    Ok(empty("UpdateAssumeRolePolicy", IAM_NS, &ctx.request_id))
}

pub async fn put_inline<T: Of>(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    let name = required(&ctx.params, T::Record::PARAM)?;
    let policy = required(&ctx.params, "PolicyName")?;
    iam::check_policy_name(policy)?;
    let doc =
        IdentityDocument::parse(required(&ctx.params, "PolicyDocument")?).map_err(malformed)?;
    update::<T::Record>(ctx, name, |_, e| {
        e.permissions_mut()
            .inline
            .insert(policy.to_string(), doc.clone());
        Ok(())
    })
    .await?;
    let action = format!("Put{}Policy", T::Record::MEMBER);
    Ok(empty(&action, IAM_NS, &ctx.request_id))
}

fn inline_not_found<E: Entity>(policy: &str) -> ApiError {
    no_such_entity(format!(
        "The {} policy with name {policy} cannot be found.",
        E::NOUN
    ))
}

pub fn get_inline<T: Of>(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    let name = required(&ctx.params, T::Record::PARAM)?;
    let policy = required(&ctx.params, "PolicyName")?;
    let index = ctx.state.read();
    let e = find::<T::Record>(&index, &ctx.account, name)
        .ok_or_else(|| not_found::<T::Record>(name))?;
    let doc = e
        .permissions()
        .inline
        .get(policy)
        .ok_or_else(|| inline_not_found::<T::Record>(policy))?;
    let action = format!("Get{}Policy", T::Record::MEMBER);
    Ok(response(&action, IAM_NS, &ctx.request_id, |x| {
        x.text(T::Record::PARAM, name);
        x.text("PolicyName", policy);
        x.text("PolicyDocument", encode_document(&doc.text));
    }))
}

pub fn list_inline<T: Of>(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    let name = required(&ctx.params, T::Record::PARAM)?;
    let index = ctx.state.read();
    let e = find::<T::Record>(&index, &ctx.account, name)
        .ok_or_else(|| not_found::<T::Record>(name))?;
    let names = e.permissions().inline.keys().map(|n| (n.as_str(), n));
    let (items, marker) = page(&ctx.params, names)?;
    let action = format!("List{}Policies", T::Record::MEMBER);
    Ok(response(&action, IAM_NS, &ctx.request_id, |x| {
        x.members("PolicyNames", &items, |x, n| x.value(n));
        write_page_end(x, marker);
    }))
}

pub async fn delete_inline<T: Of>(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    let name = required(&ctx.params, T::Record::PARAM)?;
    let policy = required(&ctx.params, "PolicyName")?;
    update::<T::Record>(ctx, name, |_, e| {
        e.permissions_mut()
            .inline
            .remove(policy)
            .map(|_| ())
            .ok_or_else(|| inline_not_found::<T::Record>(policy))
    })
    .await?;
    let action = format!("Delete{}Policy", T::Record::MEMBER);
    Ok(empty(&action, IAM_NS, &ctx.request_id))
}

pub async fn attach<T: Of>(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    let name = required(&ctx.params, T::Record::PARAM)?;
    let arn = required(&ctx.params, "PolicyArn")?;
    update_guarded::<T::Record>(ctx, name, |index, e| attach_to(index, &ctx.account, arn, e))
        .await?;
    let action = format!("Attach{}Policy", T::Record::MEMBER);
    Ok(empty(&action, IAM_NS, &ctx.request_id))
}

/// Attaches a managed policy to a role or user. Guarded on the policy's record,
/// so an attachment never outlives a DeletePolicy that raced it.
pub(crate) fn attach_to<E: Entity>(
    index: &Index,
    account: &str,
    arn: &str,
    e: &mut E,
) -> Result<Txn, ApiError> {
    let guards = match super::policies::find(index, account, arn) {
        None => {
            return Err(no_such_entity(format!(
                "Policy {arn} does not exist or is not attachable."
            )))
        }
        Some(super::policies::Found::Aws(_)) => Txn::new(),
        Some(super::policies::Found::Customer(p)) => {
            let key = StoreKey::iam(account, IamKind::Policy, &p.name);
            Txn::new().compare_mod(key.encode(), index.mod_revision(&key))
        }
    };
    let attached = &mut e.permissions_mut().attached;
    if !attached.iter().any(|a| a == arn) {
        if attached.len() >= 10 {
            return Err(ApiError::new(
                ErrorCode::LimitExceeded,
                format!("Cannot exceed quota for PoliciesPer{}: 10", E::MEMBER),
            ));
        }
        attached.push(arn.to_string());
    }
    Ok(guards)
}

pub async fn detach<T: Of>(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    let name = required(&ctx.params, T::Record::PARAM)?;
    let arn = required(&ctx.params, "PolicyArn")?;
    update::<T::Record>(ctx, name, |_, e| {
        let attached = &mut e.permissions_mut().attached;
        let before = attached.len();
        attached.retain(|a| a != arn);
        if attached.len() == before {
            return Err(no_such_entity(format!("Policy {arn} was not found.")));
        }
        Ok(())
    })
    .await?;
    let action = format!("Detach{}Policy", T::Record::MEMBER);
    Ok(empty(&action, IAM_NS, &ctx.request_id))
}

pub fn list_attached<T: Of>(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    let name = required(&ctx.params, T::Record::PARAM)?;
    let prefix = ctx.params.get("PathPrefix").unwrap_or("/");
    let index = ctx.state.read();
    let e = find::<T::Record>(&index, &ctx.account, name)
        .ok_or_else(|| not_found::<T::Record>(name))?;
    let attached: Vec<(String, String)> = e
        .permissions()
        .attached
        .iter()
        .filter_map(|arn| {
            let (policy_name, path) = super::policies::name_and_path(&index, &ctx.account, arn)?;
            path.starts_with(prefix).then(|| (policy_name, arn.clone()))
        })
        .collect();
    let (items, marker) = page(
        &ctx.params,
        attached.iter().map(|(n, a)| (a.as_str(), (n, a))),
    )?;
    let action = format!("ListAttached{}Policies", T::Record::MEMBER);
    Ok(response(&action, IAM_NS, &ctx.request_id, |x| {
        x.members("AttachedPolicies", &items, |x, (n, a)| {
            x.text("PolicyName", n);
            x.text("PolicyArn", a);
        });
        write_page_end(x, marker);
    }))
}

pub async fn tag<T: Of>(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    let name = required(&ctx.params, T::Record::PARAM)?;
    let new = tags(&ctx.params);
    update::<T::Record>(ctx, name, |_, e| {
        let tags = e.tags_mut();
        for (k, v) in &new {
            match tags.iter_mut().find(|(tk, _)| tk == k) {
                Some(t) => t.1 = v.clone(),
                None => tags.push((k.clone(), v.clone())),
            }
        }
        iam::check_tags(tags)
    })
    .await?;
    let action = format!("Tag{}", T::Record::MEMBER);
    Ok(empty(&action, IAM_NS, &ctx.request_id))
}

pub async fn untag<T: Of>(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    let name = required(&ctx.params, T::Record::PARAM)?;
    let keys = ctx.params.list("TagKeys.member");
    update::<T::Record>(ctx, name, |_, e| {
        e.tags_mut().retain(|(k, _)| !keys.contains(k));
        Ok(())
    })
    .await?;
    let action = format!("Untag{}", T::Record::MEMBER);
    Ok(empty(&action, IAM_NS, &ctx.request_id))
}

pub fn list_tags<T: Of>(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    let name = required(&ctx.params, T::Record::PARAM)?;
    let index = ctx.state.read();
    let e = find::<T::Record>(&index, &ctx.account, name)
        .ok_or_else(|| not_found::<T::Record>(name))?;
    let (items, marker) = page(&ctx.params, e.tags().iter().map(|t| (t.0.as_str(), t)))?;
    let action = format!("List{}Tags", T::Record::MEMBER);
    Ok(response(&action, IAM_NS, &ctx.request_id, |x| {
        x.members("Tags", &items, |x, (k, v)| {
            x.text("Key", k);
            x.text("Value", v);
        });
        write_page_end(x, marker);
    }))
}
