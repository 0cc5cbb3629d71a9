//! SSM Parameter Store JSON 1.1 (`AmazonSSM.*`): generated shapes, checked against the
//! model's constraints in the "N validation errors detected" words the service
//! answers with `ValidationException`.
pub mod shapes;

pub use crate::validate::{Validate, Validator};
pub use shapes::*;

/// Decodes an operation's input and checks it against the model's constraints.
pub fn decode_input<T>(body: &[u8]) -> Result<T, crate::ApiError>
where
    T: serde::de::DeserializeOwned + Validate + Default,
{
    crate::validate::decode_json(body, |v| v.finish_as(crate::ErrorCode::ValidationException))
}
