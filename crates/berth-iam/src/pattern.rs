//! IAM's wildcards: `*` matches any run of characters, `?` any one, the rest literally.
//! Patterns are split once when a policy is parsed, so matching does no allocation.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// `*` alone: everything.
    Any,
    Exact(String),
    /// Has `*` and no `?` (most resource ARNs and action lists): matched by [`stars`].
    Stars(String),
    /// Has a `?`; matched by [`backtracking`].
    Glob(String),
}

impl Pattern {
    /// `fold`: compare ASCII case-insensitively (actions are); the pattern is stored folded.
    pub fn new(text: &str, fold: bool) -> Pattern {
        let text = if fold {
            text.to_ascii_lowercase()
        } else {
            text.to_string()
        };
        if text == "*" {
            Pattern::Any
        } else if text.contains('?') {
            Pattern::Glob(text)
        } else if text.contains('*') {
            Pattern::Stars(text)
        } else {
            Pattern::Exact(text)
        }
    }

    /// `value` must already be folded when the pattern was.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Exact(e) => e == value,
            Pattern::Stars(g) => stars(g.as_bytes(), value.as_bytes()),
            Pattern::Glob(g) => backtracking(g.as_bytes(), value.as_bytes()),
        }
    }

    /// The pattern as written (folded when it was made so).
    pub fn text(&self) -> &str {
        match self {
            Pattern::Any => "*",
            Pattern::Exact(t) | Pattern::Stars(t) | Pattern::Glob(t) => t,
        }
    }
}

/// Wildcard match. Patterns with `*` alone (resource ARNs, action lists) are
/// matched piece by piece with a substring search; with `?`, by [`backtracking`].
pub fn glob(pattern: &[u8], value: &[u8]) -> bool {
    if pattern.contains(&b'?') {
        backtracking(pattern, value)
    } else {
        stars(pattern, value)
    }
}

/// `*` between literal pieces: the first piece starts the value, the last ends
/// it, and each one between is found leftmost after the one before (leftmost
/// leaves the most room for the rest, so no other choice can match when it fails).
fn stars(pattern: &[u8], value: &[u8]) -> bool {
    let mut pieces = pattern.split(|&c| c == b'*');
    let first = pieces.next().unwrap_or_default();
    let Some(last) = pieces.next_back() else {
        return pattern == value;
    };
    if value.len() < first.len() + last.len() || !value.starts_with(first) || !value.ends_with(last)
    {
        return false;
    }
    let mut middle = &value[first.len()..value.len() - last.len()];
    for piece in pieces {
        match find(middle, piece) {
            Some(at) => middle = &middle[at + piece.len()..],
            None => return false,
        }
    }
    true
}

/// Where `needle` first occurs in `hay`. Both are a few dozen bytes at most, where
/// looking for the first byte and comparing beats building a substring searcher.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let Some((&first, rest)) = needle.split_first() else {
        return Some(0);
    };
    let last_start = hay.len().checked_sub(needle.len())?;
    let mut from = 0;
    while from <= last_start {
        let at = from + memchr::memchr(first, &hay[from..=last_start])?;
        if hay[at + 1..at + needle.len()] == *rest {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// Wildcard match with one backtrack point: linear in practice, never exponential.
fn backtracking(pattern: &[u8], value: &[u8]) -> bool {
    let (mut p, mut v) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while v < value.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == value[v]) {
            p += 1;
            v += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, v));
            p += 1;
        } else if let Some((sp, sv)) = star {
            p = sp + 1;
            v = sv + 1;
            star = Some((sp, sv + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wildcards() {
        assert!(glob(b"ecs:describe*", b"ecs:describeclusters"));
        assert!(glob(b"ecs:*", b"ecs:"));
        assert!(!glob(b"ecs:describe*", b"ecs:listclusters"));
        assert!(glob(b"a?c", b"abc"));
        assert!(!glob(b"a?c", b"ac"));
        assert!(glob(
            b"*:cluster/*-prod",
            b"arn:aws:ecs:r:1:cluster/web-prod"
        ));
        assert!(!glob(
            b"*:cluster/*-prod",
            b"arn:aws:ecs:r:1:cluster/web-prod2"
        ));
        assert!(glob(b"**a", b"xyza"));
        assert!(Pattern::new("ECS:Describe*", true).matches("ecs:describeclusters"));
        assert!(!Pattern::new("Cluster/A", false).matches("cluster/a"));
    }

    /// A regular-expression reference for the same wildcard language.
    fn reference(pattern: &str, value: &str) -> bool {
        fn go(p: &[char], v: &[char]) -> bool {
            match p.first() {
                None => v.is_empty(),
                Some('*') => (0..=v.len()).any(|i| go(&p[1..], &v[i..])),
                Some('?') => !v.is_empty() && go(&p[1..], &v[1..]),
                Some(c) => v.first() == Some(c) && go(&p[1..], &v[1..]),
            }
        }
        let p: Vec<char> = pattern.chars().collect();
        let v: Vec<char> = value.chars().collect();
        go(&p, &v)
    }

    proptest! {
        #[test]
        fn glob_agrees_with_the_reference(p in "[ab*?]{0,8}", v in "[ab]{0,10}") {
            prop_assert_eq!(glob(p.as_bytes(), v.as_bytes()), reference(&p, &v));
        }

        #[test]
        fn star_only_patterns_agree_with_the_reference(p in "[ab*]{0,10}", v in "[ab]{0,12}") {
            prop_assert_eq!(glob(p.as_bytes(), v.as_bytes()), reference(&p, &v));
        }

        #[test]
        fn a_value_matches_itself_and_star(v in "[a-z:/]{0,20}") {
            prop_assert!(Pattern::new(&v, false).matches(&v));
            prop_assert!(Pattern::new("*", false).matches(&v));
        }
    }
}
