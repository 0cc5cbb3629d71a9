//! ECR's stored records: repositories, image manifests, and tags (each its own
//! record, so moving a tag or refusing one on an immutable repository is one
//! compare-and-swap).
use berth_api::ecr::{EncryptionConfiguration, Tag};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepositoryRecord {
    pub created_at: f64,
    pub image_tag_mutability: String,
    pub scan_on_push: bool,
    pub encryption: EncryptionConfiguration,
    #[serde(default)]
    pub tags: Vec<Tag>,
    /// The repository policy's text (SetRepositoryPolicy).
    #[serde(default)]
    pub policy: Option<String>,
    /// The lifecycle policy's text (PutLifecyclePolicy).
    #[serde(default)]
    pub lifecycle_policy: Option<String>,
    #[serde(default)]
    pub lifecycle_policy_updated_at: Option<f64>,
}

/// A manifest (or index) pushed to a repository, by digest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    pub media_type: String,
    /// The manifest exactly as pushed (its digest is over these bytes).
    pub manifest: String,
    /// The manifest's config and layers, in bytes (an index: its own size).
    pub size: i64,
    pub pushed_at: f64,
    #[serde(default)]
    pub artifact_media_type: Option<String>,
    /// Blob digests the manifest names (config and layers).
    #[serde(default)]
    pub blobs: Vec<String>,
    /// Manifests an index names, by digest.
    #[serde(default)]
    pub manifests: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagRecord {
    pub digest: String,
}
