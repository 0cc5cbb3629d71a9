//! STS on the query protocol: GetCallerIdentity, so `aws sts get-caller-identity` works.
use crate::config::Principal;
use berth_api::sts::get_caller_identity_xml;
use berth_api::{ApiError, ErrorCode};
use berth_model::arn;
use sha2::{Digest, Sha256};

/// A stable IAM-style unique id for a user; the root's id is its account id.
fn user_id(p: &Principal) -> String {
    match &p.user {
        None => p.account.clone(),
        Some(u) => {
            let h = Sha256::digest(format!("{}:{u}", p.account));
            format!("AIDA{}", hex::encode_upper(&h[..8]))
        }
    }
}

pub fn handle(action: &str, principal: &Principal, request_id: &str) -> Result<String, ApiError> {
    match action {
        "GetCallerIdentity" => {
            let a = arn::iam_principal(&principal.account, principal.user.as_deref());
            Ok(get_caller_identity_xml(
                &principal.account,
                &a,
                &user_id(principal),
                request_id,
            ))
        }
        "" => Err(ApiError::new(ErrorCode::MissingAction, "Missing Action")),
        other => Err(ApiError::new(
            ErrorCode::InvalidAction,
            format!("Could not find operation {other} for version 2011-06-15"),
        )),
    }
}
