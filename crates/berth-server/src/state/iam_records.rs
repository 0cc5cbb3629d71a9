//! IAM's stored records: roles, users, customer managed policies, access keys,
//! and the key that signs role sessions. Policy documents are stored as the
//! text the caller gave and kept parsed beside it, so a call's authorization
//! never parses.
use berth_iam::{Kind, Policy, PolicySet};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// A policy document: its text, and the policy parsed from it. `TRUST`: a
/// resource policy (a role's trust policy), which names principals.
#[derive(Debug, Clone)]
pub struct Document<const TRUST: bool> {
    pub text: String,
    pub policy: Arc<Policy>,
}

pub type IdentityDocument = Document<false>;
pub type TrustDocument = Document<true>;

impl<const TRUST: bool> Document<TRUST> {
    pub fn parse(text: &str) -> Result<Self, berth_iam::PolicyError> {
        let kind = if TRUST {
            Kind::Resource
        } else {
            Kind::Identity
        };
        Ok(Document {
            text: text.to_string(),
            policy: Arc::new(Policy::parse(text, kind)?),
        })
    }
}

impl<const TRUST: bool> Serialize for Document<TRUST> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de, const TRUST: bool> Deserialize<'de> for Document<TRUST> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Document::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// What roles and users both carry: inline policies by name, attached managed policy ARNs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Permissions {
    #[serde(default)]
    pub inline: BTreeMap<String, IdentityDocument>,
    #[serde(default)]
    pub attached: Vec<String>,
    /// The documents of both, gathered the first time a call needs them.
    #[serde(skip)]
    pub gathered: Gathered,
}

/// Every policy of one user or role, as of the index's `iam_policies_revision`: the
/// record itself changes with each attach, detach or inline put, so only managed
/// policies made or deleted since can make the list stale.
#[derive(Debug, Default)]
pub struct Gathered(std::sync::Mutex<Option<(u64, Arc<PolicySet>)>>);

impl Gathered {
    /// The set gathered at `revision`, or `gather`'s, kept for the next call.
    pub fn get_or(
        &self,
        revision: u64,
        gather: impl FnOnce() -> Vec<Arc<Policy>>,
    ) -> Arc<PolicySet> {
        let mut held = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match &*held {
            Some((r, list)) if *r == revision => list.clone(),
            _ => {
                let list = Arc::new(PolicySet::new(gather()));
                *held = Some((revision, list.clone()));
                list
            }
        }
    }
}

/// Most sessions whose session policies are kept parsed; past it all are
/// forgotten and parsed again as their calls come.
pub const SESSION_POLICIES_KEPT: usize = 4096;

/// The session policies of role sessions, parsed once per session (by its
/// access key id, which its token's HMAC binds to them) and index revision.
#[derive(Debug, Default)]
pub struct SessionPolicies(std::sync::Mutex<HashMap<String, (u64, Arc<PolicySet>)>>);

impl SessionPolicies {
    pub fn get_or(
        &self,
        access_key_id: &str,
        revision: u64,
        gather: impl FnOnce() -> Vec<Arc<Policy>>,
    ) -> Arc<PolicySet> {
        let mut held = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((r, set)) = held.get(access_key_id) {
            if *r == revision {
                return set.clone();
            }
        }
        if held.len() >= SESSION_POLICIES_KEPT {
            held.clear();
        }
        let set = Arc::new(PolicySet::new(gather()));
        held.insert(access_key_id.to_string(), (revision, set.clone()));
        set
    }
}

impl Clone for Gathered {
    /// A copy gathers again: it may be about to change.
    fn clone(&self) -> Gathered {
        Gathered::default()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoleRecord {
    pub name: String,
    pub path: String,
    pub id: String,
    pub created: i64,
    pub trust: TrustDocument,
    #[serde(default)]
    pub description: Option<String>,
    pub max_session_duration: i64,
    #[serde(default)]
    pub tags: Vec<(String, String)>,
    #[serde(default)]
    pub permissions: Permissions,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserRecord {
    pub name: String,
    pub path: String,
    pub id: String,
    pub created: i64,
    #[serde(default)]
    pub tags: Vec<(String, String)>,
    #[serde(default)]
    pub permissions: Permissions,
}

/// A customer managed policy (one version, `v1`, updated in place is not offered).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManagedPolicyRecord {
    pub name: String,
    pub path: String,
    pub id: String,
    pub created: i64,
    #[serde(default)]
    pub description: Option<String>,
    pub document: IdentityDocument,
    #[serde(default)]
    pub tags: Vec<(String, String)>,
}

/// An IAM user's access key; the secret is what signs, as with the config's keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessKeyRecord {
    pub account: String,
    pub user: String,
    pub secret: String,
    /// `Active` or `Inactive`.
    pub status: String,
    pub created: i64,
}

/// The server's key for role session tokens: made once, shared by every server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionKeyRecord {
    pub key: String,
}
