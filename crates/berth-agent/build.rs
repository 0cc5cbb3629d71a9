//! Builds berth's pause process (pause/pause.c) as a static binary that the
//! agent embeds: awsvpc tasks hold their namespace with it, and nothing is
//! pulled from a registry for that.
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=pause/pause.c");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("pause");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .args(["-static", "-Os", "-s", "-o"])
        .arg(&out)
        .arg("pause/pause.c")
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("{cc} could not build pause/pause.c statically ({s}): install build-essential (libc6-dev)"),
        Err(e) => panic!("{cc} could not be run to build pause/pause.c: {e}: install build-essential"),
    }
}
