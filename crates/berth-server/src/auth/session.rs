//! Role sessions' temporary credentials, with no state kept: the session
//! token carries the session's facts and the server's HMAC over them, and the
//! secret key is derived from the token, so any server holding the session
//! key (kept in the store) verifies them, across restarts.
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The temporary access key id (`ASIA…`).
    #[serde(rename = "k")]
    pub access_key_id: String,
    #[serde(rename = "a")]
    pub account: String,
    #[serde(rename = "r")]
    pub role_name: String,
    #[serde(rename = "p")]
    pub role_path: String,
    #[serde(rename = "i")]
    pub role_id: String,
    #[serde(rename = "s")]
    pub session_name: String,
    /// Epoch seconds after which the credentials are refused.
    #[serde(rename = "e")]
    pub expiration: i64,
    /// The session policy AssumeRole was given (`Policy`): the session may do
    /// only what both it and the role's policies allow.
    #[serde(rename = "q", default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// The managed session policies AssumeRole was given (`PolicyArns`).
    #[serde(rename = "m", default, skip_serializing_if = "Vec::is_empty")]
    pub policy_arns: Vec<String>,
}

impl Session {
    /// Whether session policies bound what the role's policies allow.
    pub fn bounded(&self) -> bool {
        self.policy.is_some() || !self.policy_arns.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// Not a token this server made, or not for this key id.
    Invalid,
    Expired,
}

fn mac(key: &[u8], purpose: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(purpose);
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

/// `payload` with the server's HMAC for `purpose`, as one URL-safe string.
pub fn seal(key: &[u8], purpose: &[u8], payload: &[u8]) -> String {
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(payload),
        URL_SAFE_NO_PAD.encode(mac(key, purpose, payload))
    )
}

/// The payload of a string `seal` made with this key and purpose.
pub fn unseal(key: &[u8], purpose: &[u8], sealed: &str) -> Option<Vec<u8>> {
    let (payload, tag) = sealed.split_once('.')?;
    let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(purpose);
    m.update(&payload);
    m.verify_slice(&tag).ok()?;
    Some(payload)
}

/// The token and secret access key of a session.
pub fn mint(key: &[u8], session: &Session) -> (String, String) {
    let payload = serde_json::to_vec(session).unwrap_or_default();
    let token = seal(key, b"token", &payload);
    let secret = secret_for(key, &token);
    (token, secret)
}

fn secret_for(key: &[u8], token: &str) -> String {
    let s = base64::engine::general_purpose::STANDARD.encode(mac(key, b"secret", token.as_bytes()));
    s[..40].to_string()
}

/// Checks a token presented with `access_key_id`; answers the session and its secret key.
pub fn open(
    key: &[u8],
    token: &str,
    access_key_id: &str,
    now: i64,
) -> Result<(Session, String), TokenError> {
    let payload = unseal(key, b"token", token).ok_or(TokenError::Invalid)?;
    let session: Session = serde_json::from_slice(&payload).map_err(|_| TokenError::Invalid)?;
    if session.access_key_id != access_key_id {
        return Err(TokenError::Invalid);
    }
    if now >= session.expiration {
        return Err(TokenError::Expired);
    }
    Ok((session, secret_for(key, token)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(expiration: i64) -> Session {
        Session {
            access_key_id: "ASIAABCDEFGHIJKLMNOP".into(),
            account: "111111111111".into(),
            role_name: "web".into(),
            role_path: "/".into(),
            role_id: "AROAABCDEFGHIJKLMNOP".into(),
            session_name: "s1".into(),
            expiration,
            policy: None,
            policy_arns: vec![],
        }
    }

    #[test]
    fn a_token_opens_until_it_expires_and_only_with_its_key() {
        let key = b"0123456789abcdef0123456789abcdef";
        let (token, secret) = mint(key, &session(1000));
        assert_eq!(secret.len(), 40);
        let (s, again) = open(key, &token, "ASIAABCDEFGHIJKLMNOP", 999).unwrap();
        assert_eq!(s, session(1000));
        assert_eq!(again, secret);
        assert_eq!(
            open(key, &token, "ASIAABCDEFGHIJKLMNOP", 1000),
            Err(TokenError::Expired)
        );
        assert_eq!(
            open(key, &token, "ASIAOTHEROTHEROTHERO", 10),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            open(b"another key", &token, "ASIAABCDEFGHIJKLMNOP", 10),
            Err(TokenError::Invalid)
        );
        // A token whose facts were changed (a later expiry) no longer matches its tag.
        let (_, tag) = token.split_once('.').unwrap();
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&session(5000)).unwrap());
        assert_eq!(
            open(
                key,
                &format!("{forged_payload}.{tag}"),
                "ASIAABCDEFGHIJKLMNOP",
                2000
            ),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn session_policies_ride_in_the_token() {
        let key = b"0123456789abcdef0123456789abcdef";
        let mut bounded = session(1000);
        bounded.policy = Some(r#"{"Statement":[]}"#.into());
        bounded.policy_arns = vec!["arn:aws:iam::aws:policy/ReadOnlyAccess".into()];
        let (token, _) = mint(key, &bounded);
        let (s, _) = open(key, &token, "ASIAABCDEFGHIJKLMNOP", 10).unwrap();
        assert!(s.bounded());
        assert_eq!(s, bounded);
        assert!(!session(1000).bounded());
    }
}
