//! berth's pause image on the real Docker Engine: imported from the binary
//! embedded in berth (no registry), it holds a network namespace of its own
//! and stops at once on SIGTERM.
mod common;

use berth_agent::docker::DockerRuntime;
use std::time::{Duration, Instant};

#[tokio::test]
async fn the_pause_image_is_made_locally_and_holds_a_namespace() {
    let docker = DockerRuntime::connect()
        .await
        .expect("the test suite starts dockerd");
    let image = docker.ensure_pause_image().await.expect("import");
    assert_eq!(image, berth_agent::pause::image());
    assert!(docker.image_present(&image).await);
    // A second call finds it and imports nothing.
    assert_eq!(docker.ensure_pause_image().await.expect("present"), image);

    let (id, pid) = common::pause_container(&docker, &image).await;
    let inspected = docker
        .inner()
        .inspect_container(&id, None)
        .await
        .expect("inspect");
    assert_eq!(inspected.state.and_then(|s| s.running), Some(true));
    let theirs = std::fs::read_link(format!("/proc/{pid}/ns/net")).expect("its netns");
    let ours = std::fs::read_link("/proc/self/ns/net").expect("our netns");
    assert_ne!(
        theirs, ours,
        "the pause container has a network namespace of its own"
    );

    let began = Instant::now();
    docker.stop(&id, 10).await.expect("stop");
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "SIGTERM ends it, no kill after the timeout"
    );
    let o = docker.inspect(&id).await.expect("inspect");
    assert_eq!(o.exit_code, Some(0));
    docker.remove(&id).await.expect("remove");
}
