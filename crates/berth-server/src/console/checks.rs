//! The rules a console request must pass before any session or call is
//! looked at: same-site, JSON, a well-formed cookie, region and operation.

/// The session cookie's name; it is scoped to `/console`.
pub const COOKIE: &str = "berth-console";

/// Whether a state-changing request comes from the console's own pages: a
/// browser names the page's origin, and says when a request is cross-site.
pub fn same_site(host: Option<&str>, origin: Option<&str>, fetch_site: Option<&str>) -> bool {
    if let Some(site) = fetch_site {
        if site != "same-origin" && site != "none" {
            return false;
        }
    }
    match (origin, host) {
        (None, _) => true,
        (Some(o), Some(h)) => o == format!("http://{h}") || o == format!("https://{h}"),
        (Some(_), None) => false,
    }
}

/// A cross-site `<form>` can post only form encodings and text; the console posts JSON.
pub fn is_json(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|c| c.split(';').next())
        .is_some_and(|c| c.trim().eq_ignore_ascii_case("application/json"))
}

/// The session id in a `Cookie` header.
pub fn session_id(cookie_header: &str) -> Option<&str> {
    cookie_header.split(';').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == COOKIE && v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit())).then_some(v)
    })
}

/// The `Set-Cookie` value for a new session (or, with no id, one that ends it).
pub fn set_cookie(id: Option<&str>, max_age: u64) -> String {
    match id {
        Some(id) => {
            format!("{COOKIE}={id}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age}")
        }
        None => format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0"),
    }
}

/// A region name as AWS spells them (`us-east-1`, `ap-southeast-2`).
pub fn valid_region(r: &str) -> bool {
    let parts: Vec<&str> = r.split('-').collect();
    r.len() <= 32
        && parts.len() >= 3
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].parse::<u8>().is_ok()
}

/// An operation name as the models spell them.
pub fn valid_operation(op: &str) -> bool {
    !op.is_empty() && op.len() <= 64 && op.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_consoles_own_origin_may_post() {
        let host = Some("127.0.0.1:4510");
        assert!(same_site(
            host,
            Some("http://127.0.0.1:4510"),
            Some("same-origin")
        ));
        assert!(same_site(host, None, None));
        assert!(!same_site(host, Some("http://evil.example"), None));
        assert!(!same_site(
            host,
            Some("http://127.0.0.1:4510"),
            Some("cross-site")
        ));
        assert!(!same_site(host, None, Some("same-site")));
        assert!(!same_site(None, Some("http://127.0.0.1:4510"), None));
    }

    #[test]
    fn only_json_bodies() {
        assert!(is_json(Some("application/json")));
        assert!(is_json(Some("Application/JSON; charset=utf-8")));
        assert!(!is_json(Some("application/x-www-form-urlencoded")));
        assert!(!is_json(Some("text/plain")));
        assert!(!is_json(None));
    }

    #[test]
    fn the_cookie_is_read_and_written_strictly() {
        let id = "a".repeat(64);
        assert_eq!(
            session_id(&format!("x=1; {COOKIE}={id}")),
            Some(id.as_str())
        );
        assert_eq!(session_id(&format!("{COOKIE}=short")), None);
        assert_eq!(session_id(&format!("{COOKIE}={}", "z".repeat(64))), None);
        assert_eq!(session_id("other=1"), None);
        let c = set_cookie(Some(&id), 60);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict"));
        assert!(c.ends_with("Max-Age=60"));
        assert!(set_cookie(None, 60).ends_with("Max-Age=0"));
    }

    #[test]
    fn regions_and_operations() {
        assert!(valid_region("us-east-1"));
        assert!(valid_region("ap-southeast-2"));
        assert!(valid_region("us-gov-west-1"));
        assert!(!valid_region("us-east"));
        assert!(!valid_region("US-east-1"));
        assert!(!valid_region("us--1"));
        assert!(valid_operation("DescribeTasks"));
        assert!(!valid_operation("Describe.Tasks"));
        assert!(!valid_operation(""));
    }
}
