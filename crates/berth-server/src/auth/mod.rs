//! Request authentication: SigV4 verification against the configured keys.
pub mod sigv4;

pub use sigv4::{AuthFailure, Credential, RequestParts};
