//! Opaque `nextToken`s: the key of the last item returned, so a page
//! continues after it even when items were added or removed meanwhile.
use crate::ApiError;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

const PREFIX: &str = "berth1:";

pub fn encode_token(last_key: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{PREFIX}{last_key}"))
}

pub fn decode_token(token: &str) -> Result<String, ApiError> {
    let bad = || ApiError::invalid_parameter("Invalid nextToken.");
    let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    text.strip_prefix(PREFIX)
        .map(str::to_string)
        .ok_or_else(bad)
}

/// Page size rules of one operation.
#[derive(Debug, Clone, Copy)]
pub struct PageLimits {
    pub default_max: usize,
    pub limit_max: usize,
    /// Items come in descending key order.
    pub descending: bool,
}

impl PageLimits {
    pub const fn new(default_max: usize, limit_max: usize) -> Self {
        PageLimits {
            default_max,
            limit_max,
            descending: false,
        }
    }
}

/// A validated page request: how many items, and the key to continue after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub max: usize,
    /// The key of the last item of the previous page.
    pub after: Option<String>,
    pub descending: bool,
}

impl Page {
    pub fn new(
        max_results: Option<i32>,
        next_token: Option<&str>,
        limits: PageLimits,
    ) -> Result<Page, ApiError> {
        let max = match max_results {
            None => limits.default_max,
            Some(n) if n >= 1 && (n as usize) <= limits.limit_max => n as usize,
            Some(n) => {
                return Err(ApiError::invalid_parameter(format!(
                    "maxResults must be between 1 and {}, got {n}.",
                    limits.limit_max
                )))
            }
        };
        let after = next_token.map(decode_token).transpose()?;
        Ok(Page {
            max,
            after,
            descending: limits.descending,
        })
    }

    /// Takes this page from `items` (in key order): skips up to the token's
    /// key and stops one past the page, so a caller that can seek its
    /// iterator to the token never walks more than a page.
    pub fn take<T, I, K>(&self, items: I, key: K) -> (Vec<T>, Option<String>)
    where
        I: IntoIterator<Item = T>,
        K: Fn(&T) -> String,
    {
        let past = |i: &T| {
            self.after.as_ref().is_none_or(|a| {
                let k = key(i);
                if self.descending {
                    k.as_str() < a.as_str()
                } else {
                    k.as_str() > a.as_str()
                }
            })
        };
        let mut page: Vec<T> = items.into_iter().filter(past).take(self.max + 1).collect();
        let next = if page.len() > self.max {
            page.truncate(self.max);
            page.last().map(|i| encode_token(&key(i)))
        } else {
            None
        };
        (page, next)
    }
}

/// One page of `items` (sorted by `key`), after `next_token` if given.
pub fn page<T, I, K>(
    items: I,
    key: K,
    max_results: Option<i32>,
    next_token: Option<&str>,
    limits: PageLimits,
) -> Result<(Vec<T>, Option<String>), ApiError>
where
    I: IntoIterator<Item = T>,
    K: Fn(&T) -> String,
{
    Ok(Page::new(max_results, next_token, limits)?.take(items, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_cover_every_item_once_in_order() {
        let items: Vec<String> = (0..7).map(|i| format!("k{i}")).collect();
        let mut seen = vec![];
        let mut token = None;
        loop {
            let (p, next) = page(
                items.clone(),
                |s| s.clone(),
                Some(3),
                token.as_deref(),
                PageLimits::new(100, 100),
            )
            .unwrap();
            seen.extend(p);
            match next {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        assert_eq!(seen, items);
    }

    #[test]
    fn descending_pages_continue_downwards() {
        let items: Vec<String> = vec!["c".into(), "b".into(), "a".into()];
        let lim = PageLimits {
            descending: true,
            ..PageLimits::new(100, 100)
        };
        let (p1, t) = page(items.clone(), |s| s.clone(), Some(2), None, lim).unwrap();
        assert_eq!(p1, ["c", "b"]);
        let (p2, t2) = page(items, |s| s.clone(), Some(2), t.as_deref(), lim).unwrap();
        assert_eq!(p2, ["a"]);
        assert_eq!(t2, None);
    }

    #[test]
    fn garbage_token_is_invalid_parameter() {
        let err = page(
            vec!["a".to_string()],
            |s| s.clone(),
            None,
            Some("!!"),
            PageLimits::new(100, 100),
        )
        .unwrap_err();
        assert_eq!(err.code, crate::ErrorCode::InvalidParameterException);
    }

    #[test]
    fn max_results_out_of_range_is_refused() {
        assert!(page(
            vec!["a".to_string()],
            |s| s.clone(),
            Some(0),
            None,
            PageLimits::new(100, 100),
        )
        .is_err());
        assert!(page(
            vec!["a".to_string()],
            |s| s.clone(),
            Some(101),
            None,
            PageLimits::new(100, 100),
        )
        .is_err());
    }
}
