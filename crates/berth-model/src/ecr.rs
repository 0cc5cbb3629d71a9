//! ECR's rules: repository names, image tags, ARNs and URIs, resource tags,
//! and the image names task definitions give for ECR repositories.
use crate::Scope;
use berth_api::ecr::Tag;
use berth_api::{ApiError, ErrorCode};

/// ECR's repository name expression, as its errors quote it.
pub const REPOSITORY_NAME_PATTERN: &str =
    "(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*";
/// Repositories made without `imageTagMutability` accept pushes over a tag.
pub const DEFAULT_TAG_MUTABILITY: &str = "MUTABLE";
/// A GetAuthorizationToken login lasts twelve hours.
pub const LOGIN_LIFETIME_SECS: i64 = 12 * 3600;
const MAX_TAGS: usize = 50;

/// One path component: lowercase alphanumerics joined by single `.`, `_` or `-`.
fn component_ok(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    !b.is_empty()
        && alnum(b[0])
        && alnum(b[b.len() - 1])
        && b.windows(2).all(|w| alnum(w[0]) || alnum(w[1]))
        && b.iter()
            .all(|&x| alnum(x) || matches!(x, b'.' | b'_' | b'-'))
}

/// Whether a repository name matches ECR's expression.
pub fn repository_name_ok(name: &str) -> bool {
    name.split('/').all(component_ok)
}

/// Checks a repository name as ECR does (its length the model already checked).
pub fn check_repository_name(name: &str) -> Result<(), ApiError> {
    if repository_name_ok(name) {
        return Ok(());
    }
    Err(ApiError::invalid_parameter(format!(
        "Invalid parameter at 'repositoryName' failed to satisfy constraint: 'must satisfy regular expression '{REPOSITORY_NAME_PATTERN}''"
    )))
}

/// An image tag, as the registry protocol allows it.
pub fn image_tag_ok(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&x| x.is_ascii_alphanumeric() || matches!(x, b'_' | b'.' | b'-'))
}

pub fn repository_arn(scope: &Scope, name: &str) -> String {
    format!(
        "arn:aws:ecr:{}:{}:repository/{name}",
        scope.region, scope.account
    )
}

/// The repository's name in berth's registry: one registry serves every
/// account and region, so each keeps its repositories under its own prefix.
pub fn registry_path(scope: &Scope, name: &str) -> String {
    format!("{}/{}/{name}", scope.account, scope.region)
}

/// Where `docker push` sends the repository's images.
pub fn repository_uri(registry_host: &str, scope: &Scope, name: &str) -> String {
    format!("{registry_host}/{}", registry_path(scope, name))
}

/// The account, region and repository a registry path names.
pub fn parse_registry_path(path: &str) -> Option<(Scope, &str)> {
    let mut p = path.splitn(3, '/');
    let account = p.next()?;
    let region = p.next()?;
    let name = p.next()?;
    let account_ok = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
    (account_ok && !region.is_empty() && repository_name_ok(name))
        .then(|| (Scope::new(account, region), name))
}

/// An image name of ECR's form `ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO[:TAG|@DIGEST]`,
/// taken apart: the repository's scope, its name, and the `:TAG` or `@DIGEST` part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcrImage<'a> {
    pub scope: Scope,
    pub repository: &'a str,
    /// `:tag`, `@sha256:…`, or empty (the `latest` tag).
    pub reference: &'a str,
}

pub fn parse_image(image: &str) -> Option<EcrImage<'_>> {
    let (host, rest) = image.split_once('/')?;
    let (account, host) = host.split_once(".dkr.ecr.")?;
    let region = host
        .strip_suffix(".amazonaws.com")
        .or_else(|| host.strip_suffix(".amazonaws.com.cn"))?;
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) || region.is_empty() {
        return None;
    }
    let split = rest
        .find('@')
        .or_else(|| rest.rfind(':').filter(|&i| !rest[i..].contains('/')))
        .unwrap_or(rest.len());
    let (repository, reference) = rest.split_at(split);
    repository_name_ok(repository).then(|| EcrImage {
        scope: Scope::new(account, region),
        repository,
        reference,
    })
}

/// ECR's rules for resource tags: at most 50, keys 1–128 characters, values up to 256.
pub fn check_tags(tags: &[Tag]) -> Result<(), ApiError> {
    let bad = |m: String| ApiError::new(ErrorCode::InvalidTagParameterException, m);
    for t in tags {
        let key = t.key.as_deref().unwrap_or("");
        if key.is_empty() || key.chars().count() > 128 {
            return Err(bad(format!(
                "Tag key '{key}' must be between 1 and 128 characters long."
            )));
        }
        if key.to_ascii_lowercase().starts_with("aws:") {
            return Err(bad(format!(
                "Tag key '{key}' uses the reserved prefix 'aws:'."
            )));
        }
        if t.value.as_deref().unwrap_or("").chars().count() > 256 {
            return Err(bad(format!(
                "The value of tag '{key}' must be at most 256 characters long."
            )));
        }
    }
    Ok(())
}

/// `current` with `new` laid over it (a key given again takes the new value),
/// refused past ECR's 50 tags.
pub fn merge_tags(current: &[Tag], new: &[Tag]) -> Result<Vec<Tag>, ApiError> {
    let mut out: Vec<Tag> = current
        .iter()
        .filter(|c| !new.iter().any(|n| n.key == c.key))
        .cloned()
        .collect();
    for n in new {
        if !out.iter().any(|o| o.key == n.key) {
            out.push(n.clone());
        }
    }
    if out.len() > MAX_TAGS {
        return Err(ApiError::new(
            ErrorCode::TooManyTagsException,
            format!("A resource can have at most {MAX_TAGS} tags."),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(k: &str, v: &str) -> Tag {
        Tag {
            key: Some(k.into()),
            value: Some(v.into()),
        }
    }

    #[test]
    fn repository_names_follow_ecr_expression() {
        for ok in ["web", "team/web-app", "a.b_c-d/e2", "x/y/z"] {
            assert!(repository_name_ok(ok), "{ok}");
        }
        for bad in [
            "Web", "web/", "/web", "a..b", "-a", "a-", "a//b", "a b", "a_-b",
        ] {
            assert!(!repository_name_ok(bad), "{bad}");
        }
        let e = check_repository_name("Bad").unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidParameterException);
        assert!(e.message.contains(REPOSITORY_NAME_PATTERN), "{}", e.message);
    }

    #[test]
    fn image_tags_follow_the_registry_grammar() {
        assert!(image_tag_ok("v1.2.3-rc_1"));
        assert!(image_tag_ok("_x"));
        assert!(!image_tag_ok(".x"));
        assert!(!image_tag_ok(""));
        assert!(!image_tag_ok(&"a".repeat(129)));
        assert!(!image_tag_ok("a:b"));
    }

    #[test]
    fn ecr_image_names_are_taken_apart() {
        let i = parse_image("123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/web:v2").unwrap();
        assert_eq!(i.scope, Scope::new("123456789012", "eu-west-1"));
        assert_eq!((i.repository, i.reference), ("team/web", ":v2"));
        let d = parse_image("123456789012.dkr.ecr.us-east-1.amazonaws.com/web@sha256:ab").unwrap();
        assert_eq!((d.repository, d.reference), ("web", "@sha256:ab"));
        let bare = parse_image("123456789012.dkr.ecr.us-east-1.amazonaws.com/web").unwrap();
        assert_eq!(bare.reference, "");
        for other in [
            "nginx:latest",
            "docker.io/library/nginx",
            "12345.dkr.ecr.us-east-1.amazonaws.com/web",
            "123456789012.dkr.ecr.us-east-1.example.com/web",
            "127.0.0.1:5000/web:1",
        ] {
            assert_eq!(parse_image(other), None, "{other}");
        }
    }

    #[test]
    fn registry_paths_keep_accounts_and_regions_apart() {
        let s = Scope::new("123456789012", "us-east-1");
        assert_eq!(
            registry_path(&s, "team/web"),
            "123456789012/us-east-1/team/web"
        );
        assert_eq!(
            parse_registry_path("123456789012/us-east-1/team/web"),
            Some((s, "team/web"))
        );
        assert_eq!(parse_registry_path("library/nginx"), None);
        assert_eq!(parse_registry_path("123456789012/us-east-1/Web"), None);
    }

    #[test]
    fn tags_are_checked_and_merged() {
        assert!(check_tags(&[tag("team", "a")]).is_ok());
        assert_eq!(
            check_tags(&[tag("", "a")]).unwrap_err().code,
            ErrorCode::InvalidTagParameterException
        );
        assert!(check_tags(&[tag("aws:x", "a")]).is_err());
        assert!(check_tags(&[tag("k", &"v".repeat(257))]).is_err());
        let merged = merge_tags(&[tag("a", "1"), tag("b", "2")], &[tag("b", "3")]).unwrap();
        assert_eq!(merged, vec![tag("a", "1"), tag("b", "3")]);
        let many: Vec<Tag> = (0..51).map(|i| tag(&i.to_string(), "")).collect();
        assert_eq!(
            merge_tags(&[], &many).unwrap_err().code,
            ErrorCode::TooManyTagsException
        );
    }
}
