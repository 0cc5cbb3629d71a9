//! One caller's identity policies, evaluated together. A caller's policies
//! are read far more often than they change, and its calls repeat the same
//! few actions on the same few resources: which statements an action
//! concerns is worked out once per action, and each decision is kept under
//! everything it depends on (the resource and the values of the condition
//! keys those statements read), so a repeated call is decided by one lookup.
use crate::condition::Operand;
use crate::context::Context;
use crate::eval::{applies_beyond_action, folded, Decision, Request};
use crate::policy::{Effect, Matcher, Policy, Statement};
use rustc_hash::FxHashMap;
use std::sync::{Arc, Mutex, RwLock};

/// Most actions a set keeps an answer for: services have a few hundred, and a
/// caller sending made-up operation names must not grow it without end.
pub const MEMO_ACTIONS: usize = 1024;

/// Most decisions kept per action; past it they are forgotten and kept anew
/// (a condition on the time makes a new one every second).
pub const MEMO_DECISIONS: usize = 256;

/// What one action concerns.
#[derive(Debug)]
struct Concerned {
    /// (policy, statement) of each statement, in policy order.
    statements: Vec<(u32, u32)>,
    /// The condition keys they read, or `None` when one has a policy variable
    /// (its decision then depends on more than its keys, and is not kept).
    keys: Option<Vec<String>>,
    decisions: Mutex<FxHashMap<String, Decision>>,
}

#[derive(Debug, Default)]
pub struct PolicySet {
    policies: Vec<Arc<Policy>>,
    // A fast hash: both maps are bounded (below), so colliding keys cost little.
    memo: RwLock<FxHashMap<Box<str>, Arc<Concerned>>>,
}

/// The condition keys a statement reads, or `None` if it has a policy variable.
fn keys_read(s: &Statement, into: &mut Vec<String>) -> Option<()> {
    let templated = |m: &Option<Matcher<crate::policy::Text>>| match m {
        Some(Matcher::Is(l) | Matcher::Not(l)) => l.iter().any(|t| t.template.is_some()),
        None => false,
    };
    if templated(&s.resource) {
        return None;
    }
    for c in &s.conditions {
        if c.values.iter().any(|o| matches!(o, Operand::Template(_))) {
            return None;
        }
        if !into.contains(&c.key) {
            into.push(c.key.clone());
        }
    }
    Some(())
}

/// Everything a kept decision depends on: the resource, then each key's values
/// (or that it is absent), separated by bytes no ARN or value holds.
fn decision_key(resource: &str, keys: &[String], ctx: &Context) -> String {
    let mut out = String::with_capacity(resource.len() + 16 * keys.len());
    out.push_str(resource);
    for k in keys {
        match ctx.get(k) {
            None => out.push('\u{1}'),
            Some(values) => {
                out.push('\u{2}');
                for v in values {
                    out.push_str(v);
                    out.push('\u{0}');
                }
            }
        }
    }
    out
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

    fn statement(&self, (p, s): (u32, u32)) -> &Statement {
        &self.policies[p as usize].statements[s as usize]
    }

    /// Kept under the action as the call names it: a service names each the same
    /// way every time, so a repeated call folds nothing.
    fn concerning(&self, action: &str) -> Arc<Concerned> {
        let known = self.memo.read().ok().and_then(|m| m.get(action).cloned());
        known.unwrap_or_else(|| {
            let folded = folded(action);
            let mut statements = Vec::new();
            for (p, policy) in self.policies.iter().enumerate() {
                policy
                    .actions
                    .covering(&folded, |s| statements.push((p as u32, s as u32)));
            }
            let mut keys = Some(Vec::new());
            for &at in &statements {
                if let Some(into) = keys.as_mut() {
                    if keys_read(self.statement(at), into).is_none() {
                        keys = None;
                    }
                }
            }
            let found = Arc::new(Concerned {
                statements,
                keys,
                decisions: Mutex::default(),
            });
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
        let concerned = self.concerning(req.action);
        let Some(keys) = &concerned.keys else {
            return self.decide(&concerned, req);
        };
        let key = decision_key(req.resource, keys, req.context);
        let kept = concerned
            .decisions
            .lock()
            .ok()
            .and_then(|d| d.get(&key).copied());
        if let Some(d) = kept {
            return d;
        }
        let d = self.decide(&concerned, req);
        if let Ok(mut kept) = concerned.decisions.lock() {
            if kept.len() >= MEMO_DECISIONS {
                kept.clear();
            }
            kept.insert(key, d);
        }
        d
    }

    /// The statements' own verdict, Deny first.
    fn decide(&self, concerned: &Concerned, req: &Request) -> Decision {
        let mut allowed = false;
        for &at in &concerned.statements {
            let s = self.statement(at);
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
    fn actions_match_in_any_case_each_spelling_kept_apart() {
        let set = PolicySet::new(vec![parse(&[
            r#"{"Effect":"Allow","Action":"ecs:Describe*","Resource":"*"}"#.into(),
        ])]);
        for _ in 0..2 {
            assert_eq!(decide(&set, "ecs:DescribeClusters", "c"), Decision::Allow);
            assert_eq!(decide(&set, "ECS:describeclusters", "c"), Decision::Allow);
            assert_eq!(
                decide(&set, "ECS:ListClusters", "c"),
                Decision::ImplicitDeny
            );
        }
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

    #[test]
    fn kept_decisions_follow_the_keys_and_resources_they_read() {
        let set = PolicySet::new(vec![parse(&[
            r#"{"Effect":"Allow","Action":"ecs:*","Resource":"arn:aws:s:::*",
                "Condition":{"StringEquals":{"aws:RequestedRegion":"us-east-1"}}}"#
                .into(),
        ])]);
        let ask = |region: Option<&str>, resource: &str| {
            let mut ctx = Context::new();
            if let Some(r) = region {
                ctx.set("aws:requestedregion", r.to_string());
            }
            set.evaluate(&Request {
                action: "ecs:runtask",
                resource,
                context: &ctx,
            })
        };
        for _ in 0..2 {
            assert_eq!(ask(Some("us-east-1"), "arn:aws:s:::a"), Decision::Allow);
            assert_eq!(
                ask(Some("eu-west-1"), "arn:aws:s:::a"),
                Decision::ImplicitDeny
            );
            assert_eq!(ask(None, "arn:aws:s:::a"), Decision::ImplicitDeny);
            assert_eq!(
                ask(Some("us-east-1"), "arn:aws:t:::a"),
                Decision::ImplicitDeny
            );
        }
        // Past the limit the kept decisions are forgotten, and still right after.
        for n in 0..MEMO_DECISIONS + 5 {
            let r = format!("arn:aws:s:::{n}");
            assert_eq!(ask(Some("us-east-1"), &r), Decision::Allow);
        }
        let concerned = set.concerning("ecs:runtask");
        assert!(concerned.decisions.lock().unwrap().len() <= MEMO_DECISIONS);
        assert_eq!(
            concerned.keys.as_deref(),
            Some(&["aws:requestedregion".to_string()][..])
        );
        assert_eq!(
            ask(Some("eu-west-1"), "arn:aws:s:::a"),
            Decision::ImplicitDeny
        );
    }

    /// One statement of a small language: Allow or Deny, Action or NotAction, a
    /// resource, and maybe a condition on key `k:a` (or `k:b`), plain, negated,
    /// `Null`, or with a policy variable.
    fn statement() -> impl Strategy<Value = String> {
        (
            any::<bool>(),
            any::<bool>(),
            prop::collection::vec("[ab*?]{1,3}", 1..3),
            "[xy*]",
            prop::option::of((0..4usize, "[ab]", "[xy]")),
        )
            .prop_map(|(deny, not, actions, resource, condition)| {
                let effect = if deny { "Deny" } else { "Allow" };
                let key = if not { "NotAction" } else { "Action" };
                let actions: Vec<String> = actions.iter().map(|a| format!("\"s:{a}\"")).collect();
                let condition = match condition {
                    None => String::new(),
                    Some((op, k, v)) => {
                        let (op, v) = match op {
                            0 => ("StringEquals", v),
                            1 => ("StringNotEquals", v),
                            2 => ("Null", "true".to_string()),
                            _ => ("StringEquals", "${k:b}".to_string()),
                        };
                        format!(r#","Condition":{{"{op}":{{"k:{k}":"{v}"}}}}"#)
                    }
                };
                format!(
                    r#"{{"Effect":"{effect}","{key}":[{}],"Resource":"arn:aws:s:::{resource}"{condition}}}"#,
                    actions.join(",")
                )
            })
    }

    proptest! {
        #[test]
        fn a_set_decides_as_its_policies_do(
            policies in prop::collection::vec(prop::collection::vec(statement(), 1..4), 0..4),
            asked in prop::collection::vec(("[abAB]{0,3}", "[xy]", prop::option::of("[xyz]"), prop::option::of("[xy]")), 1..8),
        ) {
            let policies: Vec<Arc<Policy>> = policies.iter().map(|p| parse(p)).collect();
            let set = PolicySet::new(policies.clone());
            // Each question twice: the second answer comes from the memo.
            for (a, r, ka, kb) in asked.iter().chain(asked.iter()) {
                let mut ctx = Context::new();
                if let Some(v) = ka {
                    ctx.set("k:a", v.clone());
                }
                if let Some(v) = kb {
                    ctx.set("k:b", v.clone());
                }
                let action = format!("s:{a}");
                let resource = format!("arn:aws:s:::{r}");
                let req = Request { action: &action, resource: &resource, context: &ctx };
                prop_assert_eq!(set.evaluate(&req), evaluate(policies.iter().map(|p| p.as_ref()), &req));
            }
        }
    }
}
