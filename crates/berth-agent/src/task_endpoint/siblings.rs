//! Several agent processes on one host share 169.254.170.2:80: one holds the
//! address, and asks the others (its siblings) for the ids it does not know.
//! Each process serves its own tasks on a Unix socket in a directory only root
//! can enter, named by its process id; a request forwarded there carries the
//! address it came from, so the sibling checks it as it would its own.
use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the agents of this host put their sockets.
pub const DIRECTORY: &str = "/run/berth/task-endpoint";

/// The header that carries a forwarded request's source address.
pub const SOURCE: &str = "x-berth-source";

/// Most live siblings asked, and how long each may take: a host runs a few agents.
const MAX_SIBLINGS: usize = 32;
const ASK_TIMEOUT: Duration = Duration::from_secs(2);
/// Most sockets looked at per request: those of killed processes stay until
/// someone finds nobody listening, and they must not hide the live ones.
const MAX_SOCKETS: usize = 4096;

/// This process's socket.
pub fn own_socket(dir: &Path) -> PathBuf {
    dir.join(format!("{}.sock", std::process::id()))
}

/// The other processes' sockets, in a stable order.
fn sockets(dir: &Path) -> Vec<PathBuf> {
    let own = own_socket(dir);
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "sock") && *p != own)
        .take(MAX_SOCKETS)
        .collect();
    found.sort();
    found
}

/// Takes this process's socket away as it stops, so siblings need not find it dead.
pub fn leave(dir: &Path) {
    let _ = std::fs::remove_file(own_socket(dir));
}

/// Why a sibling gave no answer.
enum Unanswered {
    /// Nobody listens there: the socket of a process that is gone (now removed).
    Gone,
    Failed(String),
}

/// Binds this process's socket (the directory made root's only).
pub fn listen(dir: &Path) -> Result<tokio::net::UnixListener, String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).map_err(|e| format!("making {}: {e}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("restricting {}: {e}", dir.display()))?;
    let path = own_socket(dir);
    // A socket left by an earlier process of the same id.
    let _ = std::fs::remove_file(&path);
    tokio::net::UnixListener::bind(&path).map_err(|e| format!("binding {}: {e}", path.display()))
}

/// One GET on one sibling's socket.
async fn ask_one(socket: &Path, path: &str, source: IpAddr) -> Result<Response<Body>, Unanswered> {
    let stream = match tokio::net::UnixStream::connect(socket).await {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            let _ = std::fs::remove_file(socket);
            return Err(Unanswered::Gone);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Unanswered::Gone),
        Err(e) => return Err(Unanswered::Failed(e.to_string())),
    };
    let failed = |e: hyper::Error| Unanswered::Failed(e.to_string());
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(failed)?;
    tokio::spawn(conn);
    let request = Request::get(path)
        .header("host", "berth-agent")
        .header(SOURCE, source.to_string())
        .body(Body::empty())
        .map_err(|e| Unanswered::Failed(e.to_string()))?;
    let answer = sender.send_request(request).await.map_err(failed)?;
    let (parts, body) = answer.into_parts();
    let bytes = body.collect().await.map_err(failed)?.to_bytes();
    Ok(Response::from_parts(parts, Body::from(bytes)))
}

/// The first sibling's answer that is not a refusal of the id, if any; the
/// sockets of processes that are gone do not count toward the siblings asked.
pub async fn ask(dir: &Path, path: &str, source: IpAddr) -> Option<Response<Body>> {
    let mut asked = 0;
    for socket in sockets(dir) {
        if asked == MAX_SIBLINGS {
            break;
        }
        match tokio::time::timeout(ASK_TIMEOUT, ask_one(&socket, path, source)).await {
            Ok(Ok(r)) if r.status() != StatusCode::BAD_REQUEST => return Some(r),
            Ok(Err(Unanswered::Gone)) => continue,
            Ok(Ok(_)) => {}
            Ok(Err(Unanswered::Failed(e))) => {
                tracing::debug!(socket = %socket.display(), error = %e, "sibling agent did not answer")
            }
            Err(_) => tracing::warn!(socket = %socket.display(), "sibling agent timed out"),
        }
        asked += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("berth-siblings-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A sibling that knows ids starting with `mine` and refuses the others, as the endpoint does.
    fn sibling(dir: &Path, name: &str) {
        use axum::extract::Path as Id;
        let listener = tokio::net::UnixListener::bind(dir.join(name)).unwrap();
        let app = axum::Router::new().route(
            "/v2/credentials/{id}",
            axum::routing::get(|Id(id): Id<String>, h: axum::http::HeaderMap| async move {
                let from = h.get(SOURCE).map(|v| v.to_str().unwrap().to_string());
                if id.starts_with("mine") {
                    (
                        StatusCode::OK,
                        format!("{id} for {}", from.unwrap_or_default()),
                    )
                } else {
                    (StatusCode::BAD_REQUEST, "InvalidIdInRequest".to_string())
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
    }

    #[tokio::test]
    async fn an_id_is_asked_of_each_sibling_until_one_knows_it() {
        let dir = temp_dir();
        sibling(&dir, "1.sock");
        std::fs::write(dir.join("2.sock"), b"").unwrap();
        let source: IpAddr = "172.17.0.5".parse().unwrap();
        let r = ask(&dir, "/v2/credentials/mine-1", source).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let body = r.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"mine-1 for 172.17.0.5");
        assert!(ask(&dir, "/v2/credentials/other", source).await.is_none());
        // The socket nobody listens on was taken away.
        assert!(!dir.join("2.sock").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn sockets_of_processes_that_are_gone_do_not_hide_a_live_sibling() {
        let dir = temp_dir();
        // More dead sockets than siblings asked, all before the live one in order.
        for i in 0..MAX_SIBLINGS * 3 {
            let dead = std::os::unix::net::UnixListener::bind(dir.join(format!("1{i:04}.sock")));
            drop(dead.unwrap());
        }
        sibling(&dir, "9.sock");
        let source: IpAddr = "172.17.0.5".parse().unwrap();
        let r = ask(&dir, "/v2/credentials/mine-2", source).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(sockets(&dir), vec![dir.join("9.sock")]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_process_that_leaves_takes_its_socket_away() {
        let dir = temp_dir();
        std::fs::write(own_socket(&dir), b"").unwrap();
        leave(&dir);
        assert!(!own_socket(&dir).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn siblings_are_the_other_sockets_of_the_directory() {
        let dir = temp_dir();
        for name in ["1.sock", "2.sock", "notes.txt"] {
            std::fs::write(dir.join(name), b"").unwrap();
        }
        std::fs::write(own_socket(&dir), b"").unwrap();
        assert_eq!(sockets(&dir), vec![dir.join("1.sock"), dir.join("2.sock")]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
