//! ECR JSON 1.1: generated shapes, checked against the model's constraints as
//! ECR words their breach (the first one, `InvalidParameterException`).
pub mod shapes;

pub use crate::validate::{Validate, Validator};
pub use shapes::*;

/// Decodes an operation's input and checks it against the model's constraints.
pub fn decode_input<T>(body: &[u8]) -> Result<T, crate::ApiError>
where
    T: serde::de::DeserializeOwned + Validate + Default,
{
    crate::validate::decode_json(body, Validator::finish_first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_breach_is_worded_as_ecr_words_it() {
        let e = decode_input::<CreateRepositoryRequest>(br#"{"repositoryName":"a"}"#).unwrap_err();
        assert_eq!(e.code, crate::ErrorCode::InvalidParameterException);
        assert_eq!(
            e.message,
            "Invalid parameter at 'repositoryName' failed to satisfy constraint: 'must have length greater than or equal to 2'"
        );
        let ok =
            decode_input::<CreateRepositoryRequest>(br#"{"repositoryName":"web/app"}"#).unwrap();
        assert_eq!(ok.repository_name.as_deref(), Some("web/app"));
    }
}
