//! Request authentication: SigV4 verified against the config's keys, IAM
//! users' access keys, or a role session's temporary credentials.
pub mod caller;
pub mod session;

pub use berth_api::sigv4;
pub use caller::{Caller, Identity};
pub use sigv4::{AuthFailure, Credential, RequestParts};

use crate::config::Principal;
use crate::state::index::Index;
use std::collections::HashMap;

/// The key's owner and the secret its signature must be made with.
fn key_owner(
    keys: &HashMap<String, Principal>,
    index: &Index,
    request: &RequestParts,
    access_key_id: &str,
    now: i64,
) -> Result<(Caller, String), AuthFailure> {
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
        return Ok((caller, p.secret.clone()));
    }
    if let Some(k) = index.access_keys.get(access_key_id) {
        let k = &k.value;
        if k.status != "Active" {
            return Err(AuthFailure::UnknownKey);
        }
        let path = index
            .iam_users
            .get(&(k.account.clone(), k.user.clone()))
            .map(|u| u.value.path.clone())
            .ok_or(AuthFailure::UnknownKey)?;
        let caller = Caller {
            account: k.account.clone(),
            identity: Identity::User {
                name: k.user.clone(),
                path,
                from_config: false,
            },
        };
        return Ok((caller, k.secret.clone()));
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
