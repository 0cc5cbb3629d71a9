//! Secrets Manager and Parameter Store rules: names, ARNs, staging labels,
//! and how a task definition's `valueFrom` names a value.
use crate::Scope;

/// The staging label of a secret's current value.
pub const AWSCURRENT: &str = "AWSCURRENT";
/// The label the current value's predecessor keeps.
pub const AWSPREVIOUS: &str = "AWSPREVIOUS";

/// Secrets Manager's names: 1–512 of `A-Za-z0-9/_+=.@-`.
pub fn secret_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 512
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_+=.@-".contains(&b))
}

/// A secret's ARN: its name, a hyphen and six random characters.
pub fn secret_arn(scope: &Scope, name: &str, suffix: &str) -> String {
    format!(
        "arn:aws:secretsmanager:{}:{}:secret:{name}-{suffix}",
        scope.region, scope.account
    )
}

/// How a request names a secret: by name, or by a full or partial ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretId<'a> {
    Name(&'a str),
    /// `arn:…:secret:NAME-AbCdEf` or `arn:…:secret:NAME`: the text after `secret:`,
    /// which is the name, or the name and the suffix.
    Arn(&'a str),
    /// An ARN of another account or region, or not a secret's.
    Elsewhere,
}

pub fn secret_id<'a>(scope: &Scope, id: &'a str) -> SecretId<'a> {
    let Some(rest) = id.strip_prefix("arn:") else {
        return SecretId::Name(id);
    };
    let mut p = rest.splitn(6, ':');
    let (partition, service, region, account, resource) =
        (p.next(), p.next(), p.next(), p.next(), p.next());
    let tail = p.next();
    match (partition, service, resource, tail) {
        (Some("aws"), Some("secretsmanager"), Some("secret"), Some(tail))
            if region == Some(scope.region.as_str()) && account == Some(scope.account.as_str()) =>
        {
            SecretId::Arn(tail)
        }
        _ => SecretId::Elsewhere,
    }
}

/// Whether the text after `secret:` in an ARN names the secret `name` with `suffix`.
pub fn arn_names(tail: &str, name: &str, suffix: &str) -> bool {
    tail == name
        || tail
            .strip_prefix(name)
            .and_then(|t| t.strip_prefix('-'))
            .is_some_and(|s| s == suffix)
}

/// Moves `AWSCURRENT` to a new version: the old current becomes
/// `AWSPREVIOUS`, which leaves whichever version held it. `stages` of each
/// version by id; `new` is the version that takes the labels `labels`.
pub fn move_stages(stages: &mut Vec<(String, Vec<String>)>, new: &str, labels: &[String]) {
    let takes_current = labels.iter().any(|l| l == AWSCURRENT);
    let old_current = stages
        .iter()
        .find(|(_, s)| s.iter().any(|l| l == AWSCURRENT))
        .map(|(id, _)| id.clone());
    for (id, s) in stages.iter_mut() {
        if id == new {
            continue;
        }
        s.retain(|l| !labels.contains(l));
        if takes_current && old_current.as_deref() != Some(new) {
            s.retain(|l| l != AWSPREVIOUS);
            if old_current.as_deref() == Some(id.as_str()) {
                s.push(AWSPREVIOUS.to_string());
            }
        }
    }
    match stages.iter_mut().find(|(id, _)| id == new) {
        Some((_, s)) => {
            for l in labels {
                if !s.contains(l) {
                    s.push(l.clone());
                }
            }
        }
        None => stages.push((new.to_string(), labels.to_vec())),
    }
}

/// A container's `secrets[].valueFrom` (or a log configuration's `secretOptions`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueFrom {
    /// A Secrets Manager secret: its ARN (without the extra fields), and the
    /// JSON key, staging label or version id the extra fields name.
    Secret {
        secret_id: String,
        json_key: Option<String>,
        version_stage: Option<String>,
        version_id: Option<String>,
    },
    /// An SSM parameter, by name or ARN (GetParameters takes either).
    Parameter { name: String },
}

/// Reads `valueFrom` as ECS does: a Secrets Manager ARN (with up to three
/// more `:`-separated fields), else a parameter's name or ARN.
pub fn value_from(value: &str) -> Result<ValueFrom, String> {
    let parts: Vec<&str> = value.split(':').collect();
    if parts.len() >= 7 && parts[0] == "arn" && parts[2] == "secretsmanager" {
        if parts[5] != "secret" || parts.len() > 10 {
            return Err(format!("invalid secret ARN: {value}"));
        }
        let field = |i: usize| {
            parts
                .get(i)
                .filter(|s| !s.is_empty())
                .map(|s| s.to_string())
        };
        return Ok(ValueFrom::Secret {
            secret_id: parts[..7].join(":"),
            json_key: field(7),
            version_stage: field(8),
            version_id: field(9),
        });
    }
    if value.is_empty() {
        return Err("valueFrom is empty".into());
    }
    Ok(ValueFrom::Parameter {
        name: value.to_string(),
    })
}

/// The value of `key` in a secret that holds a JSON object, as ECS gives it:
/// a string as is, any other JSON value as its JSON text.
pub fn json_key(secret: &str, key: &str) -> Result<String, String> {
    let doc: serde_json::Value = serde_json::from_str(secret)
        .map_err(|_| "the secret value is not a JSON object".to_string())?;
    let obj = doc
        .as_object()
        .ok_or_else(|| "the secret value is not a JSON object".to_string())?;
    match obj.get(key) {
        Some(serde_json::Value::String(s)) => Ok(s.clone()),
        Some(other) => Ok(other.to_string()),
        None => Err(format!("retrieved secret did not contain json key {key}")),
    }
}

/// Parameter Store's names: `A-Za-z0-9_.-/`, not prefixed aws/ssm, a path
/// starts with `/` and has at most 15 levels.
pub fn parameter_name_problem(name: &str) -> Option<&'static str> {
    let bare = name.trim_start_matches('/').to_ascii_lowercase();
    if bare.starts_with("aws") || bare.starts_with("ssm") {
        return Some(
            "Parameter name: can't be prefixed with \"aws\" or \"ssm\" (case-insensitive).",
        );
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_.-/".contains(&b))
    {
        return Some("Parameter name must be a fully qualified name.");
    }
    if name.contains('/') && !name.starts_with('/') {
        return Some("Parameter name must be a fully qualified name.");
    }
    if name.matches('/').count() > 15 {
        return Some("Parameter name hierarchy levels exceed the limit of 15.");
    }
    None
}

/// A parameter's ARN (`parameter/a/b` for `/a/b`, `parameter/name` for `name`).
pub fn parameter_arn(scope: &Scope, name: &str) -> String {
    format!(
        "arn:aws:ssm:{}:{}:parameter/{}",
        scope.region,
        scope.account,
        name.trim_start_matches('/')
    )
}

/// The name a parameter ARN of this scope names, both spellings it may have
/// (`a/b` is `/a/b` when that one exists); None for another scope's ARN.
pub fn parameter_of_arn(scope: &Scope, arn: &str) -> Option<[String; 2]> {
    let prefix = format!("arn:aws:ssm:{}:{}:parameter/", scope.region, scope.account);
    let rest = arn.strip_prefix(&prefix)?;
    Some([format!("/{rest}"), rest.to_string()])
}

/// `name`, `name:3` or `name:label`: the name and which version it selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    Latest,
    Version(i64),
    Label(String),
}

pub fn parameter_selector(id: &str) -> (&str, Selector) {
    // An ARN's colons are its own; the selector follows the last one after `parameter/`.
    let start = id.find("parameter/").map_or(0, |i| i + "parameter/".len());
    match id[start..].rfind(':') {
        Some(i) => {
            let (name, sel) = (&id[..start + i], &id[start + i + 1..]);
            match sel.parse::<i64>() {
                Ok(v) => (name, Selector::Version(v)),
                Err(_) => (name, Selector::Label(sel.to_string())),
            }
        }
        None => (id, Selector::Latest),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> Scope {
        Scope::new("111111111111", "us-east-1")
    }

    #[test]
    fn secret_ids_by_name_full_and_partial_arn() {
        let s = scope();
        assert_eq!(secret_id(&s, "db/pass"), SecretId::Name("db/pass"));
        let full = secret_arn(&s, "db/pass", "AbCdEf");
        assert_eq!(
            full,
            "arn:aws:secretsmanager:us-east-1:111111111111:secret:db/pass-AbCdEf"
        );
        let SecretId::Arn(tail) = secret_id(&s, &full) else {
            panic!("not an ARN")
        };
        assert!(arn_names(tail, "db/pass", "AbCdEf"));
        assert!(!arn_names(tail, "db/pass", "XyZxYz"));
        assert!(arn_names("db/pass", "db/pass", "AbCdEf"));
        assert!(!arn_names("db/pas", "db/pass", "AbCdEf"));
        let other = "arn:aws:secretsmanager:eu-west-1:111111111111:secret:db/pass-AbCdEf";
        assert_eq!(secret_id(&s, other), SecretId::Elsewhere);
    }

    #[test]
    fn a_new_current_version_makes_the_old_one_previous() {
        let mut st = vec![];
        move_stages(&mut st, "v1", &[AWSCURRENT.into()]);
        move_stages(&mut st, "v2", &[AWSCURRENT.into()]);
        assert_eq!(
            st,
            vec![
                ("v1".into(), vec![AWSPREVIOUS.to_string()]),
                ("v2".into(), vec![AWSCURRENT.to_string()])
            ]
        );
        move_stages(&mut st, "v3", &[AWSCURRENT.into(), "blue".into()]);
        assert_eq!(st[0].1, Vec::<String>::new());
        assert_eq!(st[1].1, vec![AWSPREVIOUS.to_string()]);
        assert_eq!(st[2].1, vec![AWSCURRENT.to_string(), "blue".into()]);
        // A custom label only moves that label.
        move_stages(&mut st, "v1", &["blue".into()]);
        assert_eq!(st[0].1, vec!["blue".to_string()]);
        assert_eq!(st[2].1, vec![AWSCURRENT.to_string()]);
    }

    #[test]
    fn value_from_reads_secret_fields_and_parameters() {
        let arn = "arn:aws:secretsmanager:us-east-1:111111111111:secret:db-AbCdEf";
        assert_eq!(
            value_from(&format!("{arn}:password::")).unwrap(),
            ValueFrom::Secret {
                secret_id: arn.into(),
                json_key: Some("password".into()),
                version_stage: None,
                version_id: None
            }
        );
        assert_eq!(
            value_from(&format!("{arn}::AWSPREVIOUS:")).unwrap(),
            ValueFrom::Secret {
                secret_id: arn.into(),
                json_key: None,
                version_stage: Some("AWSPREVIOUS".into()),
                version_id: None
            }
        );
        assert_eq!(
            value_from("/app/db/url").unwrap(),
            ValueFrom::Parameter {
                name: "/app/db/url".into()
            }
        );
        let p = "arn:aws:ssm:us-east-1:111111111111:parameter/app/db";
        assert_eq!(
            value_from(p).unwrap(),
            ValueFrom::Parameter { name: p.into() }
        );
        assert!(value_from(&format!("{arn}:a:b:c:d")).is_err());
    }

    #[test]
    fn json_keys_give_strings_bare_and_other_values_as_json() {
        let s = r#"{"username":"app","port":5432}"#;
        assert_eq!(json_key(s, "username").unwrap(), "app");
        assert_eq!(json_key(s, "port").unwrap(), "5432");
        assert!(json_key(s, "password")
            .unwrap_err()
            .contains("json key password"));
        assert!(json_key("plain", "k").is_err());
    }

    #[test]
    fn parameter_names_arns_and_selectors() {
        assert_eq!(parameter_name_problem("/app/db"), None);
        assert_eq!(parameter_name_problem("plain"), None);
        assert!(parameter_name_problem("/aws/x").is_some());
        assert!(parameter_name_problem("SSMthing").is_some());
        assert!(parameter_name_problem("a/b").is_some());
        assert!(parameter_name_problem("/a b").is_some());
        let s = scope();
        let arn = parameter_arn(&s, "/app/db");
        assert_eq!(arn, "arn:aws:ssm:us-east-1:111111111111:parameter/app/db");
        assert_eq!(
            parameter_arn(&s, "plain"),
            "arn:aws:ssm:us-east-1:111111111111:parameter/plain"
        );
        assert_eq!(
            parameter_of_arn(&s, &arn),
            Some(["/app/db".to_string(), "app/db".to_string()])
        );
        assert_eq!(parameter_selector("/a/b"), ("/a/b", Selector::Latest));
        assert_eq!(parameter_selector("/a/b:3"), ("/a/b", Selector::Version(3)));
        assert_eq!(
            parameter_selector("/a/b:prod"),
            ("/a/b", Selector::Label("prod".into()))
        );
        assert_eq!(parameter_selector(&arn), (arn.as_str(), Selector::Latest));
        let with = format!("{arn}:2");
        assert_eq!(
            parameter_selector(&with),
            (arn.as_str(), Selector::Version(2))
        );
    }
}
