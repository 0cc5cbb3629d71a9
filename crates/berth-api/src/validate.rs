//! Model constraint checks (required, enum, length, range) driven by the
//! generated shapes, worded as each service words them: ECS's "N validation
//! errors detected", ECR's "Invalid parameter at …".
use crate::{ApiError, ErrorCode};

pub trait Validate {
    fn validate(&self, v: &mut Validator);
}

#[derive(Default)]
pub struct Validator {
    path: Vec<String>,
    errors: Vec<String>,
    /// (where, the constraint broken) of each error, for services that say only the first.
    broken: Vec<(String, String)>,
}

impl Validator {
    pub fn enter(&mut self, member: &str) {
        self.path.push(member.to_string());
    }

    pub fn enter_index(&mut self, i: usize) {
        // AWS numbers list members from 1 in validation paths.
        self.path.push(format!("{}.member", i + 1));
    }

    pub fn leave(&mut self) {
        self.path.pop();
    }

    fn at(&self) -> String {
        self.path.join(".")
    }

    /// One error: `value` is how ECS names the value ("Value null", "Value 'x'", "Value").
    fn fail(&mut self, value: &str, constraint: String) {
        let at = self.at();
        self.errors.push(format!(
            "{value} at '{at}' failed to satisfy constraint: {constraint}"
        ));
        self.broken.push((at, constraint));
    }

    pub fn missing(&mut self) {
        self.fail("Value null", "Member must not be null".into());
    }

    pub fn enumeration(&mut self, value: &str, allowed: &[&str]) {
        if !allowed.contains(&value) {
            let c = format!(
                "Member must satisfy enum value set: [{}]",
                allowed.join(", ")
            );
            self.fail(&format!("Value '{value}'"), c);
        }
    }

    pub fn length(&mut self, len: usize, min: Option<usize>, max: Option<usize>) {
        if let Some(m) = min.filter(|m| len < *m) {
            let c = format!("Member must have length greater than or equal to {m}");
            self.fail("Value", c);
        }
        if let Some(m) = max.filter(|m| len > *m) {
            let c = format!("Member must have length less than or equal to {m}");
            self.fail("Value", c);
        }
    }

    pub fn range(&mut self, value: f64, min: Option<f64>, max: Option<f64>) {
        if let Some(m) = min.filter(|m| value < *m) {
            let c = format!("Member must have value greater than or equal to {m}");
            self.fail(&format!("Value '{value}'"), c);
        }
        if let Some(m) = max.filter(|m| value > *m) {
            let c = format!("Member must have value less than or equal to {m}");
            self.fail(&format!("Value '{value}'"), c);
        }
    }

    pub fn union_at_most_one(&mut self, set: usize) {
        if set > 1 {
            let at = if self.path.is_empty() {
                "input".to_string()
            } else {
                self.at()
            };
            self.errors
                .push(format!("Only one member of '{at}' may be set"));
            self.broken
                .push((at, "Only one member may be set".to_string()));
        }
    }

    /// ECR's wording: the first error only, `InvalidParameterException`.
    pub fn finish_first(self) -> Result<(), ApiError> {
        match self.broken.into_iter().next() {
            None => Ok(()),
            Some((at, constraint)) => {
                let c = constraint.strip_prefix("Member ").unwrap_or(&constraint);
                Err(ApiError::new(
                    ErrorCode::InvalidParameterException,
                    format!("Invalid parameter at '{at}' failed to satisfy constraint: '{c}'"),
                ))
            }
        }
    }

    /// ECS's wording: every error, `InvalidParameterException`.
    pub fn finish(self) -> Result<(), ApiError> {
        self.finish_as(ErrorCode::InvalidParameterException)
    }

    /// Every error in "N validation errors detected" words, under `code`.
    pub fn finish_as(self, code: ErrorCode) -> Result<(), ApiError> {
        match self.errors.len() {
            0 => Ok(()),
            n => {
                let noun = if n == 1 { "error" } else { "errors" };
                let msg = format!("{n} validation {noun} detected: {}", self.errors.join("; "));
                Err(ApiError::new(code, msg))
            }
        }
    }
}

/// Nesting deeper than any operation's input goes (the deepest shapes nest a
/// few dozen levels): refused before decoding, which skips unknown members
/// however deep they nest.
pub const MAX_DEPTH: usize = 100;

/// Why a body is not a JSON 1.1 request, before it is decoded: a request is
/// one object (serde takes an array as a struct's members in order), nested
/// at most `MAX_DEPTH` deep.
pub fn not_a_request(body: &[u8]) -> Option<String> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Some("Unable to parse request body: the request must be a JSON object.".into());
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in body {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Some(format!(
                        "Unable to parse request body: nested deeper than {MAX_DEPTH} levels."
                    ));
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// Decodes a JSON 1.1 operation's input (an empty body is an empty request,
/// as AWS takes it) and checks it against the model's constraints; `finish`
/// words a breach as the service does.
pub fn decode_json<T>(
    body: &[u8],
    finish: impl FnOnce(Validator) -> Result<(), ApiError>,
) -> Result<T, ApiError>
where
    T: serde::de::DeserializeOwned + Validate + Default,
{
    let input: T = if body.iter().all(|b| b.is_ascii_whitespace()) {
        T::default()
    } else {
        if let Some(why) = not_a_request(body) {
            return Err(ApiError::new(ErrorCode::SerializationException, why));
        }
        serde_json::from_slice(body).map_err(|e| {
            ApiError::new(
                ErrorCode::SerializationException,
                format!("Unable to parse request body: {e}"),
            )
        })?
    };
    let mut v = Validator::default();
    input.validate(&mut v);
    finish(v)?;
    Ok(input)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ecs::{decode_input, RegisterTaskDefinitionRequest, TagResourceRequest};

    #[test]
    fn missing_required_member_is_reported_with_its_path() {
        let err =
            decode_input::<RegisterTaskDefinitionRequest>(br#"{"family":"web"}"#).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidParameterException);
        assert!(
            err.message.contains("'containerDefinitions'"),
            "{}",
            err.message
        );
    }

    #[test]
    fn enum_violation_names_the_allowed_values() {
        let body = br#"{"family":"web","networkMode":"wifi","containerDefinitions":[]}"#;
        let err = decode_input::<RegisterTaskDefinitionRequest>(body).unwrap_err();
        assert!(
            err.message.contains("Value 'wifi' at 'networkMode'"),
            "{}",
            err.message
        );
        assert!(
            err.message.contains("[bridge, host, awsvpc, none]"),
            "{}",
            err.message
        );
    }

    #[test]
    fn nested_list_paths_count_from_one() {
        let body = br#"{"resourceArn":"a","tags":[{"key":"ok"},{"key":""}]}"#;
        let err = decode_input::<TagResourceRequest>(body).unwrap_err();
        assert!(
            err.message.contains("'tags.2.member.key'"),
            "{}",
            err.message
        );
    }

    #[test]
    fn only_an_object_nested_within_bounds_is_a_request() {
        use crate::ecs::CreateClusterRequest;
        for body in [&b"[]"[..], b"\"x\"", b"5", b"null", b" [{}]"] {
            let err = decode_input::<CreateClusterRequest>(body).unwrap_err();
            assert_eq!(err.code, ErrorCode::SerializationException, "{body:?}");
        }
        let deep = |n: usize| format!("{}{}{}", "{\"a\":".repeat(n), "1", "}".repeat(n));
        let err = decode_input::<CreateClusterRequest>(deep(5000).as_bytes()).unwrap_err();
        assert_eq!(err.code, ErrorCode::SerializationException);
        assert!(decode_input::<CreateClusterRequest>(deep(MAX_DEPTH - 1).as_bytes()).is_ok());
        // Brackets inside strings are text, not nesting.
        let text = format!(
            "{{\"clusterName\":\"c\",\"x\":\"{}\\\"\"}}",
            "[".repeat(500)
        );
        assert!(decode_input::<CreateClusterRequest>(text.as_bytes()).is_ok());
        assert!(decode_input::<CreateClusterRequest>(b"  ").is_ok());
    }

    #[test]
    fn wrong_json_type_is_a_serialization_exception() {
        let err = decode_input::<RegisterTaskDefinitionRequest>(br#"{"family":5}"#).unwrap_err();
        assert_eq!(err.code, ErrorCode::SerializationException);
    }

    #[test]
    fn empty_body_decodes_to_default() {
        let r: crate::ecs::ListClustersRequest = decode_input(b"").unwrap();
        assert_eq!(r.max_results, None);
    }
}
