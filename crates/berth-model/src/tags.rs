//! ECS tag rules (on top of the model's length limits).
use berth_api::ecs::Tag;
use berth_api::ApiError;

pub const MAX_TAGS: usize = 50;

pub fn validate(tags: &[Tag]) -> Result<(), ApiError> {
    if tags.len() > MAX_TAGS {
        return Err(ApiError::invalid_parameter(format!(
            "The number of tags exceeds the limit of {MAX_TAGS} tags per resource."
        )));
    }
    for t in tags {
        let key = t.key.as_deref().unwrap_or("");
        if key.is_empty() {
            return Err(ApiError::invalid_parameter("Tag keys must not be empty."));
        }
        if key.to_ascii_lowercase().starts_with("aws:") {
            return Err(ApiError::invalid_parameter(
                "Tag keys beginning with 'aws:' are reserved for AWS use.",
            ));
        }
        let allowed = |s: &str| {
            s.chars()
                .all(|c| c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c))
        };
        if !allowed(key) || !allowed(t.value.as_deref().unwrap_or("")) {
            return Err(ApiError::invalid_parameter(format!(
                "Tag '{key}' contains characters that are not allowed: use letters, numbers, spaces and _ . : / = + - @."
            )));
        }
    }
    Ok(())
}

/// Tags after adding `new` to `current`: a key that exists takes the new value.
pub fn merge(current: &[Tag], new: &[Tag]) -> Vec<Tag> {
    let mut out: Vec<Tag> = current.to_vec();
    for t in new {
        match out.iter_mut().find(|c| c.key == t.key) {
            Some(c) => c.value = t.value.clone(),
            None => out.push(t.clone()),
        }
    }
    out
}

pub fn remove(current: &[Tag], keys: &[String]) -> Vec<Tag> {
    current
        .iter()
        .filter(|t| !keys.iter().any(|k| Some(k) == t.key.as_ref()))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(k: &str, v: &str) -> Tag {
        Tag {
            key: Some(k.into()),
            value: Some(v.into()),
        }
    }

    #[test]
    fn merge_overwrites_and_appends() {
        let m = merge(
            &[tag("a", "1"), tag("b", "2")],
            &[tag("b", "3"), tag("c", "4")],
        );
        assert_eq!(m, vec![tag("a", "1"), tag("b", "3"), tag("c", "4")]);
        assert_eq!(
            remove(&m, &["a".into(), "zz".into()]),
            vec![tag("b", "3"), tag("c", "4")]
        );
    }

    #[test]
    fn refuses_reserved_prefix_and_too_many() {
        assert!(validate(&[tag("aws:x", "1")]).is_err());
        assert!(validate(&[tag("AWS:x", "1")]).is_err());
        let many: Vec<Tag> = (0..51).map(|i| tag(&format!("k{i}"), "v")).collect();
        assert!(validate(&many).is_err());
        assert!(validate(&many[..50]).is_ok());
        assert!(validate(&[tag("bad#key", "1")]).is_err());
    }
}
