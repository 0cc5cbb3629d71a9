//! ECS JSON 1.1: generated shapes plus the validation they drive.
pub mod shapes;

pub use crate::validate::{Validate, Validator};
pub use shapes::*;

/// Decodes an operation's input and checks it against the model's constraints.
pub fn decode_input<T>(body: &[u8]) -> Result<T, crate::ApiError>
where
    T: serde::de::DeserializeOwned + Validate + Default,
{
    crate::validate::decode_json(body, Validator::finish)
}
