//! Secrets Manager secrets and SSM parameters as stored: every value that is
//! secret is sealed (sealing.rs), never in clear.
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecretRecord {
    /// The six random characters that end the secret's ARN.
    pub suffix: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub kms_key_id: Option<String>,
    /// Epoch seconds.
    pub created: f64,
    pub last_changed: f64,
    /// When a scheduled deletion happens (DescribeSecret's `DeletedDate`).
    #[serde(default)]
    pub deletion_date: Option<f64>,
    #[serde(default)]
    pub tags: Vec<(String, String)>,
    /// The resource policy, as given.
    #[serde(default)]
    pub policy: Option<String>,
    /// Oldest first.
    #[serde(default)]
    pub versions: Vec<SecretVersion>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecretVersion {
    pub id: String,
    pub created: f64,
    pub stages: Vec<String>,
    /// The value, sealed for this secret and version.
    pub sealed: String,
    /// Whether the value is `SecretBinary` rather than `SecretString`.
    #[serde(default)]
    pub binary: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParameterRecord {
    #[serde(default)]
    pub tags: Vec<(String, String)>,
    /// Oldest first; the last is the parameter as it stands.
    pub versions: Vec<ParameterVersion>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParameterVersion {
    pub version: i64,
    /// `String`, `StringList` or `SecureString`.
    pub r#type: String,
    /// The value; sealed for this parameter and version when a SecureString.
    pub value: String,
    /// Epoch seconds.
    pub modified: f64,
    /// Who wrote it (`LastModifiedUser`).
    pub user: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub allowed_pattern: Option<String>,
    #[serde(default)]
    pub key_id: Option<String>,
    pub tier: String,
    pub data_type: String,
    #[serde(default)]
    pub labels: Vec<String>,
}

impl ParameterRecord {
    /// The parameter as it stands (records are written with a version).
    pub fn latest(&self) -> Option<&ParameterVersion> {
        self.versions.last()
    }
}
