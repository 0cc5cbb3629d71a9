//! Request authentication: SigV4 verified against the config's keys, IAM
//! users' access keys, or a role session's temporary credentials.
pub mod caller;
pub mod registry_login;
pub mod session;

pub use berth_api::sigv4;
pub use caller::{Caller, Identity};
pub use sigv4::{AuthFailure, Credential, RequestParts};

use crate::config::Principal;
use crate::state::index::Index;
use std::collections::HashMap;

/// The owner of a long-term key (the config's or an IAM user's) and its secret.
pub fn key_caller(
    keys: &HashMap<String, Principal>,
    index: &Index,
    access_key_id: &str,
) -> Option<Result<(Caller, String), AuthFailure>> {
    if let Some(p) = keys.get(access_key_id) {
        let identity = match (&p.user, p.account == crate::config::FLEET) {
            (_, true) => Identity::Fleet,
            (None, _) => Identity::Root,
            (Some(u), _) => Identity::User {
                name: u.clone(),
                path: "/".into(),
                from_config: true,
            },
        };
        let caller = Caller {
            account: p.account.clone(),
            identity,
        };
        return Some(Ok((caller, p.secret.clone())));
    }
    let k = &index.access_keys.get(access_key_id)?.value;
    if k.status != "Active" {
        return Some(Err(AuthFailure::UnknownKey));
    }
    let Some(path) = index
        .iam_users
        .get(&(k.account.clone(), k.user.clone()))
        .map(|u| u.value.path.clone())
    else {
        return Some(Err(AuthFailure::UnknownKey));
    };
    let caller = Caller {
        account: k.account.clone(),
        identity: Identity::User {
            name: k.user.clone(),
            path,
            from_config: false,
        },
    };
    Some(Ok((caller, k.secret.clone())))
}

/// The key's owner and the secret its signature must be made with.
fn key_owner(
    keys: &HashMap<String, Principal>,
    index: &Index,
    request: &RequestParts,
    access_key_id: &str,
    now: i64,
) -> Result<(Caller, String), AuthFailure> {
    if let Some(owner) = key_caller(keys, index, access_key_id) {
        return owner;
    }
    let token = sigv4::security_token(request).ok_or(AuthFailure::UnknownKey)?;
    let key = index.session_key.as_ref().ok_or(AuthFailure::UnknownKey)?;
    let key = hex::decode(&key.value.key).map_err(|_| AuthFailure::UnknownKey)?;
    match session::open(&key, &token, access_key_id, now) {
        Ok((s, secret)) => Ok((
            Caller {
                account: s.account.clone(),
                identity: Identity::Session(s),
            },
            secret,
        )),
        Err(session::TokenError::Expired) => Err(AuthFailure::ExpiredToken),
        Err(session::TokenError::Invalid) => Err(AuthFailure::UnknownKey),
    }
}

/// Verifies a request's signature; answers its credential scope and its caller.
/// `now` bounds the signature's clock skew; `token_now` (the server's clock)
/// decides whether temporary credentials have expired.
pub fn authenticate(
    keys: &HashMap<String, Principal>,
    index: &Index,
    request: &RequestParts,
    now: i64,
    token_now: i64,
) -> Result<(Credential, Caller), AuthFailure> {
    let sig = sigv4::parse(request)?;
    let (caller, secret) = key_owner(
        keys,
        index,
        request,
        &sig.credential.access_key_id,
        token_now,
    )?;
    sig.verify(request, &secret, now)?;
    Ok((sig.credential, caller))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::iam_records::SessionKeyRecord;
    use crate::state::index::Versioned;
    use berth_api::amz_date::format_amz_date;
    use sigv4::Signer;

    const KEY: &str = "00112233445566778899aabbccddeeff";

    fn index_with_session_key() -> Index {
        let mut index = Index::default();
        index.session_key = Some(Versioned {
            mod_revision: 1,
            value: SessionKeyRecord { key: KEY.into() },
        });
        index
    }

    /// A request signed with the session's credentials, the way an SDK signs one.
    fn signed(id: &str, secret: &str, token: &str, now: i64) -> Vec<(String, String)> {
        let date = format_amz_date(now);
        let signer = Signer {
            access_key_id: id,
            secret_access_key: secret,
            region: "us-east-1",
            service: "sts",
        };
        let auth = signer.authorization(
            "POST",
            "127.0.0.1",
            "/",
            &[("x-amz-security-token", token)],
            b"Action=GetCallerIdentity",
            &date,
        );
        vec![
            ("host".into(), "127.0.0.1".into()),
            ("x-amz-date".into(), date),
            ("x-amz-security-token".into(), token.into()),
            ("authorization".into(), auth),
        ]
    }

    #[test]
    fn session_credentials_work_until_they_expire() {
        let index = index_with_session_key();
        let s = session::Session {
            access_key_id: "ASIAABCDEFGHIJKLMNOP".into(),
            account: "111111111111".into(),
            role_name: "web".into(),
            role_path: "/".into(),
            role_id: "AROAABCDEFGHIJKLMNOP".into(),
            session_name: "task".into(),
            expiration: 2_000_000_000,
            policy: None,
            policy_arns: vec![],
        };
        let (token, secret) = session::mint(&hex::decode(KEY).unwrap(), &s);
        let now = 1_999_999_000;
        let headers = signed(&s.access_key_id, &secret, &token, now);
        let parts = RequestParts {
            method: "POST",
            path: "/",
            query: "",
            headers,
            body: b"Action=GetCallerIdentity",
        };
        let keys = HashMap::new();
        let (_, caller) = authenticate(&keys, &index, &parts, now, now).unwrap();
        assert_eq!(
            caller.arn(),
            "arn:aws:sts::111111111111:assumed-role/web/task"
        );
        assert_eq!(caller.principal_arn(), "arn:aws:iam::111111111111:role/web");
        assert_eq!(
            authenticate(&keys, &index, &parts, now, s.expiration).unwrap_err(),
            AuthFailure::ExpiredToken
        );
        // The right token signed with another secret does not verify.
        let wrong = RequestParts {
            headers: signed(&s.access_key_id, "x".repeat(40).as_str(), &token, now),
            ..parts
        };
        assert_eq!(
            authenticate(&keys, &index, &wrong, now, now).unwrap_err(),
            AuthFailure::Mismatch
        );
        // Without a session key in the store, no token is known.
        assert_eq!(
            authenticate(&keys, &Index::default(), &wrong, now, now).unwrap_err(),
            AuthFailure::UnknownKey
        );
    }
}
