//! How servers sharing a store tell each other how far their views have got:
//! each serves its applied revision as a stream of lines, and follows every
//! other reader's. A writer acknowledges once every reader's stream has passed
//! its write (see `State::acknowledge`).
use crate::state::State;
use axum::body::Body;
use axum::response::Response;
use http_body_util::BodyExt;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::watch;

/// Where a server streams its applied revision.
pub const PATH: &str = "/_berth/applied";
/// The header naming the server that streams (so a server can tell its URL reaches itself).
const SERVER_HEADER: &str = "x-berth-server";
/// A stream repeats its revision this often when it does not move, so a
/// follower can tell a quiet server from a stuck connection.
const REPEAT_EVERY: Duration = Duration::from_secs(1);
/// A follower gives up on a connection silent this long, and connects again.
const SILENT_FOR: Duration = Duration::from_secs(3);
const RECONNECT_AFTER: Duration = Duration::from_millis(200);

/// The answer to `GET /_berth/applied`: the view's revision now, then each time it moves.
pub fn applied_stream(state: &Arc<State>) -> Response {
    let (applied, stopping) = (state.applied_revisions(), state.stopping());
    let lines = futures_util::stream::unfold(
        (applied, stopping, true),
        |(mut applied, mut stopping, first)| async move {
            if !first {
                tokio::select! {
                    moved = tokio::time::timeout(REPEAT_EVERY, applied.changed()) => {
                        if matches!(moved, Ok(Err(_))) {
                            return None;
                        }
                    }
                    _ = stopping.wait_for(|s| *s) => return None,
                }
            }
            let line = format!("{}\n", *applied.borrow_and_update());
            Some((
                Ok::<_, std::convert::Infallible>(line),
                (applied, stopping, false),
            ))
        },
    );
    Response::builder()
        .header("content-type", "text/plain")
        .header(SERVER_HEADER, state.server_name().unwrap_or_default())
        .body(Body::from_stream(lines))
        .unwrap_or_default()
}

/// Whether `url` reaches the server named `name` (what the others will follow there).
pub async fn reaches(url: &str, name: &str) -> Result<(), String> {
    let answer = tokio::time::timeout(SILENT_FOR, open(url)).await;
    let (server, _) = answer.map_err(|_| "no answer".to_string())??;
    if server == name {
        Ok(())
    } else {
        Err(format!("it reaches another server ({server:?})"))
    }
}

/// Follows the reader serving at `url` into `applied` for as long as it is listed.
pub async fn follow_reader(url: String, applied: Weak<watch::Sender<u64>>) {
    while applied.strong_count() > 0 {
        if let Err(e) = stream_from(&url, &applied).await {
            tracing::debug!(url, error = e, "following a server's applied revision");
        }
        tokio::time::sleep(RECONNECT_AFTER).await;
    }
}

async fn stream_from(url: &str, applied: &Weak<watch::Sender<u64>>) -> Result<(), String> {
    let (_, mut body) = open(url).await?;
    let mut pending = Vec::new();
    loop {
        let frame = tokio::time::timeout(SILENT_FOR, body.frame())
            .await
            .map_err(|_| "silent")?;
        let Some(frame) = frame else {
            return Ok(());
        };
        let Ok(data) = frame.map_err(|e| e.to_string())?.into_data() else {
            continue;
        };
        pending.extend_from_slice(&data);
        let Some(revision) = last_complete_line(&mut pending) else {
            continue;
        };
        let Some(applied) = applied.upgrade() else {
            return Ok(());
        };
        applied.send_if_modified(|r| {
            let moved = revision > *r;
            *r = (*r).max(revision);
            moved
        });
    }
}

/// Opens the stream of the server at `url`: the name it gives, and the stream.
async fn open(url: &str) -> Result<(String, hyper::body::Incoming), String> {
    let (mut sender, authority) = crate::peer_http::connect(url, SILENT_FOR).await?;
    let request = hyper::Request::get(PATH)
        .header("host", authority)
        .body(Body::empty())
        .map_err(|e| e.to_string())?;
    let answer = tokio::time::timeout(SILENT_FOR, sender.send_request(request))
        .await
        .map_err(|_| "no answer")?
        .map_err(|e| e.to_string())?;
    if !answer.status().is_success() {
        return Err(format!("answered {}", answer.status()));
    }
    let server = answer
        .headers()
        .get(SERVER_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    Ok((server, answer.into_body()))
}

/// The number on the last complete line of `pending`, which keeps only what
/// follows that line.
fn last_complete_line(pending: &mut Vec<u8>) -> Option<u64> {
    let end = pending.iter().rposition(|b| *b == b'\n')?;
    let complete: Vec<u8> = pending.drain(..=end).collect();
    let text = std::str::from_utf8(&complete[..end]).ok()?;
    text.rsplit('\n').next()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_complete_lines_count_and_the_last_one_wins() {
        let mut pending = b"12\n13\n1".to_vec();
        assert_eq!(last_complete_line(&mut pending), Some(13));
        assert_eq!(pending, b"1");
        assert_eq!(last_complete_line(&mut pending), None);
        pending.extend_from_slice(b"4\n");
        assert_eq!(last_complete_line(&mut pending), Some(14));
        assert!(pending.is_empty());
        let mut garbage = b"x\n".to_vec();
        assert_eq!(last_complete_line(&mut garbage), None);
    }

    #[tokio::test]
    async fn a_follower_takes_in_what_a_server_streams_and_stops_when_unlisted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(berth_store::EmbeddedStore::open(dir.path()).unwrap());
        let state = State::open(store.clone()).await.unwrap();
        let app = axum::Router::new().route(
            PATH,
            axum::routing::get({
                let state = state.clone();
                move || async move { applied_stream(&state) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let applied = Arc::new(watch::channel(0).0);
        let follower = tokio::spawn(follow_reader(url, Arc::downgrade(&applied)));
        let mut seen = applied.subscribe();
        for n in 1..=3u64 {
            let txn = berth_store::Txn::new().put(format!("k{n}"), b"v".to_vec());
            let berth_store::TxnOutcome::Committed { revision } =
                berth_store::Store::txn(&*store, txn).await.unwrap()
            else {
                panic!("no commit")
            };
            let reached = seen.wait_for(|r| *r >= revision);
            tokio::time::timeout(Duration::from_secs(5), reached)
                .await
                .expect("the follower did not see the revision")
                .unwrap();
        }
        drop(applied);
        tokio::time::timeout(Duration::from_secs(10), follower)
            .await
            .expect("the follower kept going after its reader left")
            .unwrap();
    }

    #[tokio::test]
    async fn a_write_is_acknowledged_once_every_listed_reader_shows_it() {
        let store = Arc::new(berth_store::MemoryStore::new());
        let state = State::open(store.clone()).await.unwrap();
        // Another server, as far as its stream says: its view is where `other` says.
        let (other, told) = watch::channel(0u64);
        let app = axum::Router::new().route(
            PATH,
            axum::routing::get(move || {
                let told = told.clone();
                async move {
                    let lines = futures_util::stream::unfold(
                        (told, true),
                        |(mut told, first)| async move {
                            if !first {
                                told.changed().await.ok()?;
                            }
                            let line = format!("{}\n", *told.borrow_and_update());
                            Some((Ok::<_, std::convert::Infallible>(line), (told, false)))
                        },
                    );
                    Body::from_stream(lines)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let record = crate::state::readers::ReaderRecord { url, lease: 1 };
        let listed = berth_store::Txn::new().put(State::reader_key("other"), record.to_bytes());
        berth_store::Store::txn(&*store, listed).await.unwrap();

        let key = crate::state::StoreKey::FleetHost { id: "i-1".into() };
        let writing = {
            let (state, encoded) = (state.clone(), key.encode());
            tokio::spawn(async move {
                state
                    .mutate(&key, |_| {
                        let txn = berth_store::Txn::new().put(encoded.clone(), b"{}".to_vec());
                        Ok((txn, ()))
                    })
                    .await
            })
        };
        let mut view = state.applied_revisions();
        tokio::time::timeout(Duration::from_secs(5), view.wait_for(|r| *r >= 2))
            .await
            .unwrap()
            .unwrap();
        let written = *view.borrow();
        // The write is in this server's view, but the other's is behind it.
        other.send_replace(written - 1);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !writing.is_finished(),
            "acknowledged before the other view showed it"
        );
        other.send_replace(written);
        tokio::time::timeout(Duration::from_secs(5), writing)
            .await
            .expect("not acknowledged once the other view showed it")
            .unwrap()
            .unwrap();
    }
}
