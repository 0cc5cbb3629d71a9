//! EC2's `Filter.N.Name` / `Filter.N.Value.M`: a resource matches when, for
//! every filter, one of its values matches one of the filter's (with `*` and
//! `?` wildcards); `tag:Key` and `tag-key` read its tags.
use berth_api::{ApiError, ErrorCode};

/// A resource's values under a filter name it knows, or None for a name it does not.
pub trait Filterable {
    fn values(&self, filter: &str) -> Option<Vec<String>>;
    fn tag_list(&self) -> &[(String, String)];
}

pub fn matches(
    item: &impl Filterable,
    filters: &[(String, Vec<String>)],
) -> Result<bool, ApiError> {
    for (name, wanted) in filters {
        let have = if let Some(key) = name.strip_prefix("tag:") {
            item.tag_list()
                .iter()
                .filter(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .collect()
        } else if name == "tag-key" {
            item.tag_list().iter().map(|(k, _)| k.clone()).collect()
        } else {
            item.values(name).ok_or_else(|| {
                ApiError::new(
                    ErrorCode::InvalidParameterValue,
                    format!("The filter '{name}' is invalid"),
                )
            })?
        };
        if !have.iter().any(|h| wanted.iter().any(|w| wildcard(w, h))) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The items that match every filter, in order.
pub fn filtered<'a, T: Filterable>(
    items: impl IntoIterator<Item = &'a T>,
    filters: &[(String, Vec<String>)],
) -> Result<Vec<&'a T>, ApiError> {
    let mut out = vec![];
    for t in items {
        if matches(t, filters)? {
            out.push(t);
        }
    }
    Ok(out)
}

/// `*` matches any run of characters, `?` any one.
fn wildcard(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // matched[j]: pattern so far matches t[..j].
    let mut matched = vec![false; t.len() + 1];
    matched[0] = true;
    for c in p {
        let mut next = vec![false; t.len() + 1];
        for j in 0..=t.len() {
            next[j] = match c {
                '*' => matched[j] || (j > 0 && next[j - 1]),
                '?' => j > 0 && matched[j - 1],
                c => j > 0 && matched[j - 1] && t[j - 1] == c,
            };
        }
        matched = next;
    }
    matched[t.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Thing(Vec<(String, String)>);
    impl Filterable for Thing {
        fn values(&self, filter: &str) -> Option<Vec<String>> {
            (filter == "state").then(|| vec!["available".to_string()])
        }
        fn tag_list(&self) -> &[(String, String)] {
            &self.0
        }
    }

    fn f(name: &str, values: &[&str]) -> (String, Vec<String>) {
        (name.into(), values.iter().map(|v| v.to_string()).collect())
    }

    #[test]
    fn filters_and_across_names_or_within_values_with_wildcards() {
        let t = Thing(vec![("Name".into(), "web-1".into())]);
        assert!(matches(&t, &[]).unwrap());
        assert!(matches(&t, &[f("state", &["pending", "available"])]).unwrap());
        assert!(!matches(&t, &[f("state", &["pending"])]).unwrap());
        assert!(matches(&t, &[f("tag:Name", &["web-*"]), f("tag-key", &["Na?e"])]).unwrap());
        assert!(!matches(&t, &[f("tag:Name", &["db-*"])]).unwrap());
        assert!(!matches(&t, &[f("tag:Other", &["*"])]).unwrap());
        assert_eq!(
            matches(&t, &[f("colour", &["red"])]).unwrap_err().code,
            ErrorCode::InvalidParameterValue
        );
        assert!(wildcard("*", "") && wildcard("a*c", "abbc") && !wildcard("a?c", "abbc"));
    }
}
