//! CloudWatch Logs JSON 1.1 (`Logs_20140328.*`): generated shapes, checked
//! against the model's constraints with the "N validation errors detected"
//! wording Logs shares with ECS.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_breach_is_worded_as_logs_words_it() {
        let e = decode_input::<CreateLogGroupRequest>(br#"{"logGroupName":""}"#).unwrap_err();
        assert_eq!(e.code, crate::ErrorCode::InvalidParameterException);
        assert!(
            e.message.starts_with("1 validation error detected: Value at 'logGroupName' failed to satisfy constraint: Member must have length greater than or equal to 1"),
            "{}",
            e.message
        );
    }
}
