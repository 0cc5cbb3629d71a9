//! berth-bench-floor: what this machine allows one client at best, whatever
//! the server does. Two floors, each as the API benchmark meets them:
//! - a loopback TCP round trip between two threads (16 bytes each way), with
//!   both waiting in the kernel, with one side polling, with both polling;
//! - a durable 512-byte write: appended with `fdatasync` (a file that grows),
//!   and written over a preallocated, zero-filled file with `fdatasync` (what
//!   berth's write-ahead log does).
//!
//! Prints markdown table rows, and with `--json` writes the figures for
//! `bench/run.sh` to set against the API benchmark.
use anyhow::Result;
use clap::Parser;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Parser)]
struct Args {
    /// Round trips per mode.
    #[arg(long, default_value_t = 20_000)]
    round_trips: usize,
    /// Durable writes per mode.
    #[arg(long, default_value_t = 2_000)]
    writes: usize,
    /// Where the write test's files go (the disk berth's data dir is on).
    #[arg(long)]
    dir: PathBuf,
    /// Also write the figures here as JSON: `round_trip_us` by mode and
    /// `durable_write_us` ([p10, p50, p90]) by mode.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Reads one 16-byte message, polling instead of sleeping when `spin`.
fn read_msg(s: &mut TcpStream, spin: bool, buf: &mut [u8; 16]) -> Result<()> {
    let mut got = 0;
    while got < buf.len() {
        match s.read(&mut buf[got..]) {
            Ok(0) => anyhow::bail!("peer closed"),
            Ok(n) => got += n,
            Err(e) if spin && e.kind() == ErrorKind::WouldBlock => std::hint::spin_loop(),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Mean µs per round trip, the server thread polling when `server_spins`.
fn round_trip(n: usize, client_spins: bool, server_spins: bool) -> Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let server = std::thread::spawn(move || -> Result<()> {
        let (mut s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        s.set_nonblocking(server_spins)?;
        let mut buf = [0u8; 16];
        for _ in 0..n {
            read_msg(&mut s, server_spins, &mut buf)?;
            s.write_all(&buf)?;
        }
        Ok(())
    });
    let mut c = TcpStream::connect(addr)?;
    c.set_nodelay(true)?;
    c.set_nonblocking(client_spins)?;
    let mut buf = [7u8; 16];
    let started = Instant::now();
    for _ in 0..n {
        c.write_all(&buf)?;
        read_msg(&mut c, client_spins, &mut buf)?;
    }
    let us = started.elapsed().as_secs_f64() * 1e6 / n as f64;
    server
        .join()
        .map_err(|_| anyhow::anyhow!("server thread panicked"))??;
    Ok(us)
}

/// p10/p50/p90 µs of `writes` durable writes; `preallocated` writes over
/// zero-filled blocks instead of appending.
fn durable_writes(dir: &std::path::Path, writes: usize, preallocated: bool) -> Result<[f64; 3]> {
    let path = dir.join(if preallocated {
        "floor.pre"
    } else {
        "floor.append"
    });
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)?;
    let record = [b'x'; 512];
    if preallocated {
        let zeros = vec![0u8; 512 * writes];
        f.write_all_at(&zeros, 0)?;
        f.sync_all()?;
    }
    let mut lat = Vec::with_capacity(writes);
    for i in 0..writes {
        let t = Instant::now();
        f.write_all_at(&record, (i * record.len()) as u64)?;
        f.sync_data()?;
        lat.push(t.elapsed().as_secs_f64() * 1e6);
    }
    drop(f);
    std::fs::remove_file(&path)?;
    lat.sort_by(f64::total_cmp);
    let at = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    Ok([at(0.1), at(0.5), at(0.9)])
}

fn main() -> Result<()> {
    let args = Args::parse();
    let mut round_trips = serde_json::Map::new();
    println!("| loopback round trip (16 B) | µs | per second |");
    println!("| --- | ---: | ---: |");
    for (key, name, client, server) in [
        ("both_wait", "both threads wait in the kernel", false, false),
        ("one_polls", "client polls, server waits", true, false),
        ("both_poll", "both poll", true, true),
    ] {
        let us = round_trip(args.round_trips, client, server)?;
        println!("| {name} | {us:.1} | {:.0} |", 1e6 / us);
        round_trips.insert(key.into(), us.into());
    }
    println!();
    let mut writes = serde_json::Map::new();
    println!("| durable 512 B write | p10 µs | p50 µs | p90 µs |");
    println!("| --- | ---: | ---: | ---: |");
    std::fs::create_dir_all(&args.dir)?;
    for (key, name, pre) in [
        ("append", "append + fdatasync", false),
        ("preallocated", "over preallocated blocks + fdatasync", true),
    ] {
        let [p10, p50, p90] = durable_writes(&args.dir, args.writes, pre)?;
        println!("| {name} | {p10:.0} | {p50:.0} | {p90:.0} |");
        writes.insert(key.into(), serde_json::json!([p10, p50, p90]));
    }
    if let Some(path) = &args.json {
        let figures = serde_json::json!({
            "round_trip_us": round_trips,
            "durable_write_us": writes,
        });
        std::fs::write(path, serde_json::to_vec_pretty(&figures)?)?;
    }
    Ok(())
}
