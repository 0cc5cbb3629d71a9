//! The request context: the condition keys and their values for one call.
use std::borrow::Cow;
use std::sync::OnceLock;

/// Keys are case-insensitive, as IAM's are; a key may carry several values.
/// AWS's global keys that every call carries have fixed places (setting one is a
/// store, not a search); the others are few, so a list searched from its end
/// beats a hash map: nothing to hash, and a key written folded costs no
/// allocation. Values may borrow from the caller and the request (`'a`).
#[derive(Debug, Clone, Default)]
pub struct Context<'a> {
    globals: [Option<Values<'a>>; Global::ALL.len()],
    entries: Vec<(Cow<'static, str>, Values<'a>)>,
    /// How many entries are the call's: those after are one resource's (its
    /// tags, its cluster), pushed and popped per resource over the call's.
    base: Option<usize>,
}

#[derive(Debug, Clone)]
enum Values<'a> {
    One(Cow<'a, str>),
    Many(Vec<Cow<'a, str>>),
    /// Written out the first time a condition asks (the request's time, in two
    /// spellings): most calls have no condition that reads it.
    Later {
        make: fn(i64) -> String,
        from: i64,
        // Owned, so the context stays covariant in `'a` (a cell of `'a` would pin it).
        made: OnceLock<Cow<'static, str>>,
    },
}

impl<'a> Values<'a> {
    fn as_slice(&self) -> &[Cow<'a, str>] {
        match self {
            Values::One(v) => std::slice::from_ref(v),
            Values::Many(v) => v,
            Values::Later { make, from, made } => {
                std::slice::from_ref(made.get_or_init(|| Cow::Owned(make(*from))))
            }
        }
    }
}

/// The global condition keys every call carries (AWS's `aws:` keys of the
/// request and its principal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Global {
    PrincipalArn,
    PrincipalAccount,
    PrincipalType,
    UserName,
    UserId,
    RequestedRegion,
    SecureTransport,
    SourceIp,
    EpochTime,
    CurrentTime,
}

impl Global {
    pub const ALL: [Global; 10] = [
        Global::PrincipalArn,
        Global::PrincipalAccount,
        Global::PrincipalType,
        Global::UserName,
        Global::UserId,
        Global::RequestedRegion,
        Global::SecureTransport,
        Global::SourceIp,
        Global::EpochTime,
        Global::CurrentTime,
    ];

    /// The key, folded as the context's keys are.
    pub fn key(self) -> &'static str {
        match self {
            Global::PrincipalArn => "aws:principalarn",
            Global::PrincipalAccount => "aws:principalaccount",
            Global::PrincipalType => "aws:principaltype",
            Global::UserName => "aws:username",
            Global::UserId => "aws:userid",
            Global::RequestedRegion => "aws:requestedregion",
            Global::SecureTransport => "aws:securetransport",
            Global::SourceIp => "aws:sourceip",
            Global::EpochTime => "aws:epochtime",
            Global::CurrentTime => "aws:currenttime",
        }
    }

    fn named(key: &str) -> Option<Global> {
        Global::ALL.into_iter().find(|g| g.key() == key)
    }
}

/// A key made at run time (`aws:ResourceTag/{tag}`) is folded here; a key
/// written in the code must be written folded, and costs nothing.
fn fold(key: Cow<'static, str>) -> Cow<'static, str> {
    match key {
        Cow::Borrowed(k) => {
            debug_assert!(
                !k.bytes().any(|b| b.is_ascii_uppercase()),
                "context key {k} is not written folded"
            );
            key
        }
        Cow::Owned(k) => Cow::Owned(k.to_ascii_lowercase()),
    }
}

impl<'a> Context<'a> {
    pub fn new() -> Context<'a> {
        Context::default()
    }

    /// A global key's value (it replaces any set before).
    pub fn set_global(&mut self, key: Global, value: impl Into<Cow<'a, str>>) -> &mut Context<'a> {
        self.globals[key as usize] = Some(Values::One(value.into()));
        self
    }

    /// A global key whose one value is `make(from)`, made only if it is read.
    pub fn set_global_later(
        &mut self,
        key: Global,
        from: i64,
        make: fn(i64) -> String,
    ) -> &mut Context<'a> {
        let made = OnceLock::new();
        self.globals[key as usize] = Some(Values::Later { make, from, made });
        self
    }

    fn put(&mut self, key: Cow<'static, str>, values: Values<'a>) -> &mut Context<'a> {
        let key = fold(key);
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = values,
            None => self.entries.push((key, values)),
        }
        self
    }

    pub fn set(
        &mut self,
        key: impl Into<Cow<'static, str>>,
        value: impl Into<Cow<'a, str>>,
    ) -> &mut Context<'a> {
        self.put(key.into(), Values::One(value.into()))
    }

    pub fn set_all(
        &mut self,
        key: impl Into<Cow<'static, str>>,
        values: Vec<String>,
    ) -> &mut Context<'a> {
        let values = values.into_iter().map(Cow::Owned).collect();
        self.put(key.into(), Values::Many(values))
    }

    /// A key whose one value is `make(from)`, made only if it is read.
    pub fn set_later(
        &mut self,
        key: impl Into<Cow<'static, str>>,
        from: i64,
        make: fn(i64) -> String,
    ) -> &mut Context<'a> {
        let made = OnceLock::new();
        self.put(key.into(), Values::Later { make, from, made })
    }

    /// `key` must already be lowercase (policies store their keys folded).
    pub fn get(&self, key: &str) -> Option<&[Cow<'a, str>]> {
        let set = self.entries.iter().rev().find(|(k, _)| k == key);
        let values = match set {
            Some((_, v)) => Some(v),
            None => Global::named(key).and_then(|g| self.globals[g as usize].as_ref()),
        };
        values.map(Values::as_slice)
    }

    /// Adds a key of one resource over the call's keys, until `pop_layer`.
    pub fn push_layer(
        &mut self,
        key: impl Into<Cow<'static, str>>,
        value: impl Into<Cow<'a, str>>,
    ) {
        self.base.get_or_insert(self.entries.len());
        self.entries
            .push((fold(key.into()), Values::One(value.into())));
    }

    /// Takes every resource key off again.
    pub fn pop_layer(&mut self) {
        if let Some(base) = self.base.take() {
            self.entries.truncate(base);
        }
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
        assert_eq!(c.get("aws:username"), Some(&[Cow::from("bob")][..]));
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
        c.set_later("aws:epochtime", 7, |t| (t * 2).to_string());
        assert_eq!(c.get("aws:epochtime"), Some(&[Cow::from("14")][..]));
        c.push_layer("aws:username", "eve");
        assert_eq!(c.get("aws:username"), Some(&[Cow::from("eve")][..]));
        c.pop_layer();
        assert_eq!(c.get("aws:username"), Some(&[Cow::from("bob")][..]));
    }

    #[test]
    fn global_keys_read_like_any_other_and_layers_go_over_them() {
        let mut c = Context::new();
        assert_eq!(c.get("aws:requestedregion"), None);
        c.set_global(Global::RequestedRegion, "eu-west-1")
            .set_global_later(Global::EpochTime, 5, |t| (t + 1).to_string());
        assert_eq!(
            c.get("aws:requestedregion"),
            Some(&[Cow::from("eu-west-1")][..])
        );
        assert_eq!(c.get("aws:epochtime"), Some(&[Cow::from("6")][..]));
        assert_eq!(
            c.substitute("${aws:RequestedRegion}").as_deref(),
            Some("eu-west-1")
        );
        c.push_layer("aws:requestedregion", "us-east-1");
        assert_eq!(
            c.get("aws:requestedregion"),
            Some(&[Cow::from("us-east-1")][..])
        );
        c.pop_layer();
        assert_eq!(
            c.get("aws:requestedregion"),
            Some(&[Cow::from("eu-west-1")][..])
        );
        for g in Global::ALL {
            assert_eq!(Global::named(g.key()), Some(g));
        }
    }
}
