//! What berth reads from a pushed manifest: its digest, media type, size, and
//! the blobs and manifests it names (Docker schema 2, OCI, and their indexes).
use crate::state::ecr_records::ImageRecord;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Registries refuse manifests larger than this (Distribution's own limit).
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    digest: String,
    #[serde(default)]
    size: i64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    artifact_type: Option<String>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

/// The image record of a manifest pushed with `content_type`, at `now`;
/// None when the bytes are not a manifest.
pub fn record(bytes: &[u8], content_type: Option<&str>, now: f64) -> Option<ImageRecord> {
    let raw: Raw = serde_json::from_slice(bytes).ok()?;
    let media_type = raw
        .media_type
        .or_else(|| content_type.map(String::from))
        .unwrap_or_else(|| "application/vnd.oci.image.manifest.v1+json".into());
    let is_index =
        !raw.manifests.is_empty() || media_type.contains("list") || media_type.contains("index");
    let size = if is_index {
        bytes.len() as i64
    } else {
        raw.layers.iter().map(|l| l.size).sum()
    };
    let artifact_media_type = raw
        .artifact_type
        .or_else(|| raw.config.as_ref().and_then(|c| c.media_type.clone()));
    let blobs = raw
        .config
        .iter()
        .chain(raw.layers.iter())
        .map(|d| d.digest.clone())
        .collect();
    Some(ImageRecord {
        media_type,
        manifest: String::from_utf8(bytes.to_vec()).ok()?,
        size,
        pushed_at: now,
        artifact_media_type,
        blobs,
        manifests: raw.manifests.into_iter().map(|d| d.digest).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA2: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",
      "config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":1470,"digest":"sha256:c0"},
      "layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":1000,"digest":"sha256:l1"},
                {"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":234,"digest":"sha256:l2"}]}"#;

    #[test]
    fn an_image_manifest_counts_its_layers() {
        let r = record(SCHEMA2.as_bytes(), None, 5.0).unwrap();
        assert_eq!(
            r.media_type,
            "application/vnd.docker.distribution.manifest.v2+json"
        );
        assert_eq!(r.size, 1234);
        assert_eq!(
            r.artifact_media_type.as_deref(),
            Some("application/vnd.docker.container.image.v1+json")
        );
        assert_eq!(r.blobs, ["sha256:c0", "sha256:l1", "sha256:l2"]);
        assert!(r.manifests.is_empty());
        assert_eq!(r.pushed_at, 5.0);
        assert_eq!(r.manifest, SCHEMA2);
    }

    #[test]
    fn an_index_names_its_manifests() {
        let index = r#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":10,"digest":"sha256:a","platform":{"architecture":"amd64","os":"linux"}},{"digest":"sha256:b","size":11}]}"#;
        let r = record(
            index.as_bytes(),
            Some("application/vnd.oci.image.index.v1+json"),
            0.0,
        )
        .unwrap();
        assert_eq!(r.media_type, "application/vnd.oci.image.index.v1+json");
        assert_eq!(r.manifests, ["sha256:a", "sha256:b"]);
        assert_eq!(r.size, index.len() as i64);
        assert!(record(b"not json", None, 0.0).is_none());
    }

    #[test]
    fn digests_are_sha256_of_the_bytes() {
        assert_eq!(
            digest_of(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
