//! One caller's identity policies, evaluated together. Which statements an
//! action concerns is worked out once per action and kept: a caller's
//! policies are read far more often than they change, and its calls repeat
//! the same few actions.
use crate::eval::{applies_beyond_action, Decision, Request};
use crate::policy::{Effect, Policy};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Most actions a set keeps an answer for: services have a few hundred, and a
/// caller sending made-up operation names must not grow it without end.
pub const MEMO_ACTIONS: usize = 1024;

/// (policy, statement) of each statement an action concerns, in policy order.
type Concerned = Arc<[(u32, u32)]>;

#[derive(Debug, Default)]
pub struct PolicySet {
    policies: Vec<Arc<Policy>>,
    memo: RwLock<HashMap<Box<str>, Concerned>>,
}

impl PolicySet {
    pub fn new(policies: Vec<Arc<Policy>>) -> PolicySet {
        PolicySet {
            policies,
            memo: RwLock::default(),
        }
    }

    pub fn policies(&self) -> &[Arc<Policy>] {
        &self.policies
    }

    fn concerning(&self, action: &str) -> Concerned {
        let known = self.memo.read().ok().and_then(|m| m.get(action).cloned());
        known.unwrap_or_else(|| {
            let mut found = Vec::new();
            for (p, policy) in self.policies.iter().enumerate() {
                policy
                    .actions
                    .covering(action, |s| found.push((p as u32, s as u32)));
            }
            let found: Concerned = found.into();
            if let Ok(mut m) = self.memo.write() {
                if m.len() < MEMO_ACTIONS {
                    m.insert(action.into(), found.clone());
                }
            }
            found
        })
    }

    /// What [`crate::evaluate`] decides for these policies.
    pub fn evaluate(&self, req: &Request) -> Decision {
        let mut allowed = false;
        for &(p, s) in self.concerning(req.action).iter() {
            let s = &self.policies[p as usize].statements[s as usize];
            if applies_beyond_action(s, req) {
                match s.effect {
                    Effect::Deny => return Decision::ExplicitDeny,
                    Effect::Allow => allowed = true,
                }
            }
        }
        if allowed {
            Decision::Allow
        } else {
            Decision::ImplicitDeny
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Kind;
    use crate::{evaluate, Context};
    use proptest::prelude::*;

    fn parse(statements: &[String]) -> Arc<Policy> {
        let doc = format!(r#"{{"Statement":[{}]}}"#, statements.join(","));
        Arc::new(Policy::parse(&doc, Kind::Identity).unwrap())
    }

    fn decide(set: &PolicySet, action: &str, resource: &str) -> Decision {
        let ctx = Context::new();
        let resource = &format!("arn:aws:s:::{resource}");
        set.evaluate(&Request {
            action,
            resource,
            context: &ctx,
        })
    }

    #[test]
    fn answers_stay_right_past_the_memos_size() {
        let set = PolicySet::new(vec![
            parse(&[
                r#"{"Effect":"Allow","Action":["ecs:describe*","ecs:list*"],"Resource":"*"}"#
                    .into(),
            ]),
            parse(&[
                r#"{"Effect":"Deny","NotAction":"ecs:listclusters","Resource":"arn:aws:s:::x"}"#
                    .into(),
            ]),
        ]);
        for n in 0..MEMO_ACTIONS + 10 {
            assert_eq!(decide(&set, &format!("ecs:list{n}"), "y"), Decision::Allow);
            assert_eq!(
                decide(&set, &format!("ecs:list{n}"), "x"),
                Decision::ExplicitDeny
            );
        }
        assert_eq!(set.memo.read().unwrap().len(), MEMO_ACTIONS);
        // Asked first past the memo's size, then again: the same answers.
        for _ in 0..2 {
            assert_eq!(decide(&set, "ecs:listclusters", "x"), Decision::Allow);
            assert_eq!(decide(&set, "ecs:runtask", "y"), Decision::ImplicitDeny);
            assert_eq!(decide(&set, "ecs:runtask", "x"), Decision::ExplicitDeny);
        }
    }

    /// One statement of a small language: Allow or Deny, Action or NotAction, a resource.
    fn statement() -> impl Strategy<Value = String> {
        (
            any::<bool>(),
            any::<bool>(),
            prop::collection::vec("[ab*?]{1,3}", 1..3),
            "[xy*]",
        )
            .prop_map(|(deny, not, actions, resource)| {
                let effect = if deny { "Deny" } else { "Allow" };
                let key = if not { "NotAction" } else { "Action" };
                let actions: Vec<String> = actions.iter().map(|a| format!("\"s:{a}\"")).collect();
                format!(
                    r#"{{"Effect":"{effect}","{key}":[{}],"Resource":"arn:aws:s:::{resource}"}}"#,
                    actions.join(",")
                )
            })
    }

    proptest! {
        #[test]
        fn a_set_decides_as_its_policies_do(
            policies in prop::collection::vec(prop::collection::vec(statement(), 1..4), 0..4),
            asked in prop::collection::vec(("[ab]{0,3}", "[xy]"), 1..8),
        ) {
            let policies: Vec<Arc<Policy>> = policies.iter().map(|p| parse(p)).collect();
            let set = PolicySet::new(policies.clone());
            let ctx = Context::new();
            // Each question twice: the second answer comes from the memo.
            for (a, r) in asked.iter().chain(asked.iter()) {
                let action = format!("s:{a}");
                let resource = format!("arn:aws:s:::{r}");
                let req = Request { action: &action, resource: &resource, context: &ctx };
                prop_assert_eq!(set.evaluate(&req), evaluate(policies.iter().map(|p| p.as_ref()), &req));
            }
        }
    }
}
