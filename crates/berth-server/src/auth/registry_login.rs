//! The password GetAuthorizationToken hands out for `docker login`: who asked,
//! for which region, until when, sealed with the server's session key, so the
//! registry front checks it with no state kept (as role sessions are).
use super::session::{seal, unseal};
use super::Caller;
use serde::{Deserialize, Serialize};

/// The user name ECR's logins take.
pub const USER: &str = "AWS";
const PURPOSE: &[u8] = b"ecr-login";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Login {
    /// The principal whose policies every pull and push is checked against.
    pub caller: Caller,
    pub region: String,
    /// Epoch seconds after which the password is refused.
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginError {
    /// Not a password this server made.
    Invalid,
    Expired,
}

/// How long a login lasts: ECR's twelve hours, never past the caller's own session.
pub fn expiry(caller: &Caller, now: i64) -> i64 {
    let twelve_hours = now + berth_model::ecr::LOGIN_LIFETIME_SECS;
    match &caller.identity {
        super::Identity::Session(s) => twelve_hours.min(s.expiration),
        _ => twelve_hours,
    }
}

pub fn mint(key: &[u8], login: &Login) -> String {
    seal(key, PURPOSE, &serde_json::to_vec(login).unwrap_or_default())
}

pub fn open(key: &[u8], password: &str, now: i64) -> Result<Login, LoginError> {
    let payload = unseal(key, PURPOSE, password).ok_or(LoginError::Invalid)?;
    let login: Login = serde_json::from_slice(&payload).map_err(|_| LoginError::Invalid)?;
    if now >= login.expires_at {
        return Err(LoginError::Expired);
    }
    Ok(login)
}

/// The password of an HTTP Basic `Authorization` header whose user is `AWS`.
pub fn basic_password(header: &str) -> Option<String> {
    use base64::Engine;
    let encoded = header.strip_prefix("Basic ")?.trim();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    (user == USER).then(|| password.to_string())
}

/// ECR's `authorizationToken`: `AWS:password`, base64-encoded.
pub fn authorization_token(password: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{password}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn login(expires_at: i64) -> Login {
        Login {
            caller: Caller::root("111122223333"),
            region: "us-east-1".into(),
            expires_at,
        }
    }

    #[test]
    fn a_password_opens_until_it_expires_and_only_with_its_key() {
        let password = mint(KEY, &login(1000));
        assert_eq!(open(KEY, &password, 999), Ok(login(1000)));
        assert_eq!(open(KEY, &password, 1000), Err(LoginError::Expired));
        assert_eq!(open(b"other", &password, 10), Err(LoginError::Invalid));
        let mut forged = password.clone();
        forged.insert(3, 'x');
        assert_eq!(open(KEY, &forged, 10), Err(LoginError::Invalid));
    }

    #[test]
    fn the_token_is_what_docker_login_sends_back() {
        let token = authorization_token("secret.part");
        use base64::Engine;
        let header = format!("Basic {token}");
        assert_eq!(basic_password(&header).as_deref(), Some("secret.part"));
        let other = base64::engine::general_purpose::STANDARD.encode("bob:secret.part");
        assert_eq!(basic_password(&format!("Basic {other}")), None);
        assert_eq!(basic_password("Bearer abc"), None);
    }

    #[test]
    fn a_login_ends_with_the_session_that_asked() {
        let mut caller = Caller::root("111122223333");
        assert_eq!(expiry(&caller, 100), 100 + 12 * 3600);
        caller.identity = super::super::Identity::Session(super::super::session::Session {
            access_key_id: "ASIAABCDEFGHIJKLMNOP".into(),
            account: "111122223333".into(),
            role_name: "r".into(),
            role_path: "/".into(),
            role_id: "AROAABCDEFGHIJKLMNOP".into(),
            session_name: "s".into(),
            expiration: 5000,
            policy: None,
            policy_arns: vec![],
        });
        assert_eq!(expiry(&caller, 100), 5000);
    }
}
