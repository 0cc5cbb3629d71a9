//! The index's maps are keyed by tuples of owned strings; these let a lookup
//! give borrowed ones (`index.clusters.get(borrowed([account, region, name]))`)
//! instead of allocating a key per call, on paths every request takes.
use berth_model::Scope;
use std::borrow::Borrow;
use std::cmp::Ordering;

/// A key's strings in its own order (a `Scope` is its account, then its region).
pub trait Parts<const N: usize> {
    fn parts(&self) -> [&str; N];
}

impl<const N: usize> Parts<N> for [&str; N] {
    fn parts(&self) -> [&str; N] {
        *self
    }
}

impl Parts<2> for (String, String) {
    fn parts(&self) -> [&str; 2] {
        [&self.0, &self.1]
    }
}

impl Parts<3> for (Scope, String) {
    fn parts(&self) -> [&str; 3] {
        [&self.0.account, &self.0.region, &self.1]
    }
}

impl Parts<4> for (Scope, String, String) {
    fn parts(&self) -> [&str; 4] {
        [&self.0.account, &self.0.region, &self.1, &self.2]
    }
}

/// Arrays of strings order as the tuples they stand for do (field by field).
impl<const N: usize> Ord for dyn Parts<N> + '_ {
    fn cmp(&self, other: &Self) -> Ordering {
        self.parts().cmp(&other.parts())
    }
}

impl<const N: usize> PartialOrd for dyn Parts<N> + '_ {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<const N: usize> PartialEq for dyn Parts<N> + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl<const N: usize> Eq for dyn Parts<N> + '_ {}

macro_rules! borrows_as_parts {
    ($($key:ty => $n:literal),*) => {$(
        impl<'a> Borrow<dyn Parts<$n> + 'a> for $key {
            fn borrow(&self) -> &(dyn Parts<$n> + 'a) {
                self
            }
        }
    )*};
}

borrows_as_parts!((String, String) => 2, (Scope, String) => 3, (Scope, String, String) => 4);

/// The lookup key for `get` and `range` of a map keyed by owned strings.
pub fn borrowed<'k, const N: usize>(parts: &'k [&'k str; N]) -> &'k (dyn Parts<N> + 'k) {
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn borrowed_keys_find_what_owned_ones_do() {
        let mut m: BTreeMap<(Scope, String), u32> = BTreeMap::new();
        let names = ["a", "b", "ab", "", "z"];
        let scopes = [("1", "us-east-1"), ("1", "eu-west-1"), ("2", "us-east-1")];
        let mut n = 0;
        for (account, region) in scopes {
            for name in names {
                m.insert((Scope::new(account, region), name.into()), n);
                n += 1;
            }
        }
        for ((scope, name), v) in &m {
            let parts = [scope.account.as_str(), scope.region.as_str(), name.as_str()];
            assert_eq!(m.get(borrowed(&parts)), Some(v));
        }
        assert_eq!(m.get(borrowed(&["1", "us-east-1", "c"])), None);
        assert_eq!(m.get(borrowed(&["3", "us-east-1", "a"])), None);
        let mut pairs: BTreeMap<(String, String), u32> = BTreeMap::new();
        pairs.insert(("1".into(), "bob".into()), 7);
        assert_eq!(pairs.get(borrowed(&["1", "bob"])), Some(&7));
        assert_eq!(pairs.get(borrowed(&["1", "bo"])), None);
    }
}
