//! ECS name rules: up to 255 letters, numbers, hyphens and underscores.

pub const MAX_NAME_LEN: usize = 255;

pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn examples() {
        assert!(is_valid_name("web-app_2"));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name("has space"));
        assert!(!is_valid_name("dot.ted"));
        assert!(!is_valid_name(&"a".repeat(256)));
        assert!(is_valid_name(&"a".repeat(255)));
    }

    proptest! {
        #[test]
        fn any_name_with_a_foreign_char_is_refused(prefix in "[a-z]{0,5}", c in "[^a-zA-Z0-9_-]", suffix in "[a-z]{0,5}") {
            let name = format!("{prefix}{c}{suffix}");
            prop_assert!(!is_valid_name(&name));
        }
    }
}
