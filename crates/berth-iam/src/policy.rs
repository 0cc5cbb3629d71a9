//! Policy documents: parsed and checked once, as IAM does when a policy is
//! stored, into a form that evaluation reads without allocating.
use crate::condition::Condition;
use crate::pattern::Pattern;
use serde_json::{Map, Value};

/// IAM's limit on one policy document's length, in characters.
pub const MAX_DOCUMENT_CHARS: usize = 131072;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V2008_10_17,
    /// The version with policy variables (`${aws:username}`).
    V2012_10_17,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

/// Where a policy is attached: to an identity, or to a resource (a role's trust policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Identity,
    /// Statements name a `Principal` (or `NotPrincipal`).
    Resource,
}

/// A string of the policy: a wildcard pattern, or with the 2012 version and a `${…}`
/// in it, a template resolved from the request's context before matching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    pub pattern: Pattern,
    pub template: Option<String>,
}

impl Text {
    pub fn new(s: &str, fold: bool, version: Version) -> Text {
        let template = (version == Version::V2012_10_17 && s.contains("${")).then(|| s.to_string());
        Text {
            pattern: Pattern::new(s, fold),
            template,
        }
    }
}

/// `Action` or `NotAction`, `Resource` or `NotResource`, `Principal` or `NotPrincipal`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Matcher<T> {
    Is(Vec<T>),
    Not(Vec<T>),
}

/// A `Principal` element's entries, by type.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Principals {
    /// `"Principal": "*"` or `{"AWS": "*"}`.
    pub anyone: bool,
    /// Account ids, `arn:aws:iam::ACCOUNT:root`, and user, role and session ARNs.
    pub aws: Vec<String>,
    pub service: Vec<String>,
    pub federated: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub sid: Option<String>,
    pub effect: Effect,
    pub principal: Option<Matcher<Principals>>,
    pub action: Matcher<Text>,
    /// Absent only in resource policies, where the resource is the one the policy is on.
    pub resource: Option<Matcher<Text>>,
    pub conditions: Vec<Condition>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub version: Version,
    pub statements: Vec<Statement>,
    /// Every statement's action patterns in one contiguous buffer, so finding
    /// the statements an action concerns reads one run of memory, not each
    /// statement's own lists (which, cold, cost a cache miss apiece).
    pub actions: ActionIndex,
}

/// The action patterns of all statements, folded, one after another.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ActionIndex {
    text: String,
    /// (statement, NotAction, start, end) of each pattern in `text`.
    entries: Vec<(u32, bool, u32, u32)>,
}

impl ActionIndex {
    fn new(statements: &[Statement]) -> ActionIndex {
        let mut ix = ActionIndex::default();
        for (i, s) in statements.iter().enumerate() {
            let (not, list) = match &s.action {
                Matcher::Is(l) => (false, l),
                Matcher::Not(l) => (true, l),
            };
            for t in list {
                let p = t.pattern.text();
                let start = ix.text.len() as u32;
                ix.text.push_str(p);
                ix.entries
                    .push((i as u32, not, start, ix.text.len() as u32));
            }
        }
        ix
    }

    /// Calls `each` with the index of every statement whose Action (or
    /// NotAction) covers `action` (folded), in order. Patterns are stored in
    /// statement order, so one pass decides each statement in turn.
    pub fn covering(&self, action: &str, mut each: impl FnMut(usize)) {
        let mut current: Option<(u32, bool, bool)> = None;
        let decide = |(i, not, matched): (u32, bool, bool), each: &mut dyn FnMut(usize)| {
            if matched != not {
                each(i as usize);
            }
        };
        for &(i, not, start, end) in &self.entries {
            let p = &self.text.as_bytes()[start as usize..end as usize];
            match current {
                Some((ci, _, _)) if ci == i => {}
                Some(done) => {
                    decide(done, &mut each);
                    current = Some((i, not, false));
                }
                None => current = Some((i, not, false)),
            }
            if let Some((_, _, matched)) = current.as_mut() {
                if !*matched && (p == b"*" || crate::pattern::glob(p, action.as_bytes())) {
                    *matched = true;
                }
            }
        }
        if let Some(done) = current {
            decide(done, &mut each);
        }
    }
}

/// Why IAM refuses a document (`MalformedPolicyDocument`'s message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError(pub String);

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(m: impl Into<String>) -> Result<T, PolicyError> {
    Err(PolicyError(m.into()))
}

/// One string or a list of strings, as every list element of the grammar may be written.
fn strings(v: &Value, field: &str) -> Result<Vec<String>, PolicyError> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|i| match i {
                Value::String(s) => Ok(s.clone()),
                _ => err(format!("Syntax errors in policy: {field} must be strings.")),
            })
            .collect(),
        Value::Array(_) => err(format!(
            "Syntax errors in policy: {field} is an empty list."
        )),
        _ => err(format!(
            "Syntax errors in policy: {field} must be a string or a list of strings."
        )),
    }
}

impl Policy {
    pub fn parse(text: &str, kind: Kind) -> Result<Policy, PolicyError> {
        if text.chars().count() > MAX_DOCUMENT_CHARS {
            return err(format!(
                "Cannot exceed quota for PolicySize: {MAX_DOCUMENT_CHARS}"
            ));
        }
        let doc: Value = serde_json::from_str(text)
            .map_err(|_| PolicyError("Syntax errors in policy.".into()))?;
        let Value::Object(doc) = doc else {
            return err("Syntax errors in policy.");
        };
        for k in doc.keys() {
            if !["Version", "Id", "Statement"].contains(&k.as_str()) {
                return err(format!("Syntax errors in policy: unknown field {k}."));
            }
        }
        let version = match doc.get("Version") {
            None => Version::V2008_10_17,
            Some(Value::String(v)) if v == "2012-10-17" => Version::V2012_10_17,
            Some(Value::String(v)) if v == "2008-10-17" => Version::V2008_10_17,
            Some(_) => return err("The policy failed legacy parsing"),
        };
        let statements = match doc.get("Statement") {
            Some(Value::Object(s)) => vec![s],
            Some(Value::Array(list)) if !list.is_empty() => list
                .iter()
                .map(|s| match s {
                    Value::Object(s) => Ok(s),
                    _ => err("Syntax errors in policy."),
                })
                .collect::<Result<_, _>>()?,
            _ => return err("Syntax errors in policy: missing required field Statement."),
        };
        let statements = statements
            .into_iter()
            .map(|s| statement(s, kind, version))
            .collect::<Result<Vec<Statement>, _>>()?;
        let actions = ActionIndex::new(&statements);
        Ok(Policy {
            version,
            statements,
            actions,
        })
    }
}

fn one_of<'a>(
    s: &'a Map<String, Value>,
    is: &str,
    not: &str,
) -> Result<Option<(bool, &'a Value)>, PolicyError> {
    match (s.get(is), s.get(not)) {
        (Some(_), Some(_)) => err(format!(
            "Syntax errors in policy: a statement may have {is} or {not}, not both."
        )),
        (Some(v), None) => Ok(Some((false, v))),
        (None, Some(v)) => Ok(Some((true, v))),
        (None, None) => Ok(None),
    }
}

fn texts(v: &Value, field: &str, fold: bool, version: Version) -> Result<Vec<Text>, PolicyError> {
    Ok(strings(v, field)?
        .iter()
        .map(|s| Text::new(s, fold, version))
        .collect())
}

fn statement(
    s: &Map<String, Value>,
    kind: Kind,
    version: Version,
) -> Result<Statement, PolicyError> {
    const FIELDS: [&str; 9] = [
        "Sid",
        "Effect",
        "Principal",
        "NotPrincipal",
        "Action",
        "NotAction",
        "Resource",
        "NotResource",
        "Condition",
    ];
    if let Some(k) = s.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return err(format!("Syntax errors in policy: unknown field {k}."));
    }
    let sid = match s.get("Sid") {
        None => None,
        Some(Value::String(v)) => Some(v.clone()),
        Some(_) => return err("Syntax errors in policy: Sid must be a string."),
    };
    let effect = match s.get("Effect") {
        Some(Value::String(e)) if e == "Allow" => Effect::Allow,
        Some(Value::String(e)) if e == "Deny" => Effect::Deny,
        Some(Value::String(e)) => return err(format!("Invalid effect: {e}")),
        _ => return err("Missing required field Effect"),
    };
    let principal = match (kind, one_of(s, "Principal", "NotPrincipal")?) {
        (Kind::Identity, Some(_)) => return err("Policy document should not specify a principal."),
        (Kind::Identity, None) => None,
        (Kind::Resource, None) => return err("Missing required field Principal"),
        (Kind::Resource, Some((not, v))) => {
            let p = principals(v)?;
            Some(if not {
                Matcher::Not(vec![p])
            } else {
                Matcher::Is(vec![p])
            })
        }
    };
    let action = match one_of(s, "Action", "NotAction")? {
        None => return err("Policy statement must contain actions."),
        Some((not, v)) => {
            let list = texts(v, "Action", true, Version::V2008_10_17)?;
            for strings in strings(v, "Action")? {
                if strings != "*" && !strings.contains(':') {
                    return err(
                        "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc.",
                    );
                }
            }
            if not {
                Matcher::Not(list)
            } else {
                Matcher::Is(list)
            }
        }
    };
    let resource = match (kind, one_of(s, "Resource", "NotResource")?) {
        (Kind::Identity, None) => return err("Policy statement must contain resources."),
        (_, None) => None,
        (_, Some((not, v))) => {
            let list = texts(v, "Resource", false, version)?;
            for r in strings(v, "Resource")? {
                if r != "*" && !r.starts_with("arn:") {
                    return err(format!("Resource {r} must be in ARN format or \"*\"."));
                }
            }
            Some(if not {
                Matcher::Not(list)
            } else {
                Matcher::Is(list)
            })
        }
    };
    let conditions = match s.get("Condition") {
        None => vec![],
        Some(Value::Object(c)) => crate::condition::parse(c, version)?,
        Some(_) => return err("Syntax errors in policy: Condition must be an object."),
    };
    Ok(Statement {
        sid,
        effect,
        principal,
        action,
        resource,
        conditions,
    })
}

fn principals(v: &Value) -> Result<Principals, PolicyError> {
    let mut p = Principals::default();
    match v {
        Value::String(s) if s == "*" => p.anyone = true,
        Value::Object(m) if !m.is_empty() => {
            for (kind, values) in m {
                let values = strings(values, "Principal")?;
                match kind.as_str() {
                    "AWS" => {
                        for a in values {
                            if a == "*" {
                                p.anyone = true;
                            } else if is_account_id(&a)
                                || a.starts_with("arn:aws:iam::")
                                || a.starts_with("arn:aws:sts::")
                            {
                                p.aws.push(a);
                            } else {
                                return err(format!(
                                    "Invalid principal in policy: \"AWS\":\"{a}\""
                                ));
                            }
                        }
                    }
                    "Service" => p.service.extend(values),
                    "Federated" => p.federated.extend(values),
                    "CanonicalUser" => {}
                    other => {
                        return err(format!("Invalid principal in policy: \"{other}\""));
                    }
                }
            }
        }
        _ => return err("Invalid principal in policy"),
    }
    Ok(p)
}

pub fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn malformed(doc: &str, kind: Kind) -> String {
        Policy::parse(doc, kind).unwrap_err().0
    }

    #[test]
    fn a_single_statement_or_a_list() {
        let one = Policy::parse(
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"ecs:*","Resource":"*"}}"#,
            Kind::Identity,
        )
        .unwrap();
        assert_eq!(one.version, Version::V2012_10_17);
        assert_eq!(one.statements.len(), 1);
        assert_eq!(
            one.statements[0].action,
            Matcher::Is(vec![Text::new("ecs:*", true, Version::V2008_10_17)])
        );
        let two = Policy::parse(
            r#"{"Statement":[{"Effect":"Deny","NotAction":["iam:*","sts:*"],"NotResource":"arn:aws:ecs:*"},
                             {"Sid":"x","Effect":"Allow","Action":"*","Resource":"*"}]}"#,
            Kind::Identity,
        )
        .unwrap();
        assert_eq!(two.version, Version::V2008_10_17);
        assert!(matches!(two.statements[0].action, Matcher::Not(ref l) if l.len() == 2));
        assert_eq!(two.statements[1].sid.as_deref(), Some("x"));
    }

    #[test]
    fn iam_refuses_what_it_refuses() {
        let id = Kind::Identity;
        assert_eq!(malformed("{", id), "Syntax errors in policy.");
        assert_eq!(
            malformed(
                r#"{"Statement":{"Effect":"Allw","Action":"a:b","Resource":"*"}}"#,
                id
            ),
            "Invalid effect: Allw"
        );
        assert_eq!(
            malformed(
                r#"{"Statement":{"Effect":"Allow","Action":"ab","Resource":"*"}}"#,
                id
            ),
            "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc."
        );
        assert_eq!(
            malformed(r#"{"Statement":{"Effect":"Allow","Action":"a:b"}}"#, id),
            "Policy statement must contain resources."
        );
        assert_eq!(
            malformed(
                r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"a:b","Resource":"*"}}"#,
                id
            ),
            "Policy document should not specify a principal."
        );
        assert_eq!(
            malformed(
                r#"{"Statement":{"Effect":"Allow","Action":"sts:AssumeRole"}}"#,
                Kind::Resource
            ),
            "Missing required field Principal"
        );
        assert_eq!(
            malformed(
                r#"{"Version":"2020-01-01","Statement":{"Effect":"Allow","Action":"a:b","Resource":"*"}}"#,
                id
            ),
            "The policy failed legacy parsing"
        );
        assert!(malformed(
            r#"{"Statement":{"Effect":"Allow","Action":"a:b","NotAction":"c:d","Resource":"*"}}"#,
            id
        )
        .contains("not both"));
        assert_eq!(
            malformed(
                r#"{"Statement":{"Effect":"Allow","Action":"a:b","Resource":"cluster/x"}}"#,
                id
            ),
            "Resource cluster/x must be in ARN format or \"*\"."
        );
    }

    #[test]
    fn trust_policy_principals() {
        let p = Policy::parse(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
                "Principal":{"Service":"ecs-tasks.amazonaws.com","AWS":["111111111111","arn:aws:iam::222222222222:user/bob"]},
                "Action":"sts:AssumeRole"}]}"#,
            Kind::Resource,
        )
        .unwrap();
        let Some(Matcher::Is(ref ps)) = p.statements[0].principal else {
            panic!("a principal")
        };
        assert_eq!(ps[0].service, vec!["ecs-tasks.amazonaws.com"]);
        assert_eq!(ps[0].aws.len(), 2);
        assert!(Policy::parse(
            r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":"bob"},"Action":"sts:AssumeRole"}}"#,
            Kind::Resource
        )
        .is_err());
    }
}
