//! Authorization: every call of an IAM user or a role session is checked
//! against the caller's policies before it acts. The decision is berth-iam's;
//! this module gathers the caller's policies and words AWS's refusals.
use crate::auth::{Caller, Identity};
use crate::iam::entities::find;
use crate::state::iam_records::{Permissions, RoleRecord, UserRecord};
use crate::state::index::Index;
use berth_api::{ApiError, ErrorCode};
use berth_iam::context::Global;
use berth_iam::{Context, Decision, Policy, PolicySet, Request};
use std::borrow::Cow;
use std::sync::Arc;

/// What one call does: the action and the resources it acts on, with the
/// condition keys that come with each resource (its tags, its cluster).
pub struct Call<'a> {
    pub action: &'a str,
    pub resources: Vec<Resource>,
}

pub struct Resource {
    pub arn: String,
    /// Keys of this resource alone (`aws:ResourceTag/…`, `ecs:cluster`).
    pub keys: Vec<(Cow<'static, str>, String)>,
}

impl Resource {
    pub fn any() -> Resource {
        Resource::arn("*")
    }

    pub fn arn(arn: impl Into<String>) -> Resource {
        Resource {
            arn: arn.into(),
            keys: vec![],
        }
    }

    pub fn with(mut self, key: impl Into<Cow<'static, str>>, value: impl Into<String>) -> Resource {
        self.keys.push((key.into(), value.into()));
        self
    }
}

/// Whose policies apply: none for a root (never denied in its own account),
/// or the user's or the session's role's; a session given session policies
/// may do only what both its role's and those allow.
pub enum Policies {
    Unrestricted,
    These(Arc<PolicySet>),
    Bounded {
        role: Arc<PolicySet>,
        session: Arc<PolicySet>,
    },
}

impl Policies {
    /// Whether any call may be refused.
    pub fn restricted(&self) -> bool {
        !matches!(self, Policies::Unrestricted)
    }
}

/// The policies a session's AssumeRole named: its inline one and the managed
/// ones of its account or AWS's (an ARN naming nothing allows nothing).
fn session_policies(index: &Index, session: &crate::auth::session::Session) -> Vec<Arc<Policy>> {
    let inline = session.policy.as_deref().and_then(|doc| {
        // Checked by AssumeRole: a token holds only a document that parsed.
        crate::state::iam_records::IdentityDocument::parse(doc)
            .ok()
            .map(|d| d.policy)
    });
    let managed = session
        .policy_arns
        .iter()
        .filter_map(|arn| crate::iam::policies::document(index, &session.account, arn));
    inline.into_iter().chain(managed).collect()
}

fn gather(index: &Index, account: &str, p: &Permissions) -> Arc<PolicySet> {
    p.gathered.get_or(index.iam_policies_revision, || {
        let mut out: Vec<Arc<Policy>> = p.inline.values().map(|d| d.policy.clone()).collect();
        out.extend(
            p.attached
                .iter()
                .filter_map(|arn| crate::iam::policies::document(index, account, arn)),
        );
        out
    })
}

pub fn policies(
    index: &Index,
    caller: &Caller,
    sessions: &crate::state::iam_records::SessionPolicies,
) -> Policies {
    match &caller.identity {
        Identity::Root | Identity::Fleet => Policies::Unrestricted,
        Identity::User {
            name, from_config, ..
        } => match find::<UserRecord>(index, &caller.account, name) {
            Some(u) => Policies::These(gather(index, &caller.account, &u.permissions)),
            // A config file's user with no IAM record acts as the config gave it: unrestricted.
            None if *from_config => Policies::Unrestricted,
            None => Policies::These(Arc::default()),
        },
        Identity::Session(s) => match find::<RoleRecord>(index, &caller.account, &s.role_name) {
            Some(r) if r.id == s.role_id && s.bounded() => Policies::Bounded {
                role: gather(index, &caller.account, &r.permissions),
                session: sessions.get_or(&s.access_key_id, index.iam_policies_revision, || {
                    session_policies(index, s)
                }),
            },
            Some(r) if r.id == s.role_id => {
                Policies::These(gather(index, &caller.account, &r.permissions))
            }
            // The role was deleted (or made again): its sessions may do nothing.
            _ => Policies::These(Arc::default()),
        },
    }
}

/// The condition keys every call of this caller carries.
pub fn base_context<'a>(
    caller: &'a Caller,
    region: &'a str,
    source_ip: Option<&'a str>,
    now: i64,
) -> Context<'a> {
    let mut c = Context::new();
    c.set_global(Global::PrincipalArn, caller.principal_arn())
        .set_global(Global::PrincipalAccount, caller.account.as_str())
        .set_global(Global::RequestedRegion, region)
        .set_global(Global::SecureTransport, "false")
        .set_global_later(Global::EpochTime, now, |t| t.to_string())
        .set_global_later(
            Global::CurrentTime,
            now,
            berth_api::amz_date::format_iso8601,
        );
    if let Some(ip) = source_ip {
        c.set_global(Global::SourceIp, ip);
    }
    match &caller.identity {
        Identity::User { name, .. } => {
            c.set_global(Global::UserName, name.as_str())
                .set_global(Global::PrincipalType, "User");
        }
        Identity::Session(s) => {
            c.set_global(Global::UserId, format!("{}:{}", s.role_id, s.session_name))
                .set_global(Global::PrincipalType, "AssumedRole");
        }
        _ => {
            c.set_global(Global::PrincipalType, "Account");
        }
    }
    c
}

/// How a service words a refusal.
#[derive(Clone, Copy)]
pub enum Wording {
    /// ECS and the other JSON services: `AccessDeniedException`.
    Json,
    /// IAM and STS: `AccessDenied`.
    Query,
    /// EC2: `UnauthorizedOperation`.
    Ec2,
}

/// Which kind of policy refused a call, as AWS's messages name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refuser {
    Identity,
    Session,
    /// The resource's own policy (an ECR repository policy, for another account's caller).
    Resource,
}

impl Refuser {
    /// (with its article, without)
    fn words(self) -> (&'static str, &'static str) {
        match self {
            Refuser::Identity => ("an identity-based policy", "identity-based policy"),
            Refuser::Session => ("a session policy", "session policy"),
            Refuser::Resource => ("a resource-based policy", "resource-based policy"),
        }
    }
}

pub fn denied(
    wording: Wording,
    caller: &Caller,
    action: &str,
    resource: &str,
    explicit: bool,
) -> ApiError {
    denied_by(
        wording,
        caller,
        action,
        resource,
        explicit,
        Refuser::Identity,
    )
}

pub fn denied_by(
    wording: Wording,
    caller: &Caller,
    action: &str,
    resource: &str,
    explicit: bool,
    by: Refuser,
) -> ApiError {
    let (a_kind, kind) = by.words();
    let why = if explicit {
        format!("with an explicit deny in {a_kind}")
    } else {
        format!("because no {kind} allows the {action} action")
    };
    let on = if resource == "*" {
        String::new()
    } else {
        format!(" on resource: {resource}")
    };
    let mut message = format!(
        "User: {} is not authorized to perform: {action}{on} {why}",
        caller.arn()
    );
    if let Wording::Ec2 = wording {
        message = format!("You are not authorized to perform this operation. {message}");
    }
    let code = match wording {
        Wording::Json => ErrorCode::AccessDeniedException,
        Wording::Query => ErrorCode::AccessDenied,
        Wording::Ec2 => ErrorCode::UnauthorizedOperation,
    };
    ApiError::new(code, message)
}

/// The role's (or user's) decision, bounded by the session policies if any: an
/// explicit deny in either wins, and both must allow. Answers which refused.
pub fn decide(
    identity: &PolicySet,
    session: Option<&PolicySet>,
    req: &Request,
) -> (Decision, Refuser) {
    let first = identity.evaluate(req);
    let Some(session) = session else {
        return (first, Refuser::Identity);
    };
    if first == Decision::ExplicitDeny {
        return (first, Refuser::Identity);
    }
    match session.evaluate(req) {
        Decision::Allow => (first, Refuser::Identity),
        Decision::ExplicitDeny => (Decision::ExplicitDeny, Refuser::Session),
        Decision::ImplicitDeny if first == Decision::Allow => {
            (Decision::ImplicitDeny, Refuser::Session)
        }
        Decision::ImplicitDeny => (first, Refuser::Identity),
    }
}

/// Allows the call, or answers the service's refusal naming the first resource denied.
pub fn authorize(
    policies: &Policies,
    caller: &Caller,
    base: &mut Context,
    call: &Call,
    wording: Wording,
) -> Result<(), ApiError> {
    let (list, session) = match policies {
        Policies::Unrestricted => return Ok(()),
        Policies::These(list) => (list, None),
        Policies::Bounded { role, session } => (role, Some(session)),
    };
    let mut check = |r: &Resource| {
        // The resource's own keys go over the call's for this resource only.
        for (k, v) in &r.keys {
            base.push_layer(k.clone(), v.clone());
        }
        let req = Request {
            action: call.action,
            resource: &r.arn,
            context: base,
        };
        let decision = decide(list, session.map(|s| &**s), &req);
        base.pop_layer();
        match decision {
            (Decision::Allow, _) => Ok(()),
            (d, by) => Err(denied_by(
                wording,
                caller,
                call.action,
                &r.arn,
                d == Decision::ExplicitDeny,
                by,
            )),
        }
    };
    if call.resources.is_empty() {
        return check(&Resource::any());
    }
    call.resources.iter().try_for_each(check)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::iam_records::IdentityDocument;

    fn user() -> Caller {
        Caller {
            account: "111111111111".into(),
            identity: Identity::User {
                name: "bob".into(),
                path: "/".into(),
                from_config: false,
            },
        }
    }

    fn only(doc: &str) -> Policies {
        Policies::These(Arc::new(PolicySet::new(vec![
            IdentityDocument::parse(doc).unwrap().policy,
        ])))
    }

    const PROD: &str = "arn:aws:ecs:us-east-1:111111111111:cluster/prod";

    #[test]
    fn resource_keys_reach_conditions_and_refusals_name_the_resource() {
        let p = only(&format!(
            r#"{{"Version":"2012-10-17","Statement":{{"Effect":"Allow","Action":"ecs:RunTask","Resource":"*",
                "Condition":{{"ArnEquals":{{"ecs:cluster":"{PROD}"}}}}}}}}"#
        ));
        let bob = user();
        let mut base = base_context(&bob, "us-east-1", Some("127.0.0.1"), 0);
        let td = "arn:aws:ecs:us-east-1:111111111111:task-definition/web:1";
        let on = |cluster: &str| Call {
            action: "ecs:RunTask",
            resources: vec![Resource::arn(td).with("ecs:cluster", cluster)],
        };
        assert!(authorize(&p, &user(), &mut base, &on(PROD), Wording::Json).is_ok());
        let e = authorize(
            &p,
            &user(),
            &mut base,
            &on("arn:aws:ecs:us-east-1:111111111111:cluster/dev"),
            Wording::Json,
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::AccessDeniedException);
        assert_eq!(
            e.message,
            format!("User: arn:aws:iam::111111111111:user/bob is not authorized to perform: ecs:RunTask on resource: {td} because no identity-based policy allows the ecs:RunTask action")
        );
        let e = authorize(&p, &user(), &mut base, &on("x"), Wording::Ec2).unwrap_err();
        assert_eq!(e.code, ErrorCode::UnauthorizedOperation);
        assert!(e
            .message
            .starts_with("You are not authorized to perform this operation."));
    }

    fn set(doc: &str) -> Arc<PolicySet> {
        Arc::new(PolicySet::new(vec![
            IdentityDocument::parse(doc).unwrap().policy,
        ]))
    }

    #[test]
    fn session_policies_bound_the_roles_and_deny_in_their_own_words() {
        let role = set(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecs:*","Resource":"*"},
                {"Effect":"Deny","Action":"ecs:DeleteCluster","Resource":"*"}]}"#,
        );
        let session = set(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["ecs:Describe*","ecs:DeleteCluster","iam:*"],"Resource":"*"},
                {"Effect":"Deny","Action":"ecs:DescribeTasks","Resource":"*"}]}"#,
        );
        let ctx = Context::new();
        let decided = |action: &str| {
            let req = Request {
                action,
                resource: "*",
                context: &ctx,
            };
            decide(&role, Some(&session), &req)
        };
        use Decision::*;
        assert_eq!(decided("ecs:DescribeClusters"), (Allow, Refuser::Identity));
        assert_eq!(
            decided("ecs:ListClusters"),
            (ImplicitDeny, Refuser::Session)
        );
        assert_eq!(
            decided("ecs:DescribeTasks"),
            (ExplicitDeny, Refuser::Session)
        );
        assert_eq!(
            decided("ecs:DeleteCluster"),
            (ExplicitDeny, Refuser::Identity)
        );
        assert_eq!(decided("iam:GetRole"), (ImplicitDeny, Refuser::Identity));
        let bounded = Policies::Bounded { role, session };
        let bob = user();
        let call = |action| Call {
            action,
            resources: vec![],
        };
        let mut base = base_context(&bob, "us-east-1", None, 0);
        assert!(authorize(
            &bounded,
            &bob,
            &mut base,
            &call("ecs:DescribeServices"),
            Wording::Json
        )
        .is_ok());
        let e = authorize(
            &bounded,
            &bob,
            &mut base,
            &call("ecs:ListClusters"),
            Wording::Json,
        )
        .unwrap_err();
        assert!(
            e.message
                .ends_with("because no session policy allows the ecs:ListClusters action"),
            "{}",
            e.message
        );
        let e = authorize(
            &bounded,
            &bob,
            &mut base,
            &call("ecs:DescribeTasks"),
            Wording::Json,
        )
        .unwrap_err();
        assert!(
            e.message
                .ends_with("with an explicit deny in a session policy"),
            "{}",
            e.message
        );
        let e = authorize(
            &bounded,
            &bob,
            &mut base,
            &call("ecs:DeleteCluster"),
            Wording::Json,
        )
        .unwrap_err();
        assert!(
            e.message
                .ends_with("with an explicit deny in an identity-based policy"),
            "{}",
            e.message
        );
    }

    #[test]
    fn roots_are_never_denied_and_source_ip_conditions_apply() {
        let root = Caller::root("111111111111");
        assert!(matches!(
            policies(&Index::default(), &root, &Default::default()),
            Policies::Unrestricted
        ));
        let p = only(
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"ecs:*","Resource":"*",
                "Condition":{"IpAddress":{"aws:SourceIp":"127.0.0.0/8"}}}}"#,
        );
        let call = Call {
            action: "ecs:ListClusters",
            resources: vec![],
        };
        let bob = user();
        let from = |ip| base_context(&bob, "us-east-1", Some(ip), 0);
        // The time keys are written out when read.
        let later = base_context(&bob, "us-east-1", None, 1_700_000_000);
        assert_eq!(
            later.get("aws:currenttime"),
            Some(&[Cow::from("2023-11-14T22:13:20Z")][..])
        );
        assert_eq!(
            later.get("aws:epochtime"),
            Some(&[Cow::from("1700000000")][..])
        );
        assert!(authorize(&p, &user(), &mut from("127.0.0.9"), &call, Wording::Json).is_ok());
        assert!(authorize(&p, &user(), &mut from("10.0.0.1"), &call, Wording::Json).is_err());
        // An API user with no record (deleted) has no policies at all.
        assert!(
            matches!(policies(&Index::default(), &user(), &Default::default()), Policies::These(ref v) if v.policies().is_empty())
        );
    }

    #[tokio::test]
    async fn gathered_policies_are_kept_until_a_managed_policy_changes() {
        use crate::state::keys::{IamKind, StoreKey};
        use crate::testing::{Harness, ACCOUNT_A};
        let h = Harness::new().await;
        let doc = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"ecs:*","Resource":"*"}}"#;
        h.iam(ACCOUNT_A, "CreateUser", &[("UserName", "bob")])
            .await
            .unwrap();
        h.iam(
            ACCOUNT_A,
            "CreatePolicy",
            &[("PolicyName", "p"), ("PolicyDocument", doc)],
        )
        .await
        .unwrap();
        let arn = format!("arn:aws:iam::{ACCOUNT_A}:policy/p");
        h.iam(
            ACCOUNT_A,
            "AttachUserPolicy",
            &[("UserName", "bob"), ("PolicyArn", &arn)],
        )
        .await
        .unwrap();
        let bob = Caller {
            account: ACCOUNT_A.into(),
            ..user()
        };
        let list = |h: &Harness| match policies(&h.state.read(), &bob, h.state.session_policies()) {
            Policies::These(l) => l,
            _ => panic!("an API user has its own policies, unbounded"),
        };
        let first = list(&h);
        assert_eq!(first.policies().len(), 1);
        assert!(
            Arc::ptr_eq(&first, &list(&h)),
            "the second call reuses the list"
        );
        // Another managed policy made: gathered again, with the same contents.
        h.iam(
            ACCOUNT_A,
            "CreatePolicy",
            &[("PolicyName", "q"), ("PolicyDocument", doc)],
        )
        .await
        .unwrap();
        let again = list(&h);
        assert!(!Arc::ptr_eq(&first, &again));
        assert_eq!(again.policies().len(), 1);
        // The attached policy's record gone (as a delete racing an attach could leave it):
        // the user's next call no longer has it.
        let key = StoreKey::iam(ACCOUNT_A, IamKind::Policy, "p");
        h.state
            .mutate(&key, |index| {
                Ok((
                    crate::state::index::guarded_delete(berth_store::Txn::new(), index, &key),
                    (),
                ))
            })
            .await
            .unwrap();
        assert!(list(&h).policies().is_empty());
    }
}
