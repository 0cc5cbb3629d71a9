//! The request context: the condition keys and their values for one call.
use std::collections::HashMap;

/// Keys are case-insensitive, as IAM's are; a key may carry several values.
#[derive(Debug, Clone, Default)]
pub struct Context {
    values: HashMap<String, Vec<String>>,
    /// Keys of one resource (its tags, its cluster), looked at first; pushed and
    /// popped per resource so the call's keys are not copied for each.
    layer: Vec<(String, Vec<String>)>,
}

impl Context {
    pub fn new() -> Context {
        Context::default()
    }

    pub fn set(&mut self, key: &str, value: impl Into<String>) -> &mut Context {
        self.values
            .insert(key.to_ascii_lowercase(), vec![value.into()]);
        self
    }

    pub fn set_all(&mut self, key: &str, values: Vec<String>) -> &mut Context {
        self.values.insert(key.to_ascii_lowercase(), values);
        self
    }

    /// `key` must already be lowercase (policies store their keys folded).
    pub fn get(&self, key: &str) -> Option<&[String]> {
        if let Some((_, v)) = self.layer.iter().rev().find(|(k, _)| k == key) {
            return Some(v);
        }
        self.values.get(key).map(Vec::as_slice)
    }

    /// Adds a key of one resource over the call's keys, until `pop_layer`.
    pub fn push_layer(&mut self, key: &str, value: impl Into<String>) {
        self.layer
            .push((key.to_ascii_lowercase(), vec![value.into()]));
    }

    /// Takes every resource key off again.
    pub fn pop_layer(&mut self) {
        self.layer.clear();
    }

    /// Replaces each `${key}` of a 2012-10-17 policy string by the key's value;
    /// `${*}`, `${?}` and `${$}` stand for the characters themselves. `None` when a
    /// key is missing, so the string matches nothing (as IAM does).
    pub fn substitute(&self, template: &str) -> Option<String> {
        let mut out = String::with_capacity(template.len());
        let mut rest = template;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after.find('}')?;
            let name = &after[..end];
            match name {
                "*" | "?" | "$" => out.push_str(name),
                _ => {
                    // `${key, 'default'}` gives a value when the key is missing.
                    let (key, default) = match name.split_once(',') {
                        Some((k, d)) => (k.trim(), Some(d.trim().trim_matches('\''))),
                        None => (name, None),
                    };
                    match self.get(&key.to_ascii_lowercase()).and_then(|v| v.first()) {
                        Some(v) => out.push_str(v),
                        None => out.push_str(default?),
                    }
                }
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_fold_and_variables_resolve() {
        let mut c = Context::new();
        c.set("aws:username", "bob");
        assert_eq!(c.get("aws:username"), Some(&["bob".to_string()][..]));
        assert_eq!(
            c.substitute("arn:aws:iam::1:user/${aws:UserName}")
                .as_deref(),
            Some("arn:aws:iam::1:user/bob")
        );
        assert_eq!(c.substitute("a${*}b${?}").as_deref(), Some("a*b?"));
        assert_eq!(c.substitute("x/${aws:missing}"), None);
        assert_eq!(
            c.substitute("x/${aws:missing, 'none'}").as_deref(),
            Some("x/none")
        );
        c.push_layer("aws:username", "eve");
        assert_eq!(c.get("aws:username"), Some(&["eve".to_string()][..]));
        c.pop_layer();
        assert_eq!(c.get("aws:username"), Some(&["bob".to_string()][..]));
    }
}
