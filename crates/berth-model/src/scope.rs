//! The (account, region) every resource, key and handler is scoped to: an
//! account sees only its own resources, and every region is its own space.
use serde::{Deserialize, Serialize};

/// Every ECS resource lives in one account and one region.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Scope {
    pub account: String,
    pub region: String,
}

impl Scope {
    pub fn new(account: impl Into<String>, region: impl Into<String>) -> Self {
        Scope {
            account: account.into(),
            region: region.into(),
        }
    }
}
