//! What the JSON 1.1 services beside ECS (ECR, Logs, Secrets Manager, SSM)
//! share: the guard that authorizes a decoded request, the operation table
//! that decodes, dispatches and encodes, the empty answer, and tag lists.
use crate::authz::Resource;
use berth_api::{ApiError, ErrorCode};

/// Authorizes a decoded request: its IAM action (`ecr:CreateRepository`) on the resources it names.
pub type Guard<'g> = dyn FnMut(&'static str, Vec<Resource>) -> Result<(), ApiError> + Send + 'g;

/// The guard of a caller no policy restricts.
pub fn unguarded(_: &'static str, _: Vec<Resource>) -> Result<(), ApiError> {
    Ok(())
}

/// The answer of an operation the model gives no output: `{}`.
#[derive(Debug, Default, serde::Serialize)]
pub struct Empty {}

/// The refusal of an operation berth does not answer: `code` for one of the
/// service's model, UnknownOperationException for any other name.
pub fn refusal(operation: &str, model: &[&str], code: ErrorCode) -> ApiError {
    if model.contains(&operation) {
        ApiError::new(code, format!("{operation} is not supported by berth."))
    } else {
        ApiError::new(
            ErrorCode::UnknownOperationException,
            format!("Unknown operation {operation}."),
        )
    }
}

/// Declares a service's `IMPLEMENTED` operations and its `handle`: the input
/// decoded with `decode`, the handler run, its answer encoded; any other
/// operation answered with `refuse(name)`.
macro_rules! operations {
    (decode: $decode:path, refuse: $refuse:expr; $($name:literal => $handler:path),* $(,)?) => {
        /// Operations berth answers; every other is refused by name.
        pub const IMPLEMENTED: &[&str] = &[$($name),*];

        pub async fn handle(
            ctx: &Ctx<'_>,
            operation: &str,
            body: &[u8],
            guard: &mut $crate::json_service::Guard<'_>,
        ) -> Result<Vec<u8>, berth_api::ApiError> {
            match operation {
                $($name => {
                    let input = $decode(body)?;
                    let out = $handler(ctx, input, guard).await?;
                    Ok(serde_json::to_vec(&out).unwrap_or_default())
                })*
                other => Err($refuse(other)),
            }
        }
    };
}
pub(crate) use operations;

/// A member the model marks required (decoding already refused its absence),
/// in the "validation error" words Secrets Manager and SSM answer with.
pub fn required<'a>(value: &'a Option<String>, member: &str) -> Result<&'a str, ApiError> {
    value.as_deref().ok_or_else(|| {
        ApiError::new(
            ErrorCode::ValidationException,
            format!("1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"),
        )
    })
}

/// Tags after `new` went on: a key already there takes the new value.
pub fn merge_tags(tags: &mut Vec<(String, String)>, new: &[(String, String)]) {
    for (k, v) in new {
        match tags.iter_mut().find(|(ek, _)| ek == k) {
            Some(t) => t.1 = v.clone(),
            None => tags.push((k.clone(), v.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_put_again_takes_its_new_value_in_place() {
        let mut tags = vec![("a".to_string(), "1".to_string())];
        merge_tags(
            &mut tags,
            &[("b".into(), "2".into()), ("a".into(), "3".into())],
        );
        assert_eq!(
            tags,
            [("a".to_string(), "3".to_string()), ("b".into(), "2".into())]
        );
    }

    #[test]
    fn operations_of_the_model_and_unknown_names_are_refused_apart() {
        let e = refusal(
            "RotateSecret",
            &["RotateSecret"],
            ErrorCode::InvalidRequestException,
        );
        assert_eq!(e.code, ErrorCode::InvalidRequestException);
        assert_eq!(e.message, "RotateSecret is not supported by berth.");
        let e = refusal(
            "Nope",
            &["RotateSecret"],
            ErrorCode::InvalidRequestException,
        );
        assert_eq!(e.code, ErrorCode::UnknownOperationException);
    }
}
