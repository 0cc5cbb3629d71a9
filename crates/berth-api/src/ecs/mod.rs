//! ECS JSON 1.1: generated shapes plus the validation they drive.
pub mod shapes;

pub use crate::validate::{Validate, Validator};
pub use shapes::*;

/// Decodes an operation's input and checks it against the model's constraints.
pub fn decode_input<T>(body: &[u8]) -> Result<T, crate::ApiError>
where
    T: serde::de::DeserializeOwned + Validate + Default,
{
    // ECS accepts an empty body for operations whose members are all optional.
    let input: T = if body.iter().all(|b| b.is_ascii_whitespace()) {
        T::default()
    } else {
        serde_json::from_slice(body).map_err(|e| {
            crate::ApiError::new(
                crate::ErrorCode::SerializationException,
                format!("Unable to parse request body: {e}"),
            )
        })?
    };
    let mut v = Validator::default();
    input.validate(&mut v);
    v.finish()?;
    Ok(input)
}
