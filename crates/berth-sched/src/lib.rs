//! Placement: chooses a container instance for each task from a snapshot of
//! the cluster's instances. Pure: no IO, no async; the caller commits the plan.
//!
//! ```text
//! for each copy:  candidates ──feasibility──► fit (status, agent, CPU, memory, ports,
//!                                              constraints: distinctInstance, memberOf)
//!                            ──strategies──► each narrows the field in order
//!                                              (binpack, spread, random)
//!                            ──choose──────► one instance; its capacity and group
//!                                              counts are taken before the next copy
//! ```
mod fast;
pub mod query;
pub mod service;

use berth_model::resources::{Capacity, Demand};
use query::{Expr, InstanceFacts};
use std::collections::HashMap;

/// One container instance as placement sees it.
#[derive(Debug, Clone, Default)]
pub struct Candidate {
    pub arn: String,
    /// What is left on it after the tasks already there (and those placed so far).
    pub remaining: Capacity,
    /// ACTIVE (not DRAINING or INACTIVE).
    pub active: bool,
    pub agent_connected: bool,
    /// What constraints and spread fields read (attributes, task groups, ...).
    pub facts: InstanceFacts,
}

/// Why a task was not placed, one entry per instance refused, as RunTask's `failures` give them.
pub type Refusals = Vec<(String, &'static str)>;

#[derive(Debug, Clone, PartialEq)]
pub enum Constraint {
    /// No two tasks of the group on one instance.
    DistinctInstance,
    /// The instance must satisfy the cluster query expression.
    MemberOf(Expr),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Strategy {
    Random,
    /// Even counts of the group's tasks across the values of a field.
    Spread(SpreadField),
    /// Fewest remaining of a resource first.
    Binpack(BinpackField),
}

#[derive(Debug, Clone, PartialEq)]
pub enum SpreadField {
    InstanceId,
    Attribute(String),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BinpackField {
    Cpu,
    Memory,
}

/// What one placement asks for.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub demand: Demand,
    pub count: usize,
    /// The task group (`family:NAME` by default); constraints and spread count within it.
    pub group: String,
    pub constraints: Vec<Constraint>,
    pub strategies: Vec<Strategy>,
    /// Attributes the task definition requires of its instance (`requiresAttributes`).
    pub required_attributes: Vec<String>,
    pub seed: u64,
}

/// ECS's reason when an instance lacks an attribute the task definition requires.
pub const MISSING_ATTRIBUTE: &str = "ATTRIBUTE";

/// Whether the instance has every attribute the request requires.
pub fn has_attributes(c: &Candidate, r: &Request) -> bool {
    r.required_attributes
        .iter()
        .all(|a| c.facts.attributes.contains_key(a))
}

pub const DISTINCT_INSTANCE_UNSATISFIED: &str =
    "DistinctInstance placement constraint unsatisfied.";
pub const MEMBER_OF_UNSATISFIED: &str = "MemberOf placement constraint unsatisfied.";

/// Parses ECS's placementConstraints (type, expression), or says what is wrong.
pub fn constraint(kind: &str, expression: Option<&str>) -> Result<Constraint, String> {
    match kind {
        "distinctInstance" => match expression {
            Some(e) if !e.trim().is_empty() => {
                Err("distinctInstance placement constraints take no expression".into())
            }
            _ => Ok(Constraint::DistinctInstance),
        },
        "memberOf" => {
            let e = expression
                .filter(|e| !e.trim().is_empty())
                .ok_or_else(|| "memberOf placement constraints need an expression".to_string())?;
            Ok(Constraint::MemberOf(query::parse(e)?))
        }
        other => Err(format!("unknown placement constraint type {other}")),
    }
}

/// Parses ECS's placementStrategy (type, field), or says what is wrong.
pub fn strategy(kind: &str, field: Option<&str>) -> Result<Strategy, String> {
    match kind {
        "random" => Ok(Strategy::Random),
        "binpack" => match field.map(str::to_ascii_lowercase).as_deref() {
            Some("cpu") => Ok(Strategy::Binpack(BinpackField::Cpu)),
            Some("memory") => Ok(Strategy::Binpack(BinpackField::Memory)),
            _ => Err("binpack placement strategies take the field cpu or memory".into()),
        },
        "spread" => match field {
            Some("instanceId") | Some("host") => Ok(Strategy::Spread(SpreadField::InstanceId)),
            Some(f) if f.starts_with("attribute:") && f.len() > "attribute:".len() => Ok(
                Strategy::Spread(SpreadField::Attribute(f["attribute:".len()..].to_string())),
            ),
            _ => Err("spread placement strategies take instanceId or attribute:NAME".into()),
        },
        other => Err(format!("unknown placement strategy type {other}")),
    }
}

/// xorshift64: cheap, deterministic for a given seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn group_count(c: &Candidate, group: &str) -> usize {
    c.facts.task_groups.iter().filter(|g| *g == group).count()
}

fn spread_value(c: &Candidate, field: &SpreadField) -> String {
    match field {
        SpreadField::InstanceId => c.arn.clone(),
        SpreadField::Attribute(name) => c
            .facts
            .attributes
            .get(name)
            .cloned()
            .flatten()
            .unwrap_or_default(),
    }
}

/// Why `c` cannot take one more copy, if it cannot.
fn refusal(c: &Candidate, r: &Request) -> Option<&'static str> {
    if !c.agent_connected {
        return Some("AGENT");
    }
    if !has_attributes(c, r) {
        return Some(MISSING_ATTRIBUTE);
    }
    if let Err(short) = c.remaining.check(&r.demand) {
        return Some(short.reason());
    }
    for k in &r.constraints {
        match k {
            Constraint::DistinctInstance if group_count(c, &r.group) > 0 => {
                return Some(DISTINCT_INSTANCE_UNSATISFIED)
            }
            Constraint::MemberOf(e) if !e.eval(&c.facts) => return Some(MEMBER_OF_UNSATISFIED),
            _ => {}
        }
    }
    None
}

/// Whether an instance meets every memberOf constraint (which instances a DAEMON service covers).
pub fn member_of_all(constraints: &[Constraint], facts: &InstanceFacts) -> bool {
    constraints.iter().all(|k| match k {
        Constraint::MemberOf(e) => e.eval(facts),
        Constraint::DistinctInstance => true,
    })
}

/// Why each active instance refuses one more copy (when none takes it).
fn refusals(r: &Request, candidates: &[Candidate]) -> Refusals {
    candidates
        .iter()
        .filter(|c| c.active)
        .filter_map(|c| refusal(c, r).map(|reason| (c.arn.clone(), reason)))
        .collect()
}

/// Places `r.count` copies, each on an instance where it fits and every
/// constraint holds, narrowed by the strategies in order (random when none
/// are given, as RunTask does). Capacity and group counts are taken as copies
/// are placed, so copies never over-commit an instance. Answers the chosen
/// candidate index per placed copy, and the refusals for the first copy that
/// could not be placed. Usual strategy chains take an indexed path
/// (`fast`); the rest scan every instance per copy.
pub fn place(r: &Request, candidates: &mut [Candidate]) -> (Vec<usize>, Refusals) {
    match fast::place(r, candidates) {
        Some(out) => out,
        None => place_scan(r, candidates),
    }
}

/// The general path: every instance is looked at for every copy.
pub fn place_scan(r: &Request, candidates: &mut [Candidate]) -> (Vec<usize>, Refusals) {
    let mut rng = Rng(r.seed | 1);
    let mut placed = Vec::with_capacity(r.count);
    for _ in 0..r.count {
        let mut refusals = Refusals::new();
        let mut field: Vec<usize> = vec![];
        for (i, c) in candidates.iter().enumerate().filter(|(_, c)| c.active) {
            match refusal(c, r) {
                None => field.push(i),
                Some(reason) => refusals.push((c.arn.clone(), reason)),
            }
        }
        if field.is_empty() {
            return (placed, refusals);
        }
        for s in &r.strategies {
            if field.len() == 1 {
                break;
            }
            field = match s {
                Strategy::Random => vec![field[rng.below(field.len())]],
                Strategy::Binpack(f) => {
                    let left = |i: &usize| match f {
                        BinpackField::Cpu => candidates[*i].remaining.cpu,
                        BinpackField::Memory => candidates[*i].remaining.memory,
                    };
                    let least = field.iter().map(left).min().unwrap_or_default();
                    field.into_iter().filter(|i| left(i) == least).collect()
                }
                Strategy::Spread(f) => {
                    // Counts over every active instance, so values with no room still count.
                    let mut per_value: HashMap<String, usize> = HashMap::new();
                    for c in candidates.iter().filter(|c| c.active) {
                        *per_value.entry(spread_value(c, f)).or_default() +=
                            group_count(c, &r.group);
                    }
                    let count = |i: &usize| per_value[&spread_value(&candidates[*i], f)];
                    let least = field.iter().map(count).min().unwrap_or_default();
                    field.into_iter().filter(|i| count(i) == least).collect()
                }
            };
        }
        let chosen = field[rng.below(field.len())];
        let c = &mut candidates[chosen];
        c.remaining.take(&r.demand);
        c.facts.task_groups.push(r.group.clone());
        c.facts.running_tasks_count += 1;
        placed.push(chosen);
    }
    (placed, Refusals::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::{any, prop, prop_assert, prop_assert_eq, prop_oneof, proptest, Just};
    use proptest::strategy::Strategy as Strategy_;

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
            facts: InstanceFacts::default(),
        }
    }

    fn in_zone(name: &str, zone: &str) -> Candidate {
        let mut c = candidate(name, 4096, 4096);
        c.facts
            .attributes
            .insert("ecs.availability-zone".into(), Some(zone.into()));
        c
    }

    fn request(count: usize) -> Request {
        Request {
            demand: Demand {
                cpu: 256,
                memory: 256,
                ..Default::default()
            },
            count,
            group: "family:web".into(),
            seed: 42,
            ..Default::default()
        }
    }

    #[test]
    fn an_instance_without_a_required_attribute_is_refused_with_attribute() {
        let mut with = candidate("with", 4096, 4096);
        with.facts.attributes.insert(
            "com.amazonaws.ecs.capability.logging-driver.awslogs".into(),
            None,
        );
        let without = candidate("without", 4096, 4096);
        let mut r = request(1);
        r.required_attributes = vec!["com.amazonaws.ecs.capability.logging-driver.awslogs".into()];
        // The indexed path and the scan agree.
        for strategies in [vec![], vec![Strategy::Binpack(BinpackField::Memory)]] {
            r.strategies = strategies;
            let mut cs = vec![without.clone(), with.clone()];
            assert_eq!(place(&r, &mut cs).0, vec![1]);
            let mut cs = vec![without.clone()];
            let (placed, refusals) = place(&r, &mut cs);
            assert!(placed.is_empty());
            assert_eq!(refusals, vec![("without".to_string(), MISSING_ATTRIBUTE)]);
        }
        r.required_attributes = vec!["com.amazonaws.ecs.capability.logging-driver.splunk".into()];
        let mut cs = vec![with];
        assert_eq!(
            place_scan(&r, &mut cs).1,
            vec![("with".to_string(), MISSING_ATTRIBUTE)]
        );
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
        let (placed, refusals) = place(&request(1), &mut cs);
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
        let mut r = request(3);
        r.demand.cpu = 400;
        let (placed, refusals) = place(&r, &mut cs);
        assert_eq!(placed, vec![0, 0]);
        assert_eq!(refusals, vec![("a".to_string(), "RESOURCE:CPU")]);
        assert_eq!(cs[0].remaining.cpu, 224);
    }

    #[test]
    fn binpack_fills_the_fullest_instance_first() {
        let mut cs = vec![
            candidate("roomy", 4096, 4096),
            candidate("tight", 4096, 1024),
        ];
        let mut r = request(4);
        r.strategies = vec![Strategy::Binpack(BinpackField::Memory)];
        let (placed, _) = place(&r, &mut cs);
        assert_eq!(placed, vec![1, 1, 1, 1]);
    }

    #[test]
    fn spread_by_zone_then_instance_balances_both() {
        let mut cs = vec![
            in_zone("a1", "us-east-1a"),
            in_zone("a2", "us-east-1a"),
            in_zone("b1", "us-east-1b"),
        ];
        let mut r = request(4);
        r.strategies = vec![
            Strategy::Spread(SpreadField::Attribute("ecs.availability-zone".into())),
            Strategy::Spread(SpreadField::InstanceId),
        ];
        let (placed, _) = place(&r, &mut cs);
        let per = |i| placed.iter().filter(|p| **p == i).count();
        assert_eq!(per(0) + per(1), 2, "zone a gets half");
        assert_eq!(per(2), 2, "zone b's one instance gets the other half");
        assert_eq!((per(0), per(1)), (1, 1));
    }

    #[test]
    fn constraints_filter_instances() {
        let mut cs = vec![in_zone("a1", "us-east-1a"), in_zone("b1", "us-east-1b")];
        let mut r = request(2);
        r.constraints = vec![constraint(
            "memberOf",
            Some("attribute:ecs.availability-zone == us-east-1b"),
        )
        .unwrap()];
        let (placed, _) = place(&r, &mut cs);
        assert_eq!(placed, vec![1, 1]);
        let mut r = request(3);
        r.constraints = vec![Constraint::DistinctInstance];
        let (placed, refusals) = place(&r, &mut cs);
        assert_eq!(
            placed,
            vec![0],
            "b1 already runs the group; a1 takes one copy"
        );
        assert_eq!(refusals[0].1, DISTINCT_INSTANCE_UNSATISFIED);
        let mut fresh = vec![in_zone("a1", "us-east-1a"), in_zone("b1", "us-east-1b")];
        let (placed, refusals) = place(&r, &mut fresh);
        assert_eq!(placed.len(), 2);
        assert_eq!(
            refusals,
            vec![
                ("a1".to_string(), DISTINCT_INSTANCE_UNSATISFIED),
                ("b1".to_string(), DISTINCT_INSTANCE_UNSATISFIED)
            ]
        );
    }

    #[test]
    fn bad_strategies_and_constraints_are_refused() {
        assert!(strategy("binpack", Some("disk")).is_err());
        assert!(strategy("spread", None).is_err());
        assert_eq!(
            strategy("spread", Some("host")),
            Ok(Strategy::Spread(SpreadField::InstanceId))
        );
        assert!(constraint("memberOf", None).is_err());
        assert!(constraint("memberOf", Some("attribute:x ~~ y")).is_err());
        assert!(constraint("distinctInstance", Some("attribute:x == y")).is_err());
    }

    fn arb_strategy() -> impl Strategy_<Value = Strategy> {
        prop_oneof![
            Just(Strategy::Random),
            Just(Strategy::Binpack(BinpackField::Cpu)),
            Just(Strategy::Binpack(BinpackField::Memory)),
            Just(Strategy::Spread(SpreadField::InstanceId)),
            Just(Strategy::Spread(SpreadField::Attribute(
                "ecs.availability-zone".into()
            ))),
        ]
    }

    proptest! {
        #[test]
        fn placement_never_over_commits_and_keeps_constraints(
            sizes in prop::collection::vec((0i64..3000, 0i64..3000, 0usize..3), 1..6),
            cpu in 0i64..1500, memory in 0i64..1500, port in prop::option::of(1i32..5),
            count in 1usize..12, seed in any::<u64>(),
            strategies in prop::collection::vec(arb_strategy(), 0..3),
            distinct in any::<bool>(), zone_b_only in any::<bool>(),
        ) {
            let zones = ["us-east-1a", "us-east-1b", "us-east-1c"];
            let mut cs: Vec<Candidate> = sizes.iter().enumerate().map(|(i, (c, m, z))| {
                let mut x = in_zone(&i.to_string(), zones[*z]);
                x.remaining.cpu = *c;
                x.remaining.memory = *m;
                x
            }).collect();
            let before = cs.clone();
            let mut constraints = vec![];
            if distinct { constraints.push(Constraint::DistinctInstance); }
            if zone_b_only {
                constraints.push(constraint("memberOf", Some("attribute:ecs.availability-zone == us-east-1b")).unwrap());
            }
            let r = Request {
                demand: Demand { cpu, memory, tcp_ports: port.into_iter().collect(), udp_ports: vec![], ..Default::default() },
                count, group: "g".into(), constraints, strategies, seed, required_attributes: vec![],
            };
            let (placed, refusals) = place(&r, &mut cs);
            prop_assert!(placed.len() == count || !refusals.is_empty());
            for (i, c) in before.iter().enumerate() {
                let n = placed.iter().filter(|p| **p == i).count() as i64;
                prop_assert!(n * cpu <= c.remaining.cpu);
                prop_assert!(n * memory <= c.remaining.memory);
                if port.is_some() || distinct { prop_assert!(n <= 1); }
                if zone_b_only && n > 0 {
                    prop_assert_eq!(c.facts.attributes["ecs.availability-zone"].as_deref(), Some("us-east-1b"));
                }
            }
        }

        /// Where no two instances can ever tie (remaining memory distinct
        /// modulo the demand), the indexed path chooses exactly as the scan.
        #[test]
        fn indexed_path_chooses_as_the_scan_does(
            n in 1usize..40, count in 1usize..120, seed in any::<u64>(),
            zones_of in prop::collection::vec(0usize..3, 40),
            by_instance in any::<bool>(), with_zone in any::<bool>(), distinct in any::<bool>(),
            tier_a_only in any::<bool>(),
        ) {
            let zones = ["us-east-1a", "us-east-1b", "us-east-1c"];
            let cs: Vec<Candidate> = (0..n).map(|i| {
                let mut x = in_zone(&i.to_string(), zones[zones_of[i]]);
                x.remaining.cpu = 1 << 20;
                x.remaining.memory = 4096 + i as i64;
                x.facts.attributes.insert("tier".into(), Some(if i % 2 == 0 { "a" } else { "b" }.into()));
                x
            }).collect();
            let mut strategies = vec![];
            if with_zone {
                strategies.push(Strategy::Spread(SpreadField::Attribute("ecs.availability-zone".into())));
            }
            if by_instance {
                strategies.push(Strategy::Spread(SpreadField::InstanceId));
            }
            strategies.push(Strategy::Binpack(BinpackField::Memory));
            let mut constraints = vec![];
            if distinct { constraints.push(Constraint::DistinctInstance); }
            if tier_a_only { constraints.push(constraint("memberOf", Some("attribute:tier == a")).unwrap()); }
            let r = Request {
                demand: Demand { cpu: 1, memory: 64, ..Default::default() },
                count, group: "g".into(), constraints, strategies, seed, required_attributes: vec![],
            };
            let (mut a, mut b) = (cs.clone(), cs);
            let fast = fast::place(&r, &mut a);
            prop_assert!(fast.is_some());
            let scan = place_scan(&r, &mut b);
            prop_assert_eq!(fast.unwrap(), scan);
        }

        #[test]
        fn spread_keeps_counts_within_one(n_instances in 1usize..6, count in 1usize..30, seed in any::<u64>()) {
            let mut cs: Vec<Candidate> = (0..n_instances).map(|i| candidate(&i.to_string(), 1 << 20, 1 << 20)).collect();
            let mut r = request(count);
            r.seed = seed;
            r.strategies = vec![Strategy::Spread(SpreadField::InstanceId)];
            let (placed, _) = place(&r, &mut cs);
            let counts: Vec<usize> = (0..n_instances).map(|i| placed.iter().filter(|p| **p == i).count()).collect();
            let (lo, hi) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
            prop_assert!(hi - lo <= 1, "{:?}", counts);
        }
    }
}
