//! In-process placement throughput (issue 4): N instances in 3 availability
//! zones, placing up to 100,000 tasks with spread(zone) + binpack(memory),
//! with and without a memberOf constraint, on one thread. Each run stops
//! after the task count or the time limit, whichever comes first, and
//! reports placements/s and how many instances binpack used against the
//! resource lower bound. Prints one JSON line per run.
use berth_model::resources::{Capacity, Demand};
use berth_sched::query::InstanceFacts;
use berth_sched::{
    constraint, place, place_scan, BinpackField, Candidate, Request, SpreadField, Strategy,
};
use clap::Parser;
use std::collections::HashMap;
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    #[arg(long, value_delimiter = ',', default_value = "500,1000,5000,10000")]
    instances: Vec<usize>,
    #[arg(long, default_value_t = 100_000)]
    tasks: usize,
    /// Seconds each run may take at most.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
}

const ZONES: [&str; 3] = ["us-east-1a", "us-east-1b", "us-east-1c"];
const INSTANCE_CPU: i64 = 4096;
const INSTANCE_MEMORY: i64 = 8192;
const TASK_CPU: i64 = 10;
const TASK_MEMORY: i64 = 32;
const BATCH: usize = 100;

fn cluster(n: usize) -> Vec<Candidate> {
    (0..n)
        .map(|i| Candidate {
            arn: format!("ci-{i}"),
            remaining: Capacity {
                cpu: INSTANCE_CPU,
                memory: INSTANCE_MEMORY,
                ..Default::default()
            },
            active: true,
            agent_connected: true,
            facts: InstanceFacts {
                attributes: HashMap::from([
                    (
                        "ecs.availability-zone".to_string(),
                        Some(ZONES[i % 3].to_string()),
                    ),
                    (
                        "tier".to_string(),
                        Some(if i % 2 == 0 { "a" } else { "b" }.to_string()),
                    ),
                ]),
                ..Default::default()
            },
        })
        .collect()
}

fn run(n: usize, tasks: usize, limit: Duration, member_of: bool, scan: bool) -> serde_json::Value {
    let mut cs = cluster(n);
    let mut r = Request {
        demand: Demand {
            cpu: TASK_CPU,
            memory: TASK_MEMORY,
            ..Default::default()
        },
        count: BATCH,
        group: "service:bench".into(),
        strategies: vec![
            Strategy::Spread(SpreadField::Attribute("ecs.availability-zone".into())),
            Strategy::Binpack(BinpackField::Memory),
        ],
        ..Default::default()
    };
    if member_of {
        r.constraints = vec![constraint("memberOf", Some("attribute:tier == a")).expect("valid")];
    }
    let start = Instant::now();
    let mut placed = 0;
    let mut batch = 0u64;
    while placed < tasks && start.elapsed() < limit {
        r.seed = batch + 1;
        r.count = BATCH.min(tasks - placed);
        let (p, _) = if scan {
            place_scan(&r, &mut cs)
        } else {
            place(&r, &mut cs)
        };
        if p.is_empty() {
            break;
        }
        placed += p.len();
        batch += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    let used = cs
        .iter()
        .filter(|c| c.remaining.memory < INSTANCE_MEMORY)
        .count();
    let per_instance = (INSTANCE_MEMORY / TASK_MEMORY).min(INSTANCE_CPU / TASK_CPU) as usize;
    let lower_bound = placed.div_ceil(per_instance);
    serde_json::json!({
        "instances": n,
        "member_of": member_of,
        "path": if scan { "scan (baseline)" } else { "indexed" },
        "placed": placed,
        "seconds": secs,
        "placements_per_second": placed as f64 / secs,
        "instances_used": used,
        "lower_bound": lower_bound,
        "over_lower_bound_pct": if lower_bound > 0 { (used as f64 / lower_bound as f64 - 1.0) * 100.0 } else { 0.0 },
    })
}

fn main() {
    let args = Args::parse();
    let limit = Duration::from_secs(args.seconds);
    for &n in &args.instances {
        for member_of in [false, true] {
            // The baseline: the general scan, on the same shapes in the same run.
            for scan in [true, false] {
                println!("{}", run(n, args.tasks, limit, member_of, scan));
            }
        }
    }
}
