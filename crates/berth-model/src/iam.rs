//! IAM's rules for names, paths, ids and ARNs of roles, users, policies and
//! role sessions, with its `ValidationError` messages.
use berth_api::{ApiError, ErrorCode};

/// `[\w+=,.@-]+`: the characters IAM allows in role, user, policy and session names.
fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_+=,.@-".contains(c)
}

fn constraint(member: &str, value: &str, what: &str) -> ApiError {
    ApiError::new(
        ErrorCode::ValidationError,
        format!("1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: {what}"),
    )
}

/// A name of `min..=max` characters from IAM's name set.
pub fn check_name(member: &str, value: &str, min: usize, max: usize) -> Result<(), ApiError> {
    let n = value.chars().count();
    if n < min || n > max {
        return Err(constraint(
            member,
            value,
            &format!(
                "Member must have length {}",
                if n < min {
                    format!("greater than or equal to {min}")
                } else {
                    format!("less than or equal to {max}")
                }
            ),
        ));
    }
    if !value.chars().all(name_char) {
        return Err(constraint(
            member,
            value,
            "Member must satisfy regular expression pattern: [\\w+=,.@-]+",
        ));
    }
    Ok(())
}

pub fn check_role_name(v: &str) -> Result<(), ApiError> {
    check_name("roleName", v, 1, 64)
}

pub fn check_user_name(v: &str) -> Result<(), ApiError> {
    check_name("userName", v, 1, 64)
}

pub fn check_policy_name(v: &str) -> Result<(), ApiError> {
    check_name("policyName", v, 1, 128)
}

pub fn check_session_name(v: &str) -> Result<(), ApiError> {
    check_name("roleSessionName", v, 2, 64)
}

/// `/` or `/a/b/`: printable ASCII between slashes, up to 512 characters.
pub fn check_path(v: &str) -> Result<(), ApiError> {
    let ok = v.len() <= 512
        && v.starts_with('/')
        && v.ends_with('/')
        && v.chars().all(|c| ('!'..='~').contains(&c));
    if ok {
        Ok(())
    } else {
        Err(constraint(
            "path",
            v,
            "Member must satisfy regular expression pattern: (\\u002F)|(\\u002F[\\u0021-\\u007E]+\\u002F)",
        ))
    }
}

/// IAM's tag limits: 50 tags, keys of 1–128 characters, values up to 256.
pub fn check_tags(tags: &[(String, String)]) -> Result<(), ApiError> {
    if tags.len() > 50 {
        return Err(ApiError::new(
            ErrorCode::LimitExceeded,
            "The number of tags has reached the maximum limit.",
        ));
    }
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > 128 || v.chars().count() > 256 {
            return Err(constraint(
                "tags",
                k,
                "Member must have length less than or equal to 128 (keys) and 256 (values)",
            ));
        }
    }
    Ok(())
}

/// The resource's ARN: `arn:aws:iam::ACCOUNT:{kind}{path}{name}`.
pub fn arn(account: &str, kind: &str, path: &str, name: &str) -> String {
    // Joined in one allocation: every call of an IAM user or role names its caller.
    ["arn:aws:iam::", account, ":", kind, path, name].concat()
}

/// An assumed role's session: `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`.
pub fn session_arn(account: &str, role: &str, session: &str) -> String {
    [
        "arn:aws:sts::",
        account,
        ":assumed-role/",
        role,
        "/",
        session,
    ]
    .concat()
}

/// The parts of an IAM role ARN (`arn:aws:iam::ACCOUNT:role/path/NAME`): account and name.
pub fn parse_role_arn(arn: &str) -> Option<(&str, &str)> {
    let rest = arn.strip_prefix("arn:aws:iam::")?;
    let (account, resource) = rest.split_once(':')?;
    let path_and_name = resource.strip_prefix("role/")?;
    let name = path_and_name.rsplit('/').next()?;
    (is_account_id(account) && !name.is_empty()).then_some((account, name))
}

pub fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// IAM's unique ids: a prefix naming the kind (`AROA` role, `AIDA` user, `ANPA` policy,
/// `AKIA` access key, `ASIA` temporary key) and 16 characters from `random`.
pub fn unique_id(prefix: &str, random: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let tail: String = random
        .iter()
        .take(16)
        .map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char)
        .collect();
    format!("{prefix}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_paths_and_arns() {
        assert!(check_role_name("ecsTaskExecutionRole").is_ok());
        assert!(check_role_name("a+b=c,d.e@f-g_h").is_ok());
        let e = check_role_name("bad name").unwrap_err();
        assert_eq!(e.code, ErrorCode::ValidationError);
        assert!(e.message.contains("at 'roleName'"), "{}", e.message);
        assert!(check_role_name(&"a".repeat(65)).is_err());
        assert!(check_session_name("a").is_err());
        assert!(check_path("/").is_ok());
        assert!(check_path("/ecs/tasks/").is_ok());
        assert!(check_path("ecs").is_err());
        assert!(check_path("/ecs").is_err());
        assert_eq!(
            arn("111111111111", "role", "/ecs/", "web"),
            "arn:aws:iam::111111111111:role/ecs/web"
        );
        assert_eq!(
            parse_role_arn("arn:aws:iam::111111111111:role/ecs/web"),
            Some(("111111111111", "web"))
        );
        assert_eq!(parse_role_arn("arn:aws:iam::111111111111:user/web"), None);
        assert_eq!(parse_role_arn("arn:aws:iam::1111:role/web"), None);
        let id = unique_id(
            "AROA",
            &[
                0, 1, 31, 32, 255, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18,
            ],
        );
        assert_eq!(id.len(), 20);
        assert!(id.starts_with("AROAAB7A7H"), "{id}");
    }
}
