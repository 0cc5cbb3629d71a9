//! The registry engine: the CNCF Distribution registry (Debian's
//! `docker-registry`) keeps the blobs and speaks the protocol; berth runs it
//! on a Unix socket only root can reach, with no auth of its own, and puts
//! its front (front.rs) before it. Restarted with backoff when it exits.
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The engine's files under the server's data dir (config, socket) and its
/// storage: there too, or a directory servers sharing a store share.
#[derive(Debug, Clone)]
pub struct EngineDirs {
    pub root: PathBuf,
    storage: PathBuf,
}

impl EngineDirs {
    pub fn new(data_dir: &Path, storage: Option<&Path>) -> EngineDirs {
        let root = data_dir.join("registry");
        EngineDirs {
            storage: storage.map_or_else(|| root.join("data"), Path::to_path_buf),
            root,
        }
    }

    pub fn socket(&self) -> PathBuf {
        self.root.join("run").join("registry.sock")
    }

    pub fn config(&self) -> PathBuf {
        self.root.join("config.yml")
    }

    pub fn storage(&self) -> PathBuf {
        self.storage.clone()
    }
}

/// Distribution's configuration: filesystem storage, deletes allowed (berth's
/// collector removes what ECR no longer names), relative URLs (the front
/// answers for it), the Unix socket.
pub fn config(dirs: &EngineDirs) -> String {
    format!(
        "version: 0.1\n\
         log:\n  level: warn\n  accesslog:\n    disabled: true\n\
         storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: true\n      age: 168h\n      interval: 24h\n      dryrun: false\n\
         http:\n  net: unix\n  addr: {}\n  relativeurls: true\n",
        dirs.storage().display(),
        dirs.socket().display()
    )
}

fn prepare(dirs: &EngineDirs) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let run = dirs.root.join("run");
    std::fs::create_dir_all(&run)?;
    // Only root reaches the engine, which checks no one.
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o700))?;
    std::fs::create_dir_all(dirs.storage())?;
    std::fs::write(dirs.config(), config(dirs))?;
    let _ = std::fs::remove_file(dirs.socket());
    Ok(())
}

/// Runs `bin serve CONFIG` for as long as the server runs: the engine dies
/// with the server (PDEATHSIG) and comes back with backoff when it exits.
pub fn supervise(bin: PathBuf, dirs: EngineDirs) -> std::io::Result<()> {
    prepare(&dirs)?;
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(200);
        loop {
            let log = std::fs::File::create(dirs.root.join("registry.log"));
            let mut cmd = tokio::process::Command::new(&bin);
            cmd.arg("serve").arg(dirs.config()).kill_on_drop(true);
            if let Ok(log) = log {
                cmd.stderr(log);
            }
            cmd.stdout(std::process::Stdio::null());
            // SAFETY: prctl only sets a flag of the child between fork and exec.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                    Ok(())
                });
            }
            let started = std::time::Instant::now();
            match cmd.spawn() {
                Ok(mut child) => {
                    let status = child.wait().await;
                    tracing::warn!(?status, "the registry engine exited; starting it again");
                }
                Err(e) => {
                    tracing::error!(error = %e, bin = %bin.display(), "cannot start the registry engine");
                }
            }
            if started.elapsed() > Duration::from_secs(30) {
                backoff = Duration::from_millis(200);
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(30));
            let _ = std::fs::remove_file(dirs.socket());
        }
    });
    Ok(())
}

pub type EngineError = Box<dyn std::error::Error + Send + Sync>;

/// Sends one request to the engine on its socket, streaming both bodies.
pub async fn send(
    socket: &Path,
    req: axum::extract::Request,
) -> Result<axum::response::Response, EngineError> {
    use axum::http::{header, HeaderValue};
    let stream = tokio::net::UnixStream::connect(socket).await?;
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "registry engine connection");
        }
    });
    let (mut parts, body) = req.into_parts();
    parts.headers.remove(header::CONNECTION);
    parts
        .headers
        .insert(header::HOST, HeaderValue::from_static("registry"));
    let answer = sender
        .send_request(hyper::Request::from_parts(parts, body))
        .await?;
    let (parts, body) = answer.into_parts();
    Ok(axum::response::Response::from_parts(
        parts,
        axum::body::Body::new(body),
    ))
}

/// Waits (at most `limit`) until the engine answers on its socket.
pub async fn wait_ready(dirs: &EngineDirs, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if tokio::net::UnixStream::connect(dirs.socket()).await.is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_engine_listens_only_on_its_socket() {
        let dirs = EngineDirs::new(Path::new("/var/lib/berth"), None);
        let c = config(&dirs);
        assert!(
            c.contains("net: unix\n  addr: /var/lib/berth/registry/run/registry.sock\n"),
            "{c}"
        );
        assert!(
            c.contains("rootdirectory: /var/lib/berth/registry/data\n"),
            "{c}"
        );
        assert!(c.contains("delete:\n    enabled: true"), "{c}");
        assert!(!c.contains("auth:"), "{c}");
        let shared = EngineDirs::new(Path::new("/var/lib/berth"), Some(Path::new("/mnt/images")));
        assert!(config(&shared).contains("rootdirectory: /mnt/images\n"));
        assert_eq!(shared.socket(), dirs.socket());
    }
}
