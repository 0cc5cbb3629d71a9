//! Storage follows ECR's records: manifests the engine holds that no image
//! record names (deleted, expired, or in a deleted repository) are deleted
//! from the engine, and then the engine's garbage collector removes the blobs
//! no manifest references any more. It runs only once no push has written for
//! a quiet period, with new pushes held back while it runs, so a blob
//! uploaded for a manifest not yet pushed is never collected.
use super::engine::{self, EngineDirs};
use crate::state::State;
use axum::body::Body;
use axum::http::{Method, StatusCode};
use berth_model::ecr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::RwLock;

/// Pushes hold this shared while they write; the collector holds it alone.
#[derive(Debug)]
pub struct Writes {
    pub lock: RwLock<()>,
    last: Mutex<Instant>,
    /// Whether anything was written since the server started.
    written: std::sync::atomic::AtomicBool,
}

impl Default for Writes {
    fn default() -> Writes {
        Writes {
            lock: RwLock::new(()),
            last: Mutex::new(Instant::now()),
            written: Default::default(),
        }
    }
}

impl Writes {
    pub fn wrote(&self) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        self.written
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    fn quiet_for(&self) -> Duration {
        self.last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed()
    }

    /// When this server last wrote (epoch seconds), if it has since it started.
    pub fn last_write_epoch(&self, state: &State) -> Option<f64> {
        let quiet = self.quiet_for();
        let wrote = self.written.load(std::sync::atomic::Ordering::Relaxed);
        wrote.then(|| state.clock().epoch_secs() - quiet.as_secs_f64())
    }

    /// How long no server sharing the storage has written.
    fn quiet_everywhere(&self, state: &State) -> Duration {
        let here = self.quiet_for();
        let elsewhere = state
            .registry_fence()
            .last_write()
            .map(|at| Duration::from_secs_f64((state.clock().epoch_secs() - at).max(0.0)));
        elsewhere.map_or(here, |e| e.min(here))
    }
}

/// Every manifest the engine stores: (repository path, digest).
pub fn stored_manifests(storage: &Path) -> Vec<(String, String)> {
    let root = storage.join("docker/registry/v2/repositories");
    let mut out = vec![];
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if !path.is_dir() {
                continue;
            }
            if e.file_name() == "_manifests" {
                let repo = dir
                    .strip_prefix(&root)
                    .map(|r| r.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let revisions = path.join("revisions/sha256");
                for r in std::fs::read_dir(revisions).into_iter().flatten().flatten() {
                    if r.path().join("link").exists() {
                        let hex = r.file_name().to_string_lossy().into_owned();
                        out.push((repo.clone(), format!("sha256:{hex}")));
                    }
                }
            } else if !e.file_name().to_string_lossy().starts_with('_') {
                dirs.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The stored manifests no ECR image record names.
pub fn orphans(
    stored: Vec<(String, String)>,
    named: impl Fn(&berth_model::Scope, &str, &str) -> bool,
) -> Vec<(String, String)> {
    stored
        .into_iter()
        .filter(|(path, digest)| match ecr::parse_registry_path(path) {
            Some((scope, name)) => !named(&scope, name, digest),
            None => true,
        })
        .collect()
}

pub struct Collector {
    pub state: Arc<State>,
    pub dirs: EngineDirs,
    pub engine_bin: PathBuf,
    pub writes: Arc<Writes>,
    /// How long no push may have written before blobs are collected.
    pub quiet: Duration,
}

impl Collector {
    pub fn spawn(self) {
        tokio::spawn(super::fence::hold_for_collections(
            self.state.clone(),
            self.writes.clone(),
        ));
        tokio::spawn(super::fence::tell_writes(
            self.state.clone(),
            self.writes.clone(),
        ));
        tokio::spawn(async move {
            let every = (self.quiet / 2).clamp(Duration::from_millis(500), Duration::from_secs(60));
            // What an earlier run of the server deleted may still wait for collection.
            let mut pending = true;
            loop {
                tokio::time::sleep(every).await;
                // Of servers sharing a store (and perhaps the storage), the leader collects.
                if !self.state.leading() {
                    continue;
                }
                let orphans = !self.find_orphans().await.is_empty();
                let quiet = self.writes.quiet_everywhere(&self.state) >= self.quiet;
                let work = orphans || (pending && quiet);
                if !work {
                    continue;
                }
                // Pushes through other servers are held while this one collects.
                let collection = if self.state.other_servers() > 0 {
                    match super::fence::Collection::begin(&self.state).await {
                        Some(c) => Some(c),
                        None => continue,
                    }
                } else {
                    None
                };
                pending |= self.delete_orphans().await;
                if pending && quiet {
                    let _held = self.writes.lock.write().await;
                    pending = !self.collect().await;
                }
                if let Some(c) = collection {
                    c.end().await;
                }
            }
        });
    }

    /// The engine's manifests that no image record names, as of now.
    async fn find_orphans(&self) -> Vec<(String, String)> {
        let storage = self.dirs.storage();
        let stored = tokio::task::spawn_blocking(move || stored_manifests(&storage))
            .await
            .unwrap_or_default();
        let index = self.state.read();
        orphans(stored, |scope, name, digest| {
            index
                .ecr_images
                .contains_key(&(scope.clone(), name.to_string(), digest.to_string()))
        })
    }

    /// Deletes from the engine the manifests ECR no longer names; answers whether it did.
    async fn delete_orphans(&self) -> bool {
        if self.find_orphans().await.is_empty() {
            return false;
        }
        // A push in flight has stored its manifest but not yet its record: look again
        // with pushes held back, so such a manifest is never taken for an orphan.
        let _held = self.writes.lock.write().await;
        let found = self.find_orphans().await;
        let mut deleted = false;
        for (path, digest) in found {
            let req = axum::http::Request::builder()
                .method(Method::DELETE)
                .uri(format!("/v2/{path}/manifests/{digest}"))
                .body(Body::empty());
            let Ok(req) = req else { continue };
            match engine::send(&self.dirs.socket(), req).await {
                Ok(r)
                    if r.status() == StatusCode::ACCEPTED
                        || r.status() == StatusCode::NOT_FOUND =>
                {
                    tracing::info!(repository = %path, %digest, "deleted a manifest ECR no longer names");
                    deleted = true;
                }
                Ok(r) => {
                    tracing::warn!(status = %r.status(), %digest, "the engine kept a manifest")
                }
                Err(e) => tracing::warn!(error = %e, "the engine did not answer a delete"),
            }
        }
        deleted
    }

    /// Runs the engine's garbage collector (bounded); answers whether it finished.
    async fn collect(&self) -> bool {
        let mut cmd = tokio::process::Command::new(&self.engine_bin);
        cmd.arg("garbage-collect")
            .arg(self.dirs.config())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        match tokio::time::timeout(Duration::from_secs(600), cmd.output()).await {
            Ok(Ok(out)) if out.status.success() => {
                tracing::info!("collected the blobs no manifest references");
                true
            }
            Ok(Ok(out)) => {
                tracing::warn!(stderr = %String::from_utf8_lossy(&out.stderr), "garbage collection failed");
                false
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot run garbage collection");
                false
            }
            Err(_) => {
                tracing::warn!("garbage collection took over ten minutes; stopped it");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_manifests_are_found_by_repository() {
        let dir = tempfile::tempdir().unwrap();
        let repos = dir.path().join("docker/registry/v2/repositories");
        let revision = |repo: &str, hex: &str| {
            let d = repos
                .join(repo)
                .join("_manifests/revisions/sha256")
                .join(hex);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("link"), format!("sha256:{hex}")).unwrap();
        };
        revision("111111111111/us-east-1/team/web", "aa");
        revision("111111111111/us-east-1/team/web", "bb");
        revision("111111111111/us-east-1/other", "cc");
        // A deleted manifest leaves its directory without a link.
        std::fs::create_dir_all(
            repos.join("111111111111/us-east-1/other/_manifests/revisions/sha256/dd"),
        )
        .unwrap();
        std::fs::create_dir_all(repos.join("111111111111/us-east-1/team/web/_layers/sha256/ee"))
            .unwrap();
        let stored = stored_manifests(dir.path());
        assert_eq!(
            stored,
            [
                (
                    "111111111111/us-east-1/other".to_string(),
                    "sha256:cc".to_string()
                ),
                (
                    "111111111111/us-east-1/team/web".to_string(),
                    "sha256:aa".to_string()
                ),
                (
                    "111111111111/us-east-1/team/web".to_string(),
                    "sha256:bb".to_string()
                ),
            ]
        );
        let left = orphans(stored, |scope, name, digest| {
            scope.account == "111111111111" && name == "team/web" && digest == "sha256:aa"
        });
        assert_eq!(left.len(), 2);
        assert!(left.iter().all(|(_, d)| d != "sha256:aa"));
    }
}
