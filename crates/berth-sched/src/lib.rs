//! Placement: chooses a container instance for each task from a snapshot of
//! the cluster's instances. Pure: no IO, no async; the caller commits the plan.
pub mod query;

use berth_model::resources::{Capacity, Demand};

/// One container instance as placement sees it.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub arn: String,
    /// What is left on it after the tasks already there (and those placed so far).
    pub remaining: Capacity,
    /// ACTIVE (not DRAINING or INACTIVE).
    pub active: bool,
    pub agent_connected: bool,
}

/// Why a task was not placed, one entry per instance refused, as RunTask's `failures` give them.
pub type Refusals = Vec<(String, &'static str)>;

/// Places `count` copies of a task with `demand`, each on an instance where it
/// fits, choosing among those at random (`seed`), as RunTask does without a
/// placement strategy. Capacity is taken as tasks are placed, so copies never
/// over-commit an instance. Answers the chosen candidate index per placed
/// copy, and the refusals for the first copy that did not fit.
pub fn place(
    demand: &Demand,
    count: usize,
    candidates: &mut [Candidate],
    seed: u64,
) -> (Vec<usize>, Refusals) {
    let mut rng = seed | 1;
    let mut placed = Vec::with_capacity(count);
    for _ in 0..count {
        let mut refusals = Refusals::new();
        let fits: Vec<usize> = candidates
            .iter()
            .enumerate()
            .filter(|(_, c)| c.active)
            .filter_map(|(i, c)| {
                if !c.agent_connected {
                    refusals.push((c.arn.clone(), "AGENT"));
                    return None;
                }
                match c.remaining.check(demand) {
                    Ok(()) => Some(i),
                    Err(short) => {
                        refusals.push((c.arn.clone(), short.reason()));
                        None
                    }
                }
            })
            .collect();
        if fits.is_empty() {
            return (placed, refusals);
        }
        // xorshift64: cheap, deterministic for a given seed.
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let chosen = fits[(rng % fits.len() as u64) as usize];
        candidates[chosen].remaining.take(demand);
        placed.push(chosen);
    }
    (placed, Refusals::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn candidate(name: &str, cpu: i64, memory: i64) -> Candidate {
        Candidate {
            arn: name.into(),
            remaining: Capacity {
                cpu,
                memory,
                ..Default::default()
            },
            active: true,
            agent_connected: true,
        }
    }

    #[test]
    fn refusals_name_each_instance_and_resource() {
        let mut cs = vec![
            candidate("small-cpu", 100, 4096),
            candidate("small-mem", 4096, 10),
            Candidate {
                agent_connected: false,
                ..candidate("gone", 4096, 4096)
            },
            Candidate {
                active: false,
                ..candidate("draining", 4096, 4096)
            },
        ];
        let d = Demand {
            cpu: 256,
            memory: 256,
            ..Default::default()
        };
        let (placed, refusals) = place(&d, 1, &mut cs, 7);
        assert!(placed.is_empty());
        assert_eq!(
            refusals,
            vec![
                ("small-cpu".to_string(), "RESOURCE:CPU"),
                ("small-mem".to_string(), "RESOURCE:MEMORY"),
                ("gone".to_string(), "AGENT"),
            ]
        );
    }

    #[test]
    fn copies_stop_where_capacity_ends() {
        let mut cs = vec![candidate("a", 1024, 1024)];
        let d = Demand {
            cpu: 400,
            memory: 100,
            ..Default::default()
        };
        let (placed, refusals) = place(&d, 3, &mut cs, 1);
        assert_eq!(placed, vec![0, 0]);
        assert_eq!(refusals, vec![("a".to_string(), "RESOURCE:CPU")]);
        assert_eq!(cs[0].remaining.cpu, 224);
    }

    proptest! {
        #[test]
        fn placement_never_over_commits(
            sizes in prop::collection::vec((0i64..3000, 0i64..3000), 1..6),
            cpu in 0i64..1500, memory in 0i64..1500, port in prop::option::of(1i32..5),
            count in 1usize..12, seed in any::<u64>(),
        ) {
            let mut cs: Vec<Candidate> = sizes.iter().enumerate()
                .map(|(i, (c, m))| candidate(&i.to_string(), *c, *m)).collect();
            let before = cs.clone();
            let d = Demand { cpu, memory, tcp_ports: port.into_iter().collect(), udp_ports: vec![] };
            let (placed, refusals) = place(&d, count, &mut cs, seed);
            prop_assert!(placed.len() == count || !refusals.is_empty());
            for (i, c) in before.iter().enumerate() {
                let n = placed.iter().filter(|p| **p == i).count() as i64;
                prop_assert!(n * cpu <= c.remaining.cpu);
                prop_assert!(n * memory <= c.remaining.memory);
                if port.is_some() { prop_assert!(n <= 1, "a host port is used once"); }
            }
        }
    }
}
