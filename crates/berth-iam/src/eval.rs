//! AWS's evaluation logic: an explicit Deny wins, then an Allow, else the default deny.
use crate::context::Context;
use crate::policy::{Effect, Matcher, Policy, Principals, Statement, Text};
use std::borrow::Cow;

/// One action on one resource, with the call's condition keys.
pub struct Request<'a> {
    /// `service:Operation` in any case: actions match case-insensitively.
    pub action: &'a str,
    /// The resource's ARN, or `*` for actions that name none.
    pub resource: &'a str,
    pub context: &'a Context<'a>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    ExplicitDeny,
    /// No statement allows it.
    ImplicitDeny,
}

/// Who asks, as a resource policy's `Principal` sees them.
pub struct Caller<'a> {
    pub account: &'a str,
    /// The caller's ARNs: a user's, or a session's and its role's.
    pub arns: &'a [String],
    /// A service principal such as `ecs-tasks.amazonaws.com`.
    pub service: Option<&'a str>,
}

/// How a resource policy's principal named the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Named {
    No,
    /// Its account (`111111111111` or `arn:aws:iam::111111111111:root`), or `*`: the
    /// caller's own policies must allow the action too.
    Account,
    /// The caller itself, or its service.
    Exactly,
}

fn text_matches(t: &Text, value: &str, ctx: &Context) -> bool {
    match &t.template {
        None => t.pattern.matches(value),
        Some(tpl) => ctx
            .substitute(tpl)
            .is_some_and(|s| crate::pattern::Pattern::new(&s, false).matches(value)),
    }
}

fn matcher(m: &Matcher<Text>, value: &str, ctx: &Context) -> bool {
    match m {
        Matcher::Is(list) => list.iter().any(|t| text_matches(t, value, ctx)),
        Matcher::Not(list) => !list.iter().any(|t| text_matches(t, value, ctx)),
    }
}

/// Whether a statement whose action already matched applies: its resource and conditions.
pub(crate) fn applies_beyond_action(s: &Statement, req: &Request) -> bool {
    s.resource
        .as_ref()
        .is_none_or(|r| matcher(r, req.resource, req.context))
        && s.conditions.iter().all(|c| c.holds(req.context))
}

/// An action as policies store theirs: folded to lowercase (a copy only when needed).
pub(crate) fn folded(action: &str) -> Cow<'_, str> {
    if action.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(action.to_ascii_lowercase())
    } else {
        Cow::Borrowed(action)
    }
}

fn applies(s: &Statement, action: &str, req: &Request) -> bool {
    matcher(&s.action, action, req.context) && applies_beyond_action(s, req)
}

/// The decision of a caller's identity policies (and permission boundaries are not modelled).
pub fn evaluate<'p>(policies: impl IntoIterator<Item = &'p Policy>, req: &Request) -> Decision {
    let action = folded(req.action);
    let mut allowed = false;
    for p in policies {
        let mut denied = false;
        p.actions.covering(&action, |i| {
            let s = &p.statements[i];
            if !denied && applies_beyond_action(s, req) {
                match s.effect {
                    Effect::Deny => denied = true,
                    Effect::Allow => allowed = true,
                }
            }
        });
        if denied {
            return Decision::ExplicitDeny;
        }
    }
    if allowed {
        Decision::Allow
    } else {
        Decision::ImplicitDeny
    }
}

fn names(p: &Principals, caller: &Caller) -> Named {
    if caller
        .service
        .is_some_and(|s| p.service.iter().any(|x| x == s))
    {
        return Named::Exactly;
    }
    if p.aws.iter().any(|a| caller.arns.iter().any(|c| c == a)) {
        return Named::Exactly;
    }
    let root = format!("arn:aws:iam::{}:root", caller.account);
    let account =
        caller.service.is_none() && p.aws.iter().any(|a| a == caller.account || *a == root);
    if account || p.anyone {
        Named::Account
    } else {
        Named::No
    }
}

/// A resource policy's decision for a caller (a role's trust policy for `sts:AssumeRole`),
/// and how the allowing statement named the caller.
pub fn evaluate_resource_policy(
    policy: &Policy,
    caller: &Caller,
    req: &Request,
) -> (Decision, Named) {
    let action = folded(req.action);
    let mut best = Named::No;
    for s in &policy.statements {
        let named = match &s.principal {
            Some(Matcher::Is(ps)) => ps
                .iter()
                .map(|p| names(p, caller))
                .max()
                .unwrap_or(Named::No),
            Some(Matcher::Not(ps)) => {
                if ps.iter().all(|p| names(p, caller) == Named::No) {
                    Named::Account
                } else {
                    Named::No
                }
            }
            None => Named::No,
        };
        if named == Named::No || !applies(s, &action, req) {
            continue;
        }
        match s.effect {
            Effect::Deny => return (Decision::ExplicitDeny, named),
            Effect::Allow => best = best.max(named),
        }
    }
    if best == Named::No {
        (Decision::ImplicitDeny, best)
    } else {
        (Decision::Allow, best)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Kind;
    use proptest::prelude::*;

    fn policy(statements: &str) -> Policy {
        Policy::parse(
            &format!(r#"{{"Version":"2012-10-17","Statement":{statements}}}"#),
            Kind::Identity,
        )
        .unwrap()
    }

    fn decide<'a>(
        ps: impl IntoIterator<Item = &'a Policy>,
        action: &str,
        resource: &str,
    ) -> Decision {
        let ctx = Context::new();
        evaluate(
            ps,
            &Request {
                action,
                resource,
                context: &ctx,
            },
        )
    }

    const PROD: &str = "arn:aws:ecs:us-east-1:111111111111:cluster/prod";
    const DEV: &str = "arn:aws:ecs:us-east-1:111111111111:cluster/dev";

    #[test]
    fn deny_wins_then_allow_then_default_deny() {
        let allow = policy(r#"[{"Effect":"Allow","Action":"ecs:Describe*","Resource":"*"}]"#);
        let deny = policy(&format!(
            r#"[{{"Effect":"Deny","Action":"ecs:*","Resource":"{PROD}"}}]"#
        ));
        assert_eq!(
            decide([&allow], "ecs:DescribeClusters", PROD),
            Decision::Allow
        );
        assert_eq!(
            decide([&allow], "ecs:RunTask", PROD),
            Decision::ImplicitDeny
        );
        let both = [allow, deny];
        assert_eq!(
            decide(&both, "ecs:DescribeClusters", PROD),
            Decision::ExplicitDeny
        );
        assert_eq!(decide(&both, "ecs:DescribeClusters", DEV), Decision::Allow);
        assert_eq!(
            decide([], "ecs:DescribeClusters", DEV),
            Decision::ImplicitDeny
        );
    }

    #[test]
    fn not_action_and_not_resource() {
        let p = policy(&format!(
            r#"[{{"Effect":"Allow","NotAction":"iam:*","NotResource":"{PROD}"}}]"#
        ));
        assert_eq!(decide([&p], "ecs:RunTask", DEV), Decision::Allow);
        assert_eq!(decide([&p], "ecs:RunTask", PROD), Decision::ImplicitDeny);
        assert_eq!(decide([&p], "iam:CreateRole", DEV), Decision::ImplicitDeny);
    }

    #[test]
    fn actions_are_case_insensitive_resources_are_not() {
        let p = policy(
            r#"{"Effect":"Allow","Action":"ECS:describeclusters","Resource":"arn:aws:ecs:*:*:cluster/Prod"}"#,
        );
        assert_eq!(
            decide([&p], "ecs:DescribeClusters", "arn:aws:ecs:r:1:cluster/Prod"),
            Decision::Allow
        );
        assert_eq!(
            decide([&p], "ecs:DescribeClusters", "arn:aws:ecs:r:1:cluster/prod"),
            Decision::ImplicitDeny
        );
    }

    #[test]
    fn conditions_gate_statements() {
        let p = policy(
            r#"{"Effect":"Allow","Action":"ecs:*","Resource":"*","Condition":{"StringEquals":{"aws:RequestedRegion":"eu-west-1"}}}"#,
        );
        let mut ctx = Context::new();
        ctx.set("aws:requestedregion", "us-east-1");
        let req = Request {
            action: "ecs:runtask",
            resource: "*",
            context: &ctx,
        };
        assert_eq!(evaluate([&p], &req), Decision::ImplicitDeny);
        ctx.set("aws:requestedregion", "eu-west-1");
        let req = Request {
            action: "ecs:runtask",
            resource: "*",
            context: &ctx,
        };
        assert_eq!(evaluate([&p], &req), Decision::Allow);
    }

    #[test]
    fn trust_policies_name_callers() {
        let trust = Policy::parse(
            r#"{"Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"},
                             {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:root"},"Action":"sts:AssumeRole"},
                             {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::222222222222:user/bob"},"Action":"sts:AssumeRole"}]}"#,
            Kind::Resource,
        )
        .unwrap();
        let ctx = Context::new();
        let req = Request {
            action: "sts:assumerole",
            resource: "arn:aws:iam::111111111111:role/r",
            context: &ctx,
        };
        let ecs = Caller {
            account: "",
            arns: &[],
            service: Some("ecs-tasks.amazonaws.com"),
        };
        assert_eq!(
            evaluate_resource_policy(&trust, &ecs, &req),
            (Decision::Allow, Named::Exactly)
        );
        let own = ["arn:aws:iam::111111111111:user/alice".to_string()];
        let alice = Caller {
            account: "111111111111",
            arns: &own,
            service: None,
        };
        assert_eq!(
            evaluate_resource_policy(&trust, &alice, &req),
            (Decision::Allow, Named::Account)
        );
        let b = ["arn:aws:iam::222222222222:user/bob".to_string()];
        let bob = Caller {
            account: "222222222222",
            arns: &b,
            service: None,
        };
        assert_eq!(
            evaluate_resource_policy(&trust, &bob, &req),
            (Decision::Allow, Named::Exactly)
        );
        let e = ["arn:aws:iam::222222222222:user/eve".to_string()];
        let eve = Caller {
            account: "222222222222",
            arns: &e,
            service: None,
        };
        assert_eq!(
            evaluate_resource_policy(&trust, &eve, &req),
            (Decision::ImplicitDeny, Named::No)
        );
        let other = Caller {
            account: "",
            arns: &[],
            service: Some("lambda.amazonaws.com"),
        };
        assert_eq!(
            evaluate_resource_policy(&trust, &other, &req).0,
            Decision::ImplicitDeny
        );
    }

    fn effect() -> impl Strategy<Value = &'static str> {
        prop_oneof![Just("Allow"), Just("Deny")]
    }

    fn action() -> impl Strategy<Value = &'static str> {
        prop_oneof![
            Just("ecs:*"),
            Just("ecs:Describe*"),
            Just("ecs:RunTask"),
            Just("iam:*"),
            Just("*")
        ]
    }

    fn resource() -> impl Strategy<Value = &'static str> {
        prop_oneof![
            Just("*"),
            Just(PROD),
            Just(DEV),
            Just("arn:aws:ecs:*:*:cluster/p*")
        ]
    }

    proptest! {
        /// Adding a matching Deny anywhere turns any decision into ExplicitDeny; adding an
        /// Allow never turns an ExplicitDeny into anything else; the order of policies
        /// and statements never matters.
        #[test]
        fn deny_overrides_and_order_does_not_matter(
            stmts in proptest::collection::vec((effect(), action(), resource()), 0..6),
            act in prop_oneof![Just("ecs:DescribeClusters"), Just("ecs:RunTask"), Just("iam:CreateRole")],
            res in prop_oneof![Just(PROD), Just(DEV)],
        ) {
            let as_policy = |list: &[(&str, &str, &str)]| policy(&format!("[{}]", list.iter()
                .map(|(e, a, r)| format!(r#"{{"Effect":"{e}","Action":"{a}","Resource":"{r}"}}"#))
                .collect::<Vec<_>>().join(",")));
            let decision = if stmts.is_empty() { decide([], act, res) } else { decide([&as_policy(&stmts)], act, res) };
            let mut reversed = stmts.clone();
            reversed.reverse();
            if !reversed.is_empty() {
                prop_assert_eq!(decide([&as_policy(&reversed)], act, res), decision);
                let split: Vec<Policy> = reversed.iter().map(|s| as_policy(&[*s])).collect();
                prop_assert_eq!(decide(&split, act, res), decision);
            }
            let mut with_deny = stmts.clone();
            with_deny.push(("Deny", "*", "*"));
            prop_assert_eq!(decide([&as_policy(&with_deny)], act, res), Decision::ExplicitDeny);
            if decision == Decision::ExplicitDeny {
                let mut with_allow = stmts.clone();
                with_allow.push(("Allow", "*", "*"));
                prop_assert_eq!(decide([&as_policy(&with_allow)], act, res), Decision::ExplicitDeny);
            }
            // The model: deny if any matching Deny, else allow if any matching Allow.
            let hits = |e: &str| stmts.iter().any(|(se, a, r)| *se == e
                && crate::pattern::glob(a.to_ascii_lowercase().as_bytes(), act.to_ascii_lowercase().as_bytes())
                && crate::pattern::glob(r.as_bytes(), res.as_bytes()));
            let model = if hits("Deny") { Decision::ExplicitDeny } else if hits("Allow") { Decision::Allow } else { Decision::ImplicitDeny };
            prop_assert_eq!(decision, model);
        }
    }
}
