//! What a push records: the manifest's image, and the tag it was pushed by,
//! unless the repository's tags are IMMUTABLE and the tag names another image.
use super::repositories::find;
use crate::state::ecr_records::{ImageRecord, TagRecord};
use crate::state::index::{guarded_put, Index};
use crate::state::{State, StoreKey};
use berth_api::{ApiError, ErrorCode};
use berth_model::Scope;
use berth_store::Txn;

/// Whether a tag may name `digest`, given what it names now.
pub fn tag_may_move(mutability: &str, current: Option<&str>, digest: &str) -> bool {
    mutability != "IMMUTABLE" || current.is_none_or(|c| c == digest)
}

pub fn immutable_tag(name: &str, tag: &str) -> ApiError {
    ApiError::new(
        ErrorCode::ImageTagAlreadyExistsException,
        format!("The image tag '{tag}' already exists in the '{name}' repository and cannot be overwritten because the repository is immutable."),
    )
}

fn plan(
    index: &Index,
    scope: &Scope,
    name: &str,
    digest: &str,
    image: &ImageRecord,
    tag: Option<&str>,
) -> Result<Txn, ApiError> {
    let repository = find(index, scope, name)?;
    let mut txn = Txn::default();
    let image_key = StoreKey::image(scope, name, digest);
    // A manifest pushed again keeps its first record (and its pushedAt).
    if index.mod_revision(&image_key) == 0 {
        txn = guarded_put(txn, index, &image_key, image);
    }
    if let Some(tag) = tag {
        let current = index
            .ecr_tags
            .get(&(scope.clone(), name.to_string(), tag.to_string()))
            .map(|t| t.value.digest.as_str());
        if !tag_may_move(&repository.value.image_tag_mutability, current, digest) {
            return Err(immutable_tag(name, tag));
        }
        if current != Some(digest) {
            let record = TagRecord {
                digest: digest.to_string(),
            };
            txn = guarded_put(txn, index, &StoreKey::image_tag(scope, name, tag), &record);
        }
    }
    Ok(txn)
}

/// Records a pushed manifest (and its tag) in the repository.
pub async fn record(
    state: &State,
    scope: &Scope,
    name: &str,
    digest: &str,
    image: &ImageRecord,
    tag: Option<&str>,
) -> Result<(), ApiError> {
    state
        .mutate(&StoreKey::repository(scope, name), |index| {
            Ok((plan(index, scope, name, digest, image, tag)?, ()))
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn immutable_tags_stay_on_their_image() {
        assert!(tag_may_move("MUTABLE", Some("sha256:a"), "sha256:b"));
        assert!(tag_may_move("IMMUTABLE", None, "sha256:b"));
        assert!(tag_may_move("IMMUTABLE", Some("sha256:b"), "sha256:b"));
        assert!(!tag_may_move("IMMUTABLE", Some("sha256:a"), "sha256:b"));
    }
}
