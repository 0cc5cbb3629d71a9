//! GetAuthorizationToken: a login for `docker login`, as the caller, for twelve hours.
use super::{Ctx, Guard};
use crate::auth::registry_login::{self, Login};
use crate::authz::Resource;
use berth_api::ecr::*;
use berth_api::ApiError;

pub async fn get_authorization_token(
    ctx: &Ctx<'_>,
    req: GetAuthorizationTokenRequest,
    guard: &mut Guard<'_>,
) -> Result<GetAuthorizationTokenResponse, ApiError> {
    guard("ecr:GetAuthorizationToken", vec![Resource::any()])?;
    let key = crate::sts::session_key(ctx.state).await?;
    let now = ctx.now as i64;
    let login = Login {
        caller: ctx.caller.clone(),
        region: ctx.scope.region.clone(),
        expires_at: registry_login::expiry(ctx.caller, now),
    };
    let token = registry_login::authorization_token(&registry_login::mint(&key, &login));
    // One login serves every registry id given: berth's one registry holds them all.
    let count = req.registry_ids.map(|r| r.len()).unwrap_or(1).max(1);
    let data = AuthorizationData {
        authorization_token: Some(token),
        expires_at: Some(login.expires_at as f64),
        proxy_endpoint: Some(format!("http://{}", ctx.state.registry_host())),
    };
    Ok(GetAuthorizationTokenResponse {
        authorization_data: Some(vec![data; count]),
    })
}
