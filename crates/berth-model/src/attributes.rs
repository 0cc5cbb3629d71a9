//! Custom attributes of container instances (PutAttributes, DeleteAttributes,
//! ListAttributes): what names and values ECS takes and how a put or a delete
//! changes an instance's list.
use berth_api::ecs::{Attribute, ContainerInstance};
use berth_api::ApiError;

/// The only target type ECS has attributes for.
pub const CONTAINER_INSTANCE: &str = "container-instance";
/// Custom attributes one resource may carry.
pub const MAX_CUSTOM: usize = 10;
/// Attributes one PutAttributes or DeleteAttributes call may name.
pub const MAX_PER_CALL: usize = 10;
const MAX_LEN: usize = 128;
/// ECS's own attributes (`ecs.os-type`, `com.amazonaws.ecs.capability.*`) are not the
/// caller's to change.
const RESERVED_PREFIXES: [&str; 2] = ["ecs.", "com.amazonaws.ecs."];

fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '/' | '\\' | '.')
}

fn value_char(c: char) -> bool {
    name_char(c) || matches!(c, '@' | ':' | ' ')
}

/// An attribute name as ECS takes it: 1-128 letters, digits, `-_/\.`.
pub fn check_name(name: &str) -> Result<(), ApiError> {
    if name.is_empty() || name.chars().count() > MAX_LEN || !name.chars().all(name_char) {
        return Err(ApiError::invalid_parameter(format!(
            "Attribute name '{name}' is invalid: it must be 1 to 128 letters, numbers, hyphens, underscores, forward slashes, back slashes or periods."
        )));
    }
    Ok(())
}

/// An attribute value as ECS takes it: 1-128 of the name's characters plus `@`, `:` and
/// inner spaces.
pub fn check_value(name: &str, value: &str) -> Result<(), ApiError> {
    let ok = !value.is_empty()
        && value.chars().count() <= MAX_LEN
        && value.chars().all(value_char)
        && !value.starts_with(' ')
        && !value.ends_with(' ');
    if !ok {
        return Err(ApiError::invalid_parameter(format!(
            "The value of attribute '{name}' is invalid: it must be 1 to 128 letters, numbers, hyphens, underscores, periods, at signs, forward slashes, back slashes, colons or spaces, and cannot start or end with a space."
        )));
    }
    Ok(())
}

/// Whether an attribute is one the caller set (not one of ECS's own).
pub fn is_custom(name: &str) -> bool {
    !RESERVED_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// The checks every attribute of a PutAttributes or DeleteAttributes call passes before
/// its target is looked up: a valid name, not reserved, a target type ECS knows.
pub fn check_request_attribute(a: &Attribute, with_value: bool) -> Result<(), ApiError> {
    let name = a.name.as_deref().unwrap_or_default();
    check_name(name)?;
    if !is_custom(name) {
        return Err(ApiError::invalid_parameter(format!(
            "Attribute name '{name}' is reserved: attributes that begin with 'ecs.' or 'com.amazonaws.ecs.' are set by Amazon ECS."
        )));
    }
    if with_value {
        if let Some(v) = &a.value {
            check_value(name, v)?;
        }
    }
    if a.target_id.as_deref().unwrap_or_default().is_empty() {
        return Err(ApiError::invalid_parameter(format!(
            "Attribute '{name}' has no targetId."
        )));
    }
    Ok(())
}

/// Whether a call may not name so many attributes.
pub fn check_count(given: &[Attribute]) -> Result<(), ApiError> {
    if given.is_empty() || given.len() > MAX_PER_CALL {
        return Err(ApiError::invalid_parameter(format!(
            "attributes must have between 1 and {MAX_PER_CALL} items."
        )));
    }
    Ok(())
}

/// The instance's attributes with `given` put on it (a name already there takes the new
/// value), or `None` when it would carry more than ten custom attributes.
pub fn put(current: &[Attribute], given: &[Attribute], target_arn: &str) -> Option<Vec<Attribute>> {
    let mut out = current.to_vec();
    for g in given {
        let new = Attribute {
            name: g.name.clone(),
            value: g.value.clone(),
            target_type: Some(CONTAINER_INSTANCE.into()),
            target_id: Some(target_arn.into()),
        };
        match out.iter_mut().find(|a| a.name == g.name) {
            Some(there) => *there = new,
            None => out.push(new),
        }
    }
    let custom = out
        .iter()
        .filter(|a| is_custom(a.name.as_deref().unwrap_or_default()))
        .count();
    (custom <= MAX_CUSTOM).then_some(out)
}

/// The instance's attributes without the named ones, and the ones taken away.
pub fn delete(current: &[Attribute], names: &[&str]) -> (Vec<Attribute>, Vec<Attribute>) {
    current
        .iter()
        .cloned()
        .partition(|a| !names.contains(&a.name.as_deref().unwrap_or_default()))
}

/// A re-registration's attributes: the agent's, plus the custom ones put through the API
/// before (the agent's own value wins for a name both have).
pub fn keep_put(registered: &mut Vec<Attribute>, previous: Option<&ContainerInstance>) {
    let before = previous
        .and_then(|p| p.attributes.as_deref())
        .unwrap_or_default();
    for a in before {
        let name = a.name.as_deref().unwrap_or_default();
        if is_custom(name) && !registered.iter().any(|r| r.name == a.name) {
            registered.push(a.clone());
        }
    }
}

/// Whether an attribute matches ListAttributes' name and value filters.
pub fn matches(a: &Attribute, name: Option<&str>, value: Option<&str>) -> bool {
    name.is_none_or(|n| a.name.as_deref() == Some(n))
        && value.is_none_or(|v| a.value.as_deref() == Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::ErrorCode;

    fn attr(name: &str, value: Option<&str>) -> Attribute {
        Attribute {
            name: Some(name.into()),
            value: value.map(str::to_string),
            target_id: Some("ci-1".into()),
            target_type: Some(CONTAINER_INSTANCE.into()),
        }
    }

    #[test]
    fn names_and_values_take_the_characters_ecs_lists() {
        assert!(check_name("stack").is_ok());
        assert!(check_name("team/a\\b.c_d-e").is_ok());
        assert!(check_name(&"n".repeat(128)).is_ok());
        for bad in ["", "with space", "a@b", "a:b", &"n".repeat(129)] {
            let e = check_name(bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidParameterException, "{bad:?}");
        }
        assert!(check_value("n", "prod east@a:b/c\\d").is_ok());
        for bad in ["", " lead", "trail ", "a#b", &"v".repeat(129)] {
            assert!(check_value("n", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ecs_names_and_missing_targets_are_refused() {
        let e = check_request_attribute(&attr("ecs.os-type", Some("windows")), true).unwrap_err();
        assert!(e.message.contains("reserved"), "{}", e.message);
        let mut no_target = attr("stack", Some("prod"));
        no_target.target_id = None;
        assert!(check_request_attribute(&no_target, true).is_err());
        assert!(check_request_attribute(&attr("stack", Some(" x")), true).is_err());
        // A delete names attributes by name; their values are not looked at.
        assert!(check_request_attribute(&attr("stack", Some(" x")), false).is_ok());
        assert!(check_count(&[]).is_err());
        assert!(check_count(&vec![attr("a", None); 11]).is_err());
        assert!(check_count(&vec![attr("a", None); 10]).is_ok());
    }

    #[test]
    fn a_put_replaces_a_value_and_stops_at_ten_custom_attributes() {
        let current = vec![
            attr("ecs.os-type", Some("linux")),
            attr("stack", Some("dev")),
        ];
        let out = put(
            &current,
            &[attr("stack", Some("prod")), attr("tier", None)],
            "arn:ci",
        )
        .unwrap();
        assert_eq!(out.len(), 3);
        assert_eq!(out[1].value.as_deref(), Some("prod"));
        assert_eq!(out[2].name.as_deref(), Some("tier"));
        assert_eq!(out[2].target_id.as_deref(), Some("arn:ci"));
        let nine: Vec<_> = (0..9).map(|i| attr(&format!("c{i}"), None)).collect();
        let mut with_ecs = nine.clone();
        with_ecs.push(attr("ecs.instance-type", Some("t3.micro")));
        with_ecs.push(attr("com.amazonaws.ecs.capability.task-iam-role", None));
        // ECS's own attributes do not count against the ten.
        assert_eq!(put(&with_ecs, &[attr("c9", None)], "a").unwrap().len(), 12);
        assert!(put(&with_ecs, &[attr("c9", None), attr("c10", None)], "a").is_none());
        // Putting a name again is not one more.
        let ten = put(&nine, &[attr("c9", None)], "a").unwrap();
        assert!(put(&ten, &[attr("c0", Some("x"))], "a").is_some());
    }

    #[test]
    fn a_delete_takes_away_only_the_named_ones() {
        let current = vec![attr("a", Some("1")), attr("b", None), attr("c", Some("3"))];
        let (kept, gone) = delete(&current, &["a", "c", "zzz"]);
        assert_eq!(kept, vec![attr("b", None)]);
        assert_eq!(gone.len(), 2);
    }

    #[test]
    fn a_reregistration_keeps_attributes_put_through_the_api() {
        let previous = ContainerInstance {
            attributes: Some(vec![
                attr("ecs.os-type", Some("linux")),
                attr("stack", Some("prod")),
                attr("zone", Some("old")),
            ]),
            ..Default::default()
        };
        let mut registered = vec![
            attr("ecs.os-type", Some("linux")),
            attr("zone", Some("new")),
        ];
        keep_put(&mut registered, Some(&previous));
        let names: Vec<_> = registered
            .iter()
            .map(|a| (a.name.clone().unwrap(), a.value.clone()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("ecs.os-type".into(), Some("linux".into())),
                ("zone".into(), Some("new".into())),
                ("stack".into(), Some("prod".into())),
            ]
        );
    }

    #[test]
    fn list_filters_match_name_then_value() {
        let a = attr("stack", Some("prod"));
        assert!(matches(&a, None, None));
        assert!(matches(&a, Some("stack"), None));
        assert!(matches(&a, Some("stack"), Some("prod")));
        assert!(!matches(&a, Some("stack"), Some("dev")));
        assert!(!matches(&a, Some("tier"), None));
    }
}
