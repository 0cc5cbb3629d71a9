//! Request authentication: SigV4 verification against the configured keys.
pub use berth_api::sigv4;

pub use sigv4::{AuthFailure, Credential, RequestParts};
