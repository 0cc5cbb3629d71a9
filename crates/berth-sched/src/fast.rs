//! The indexed path for the usual requests: strategies that are attribute
//! spreads, then at most an instanceId spread, then at most a binpack (the
//! services' default and the benchmark's shape), with memberOf constraints
//! that do not read what placement changes (task:group, runningTasksCount).
//!
//! Sequential narrowing by such a chain equals taking the lexicographic
//! minimum of (spread counts of the instance's attribute values ..., its own
//! group count, its remaining resource). Instances are grouped by their
//! attribute values (a handful of groups, e.g. zones), each group an ordered
//! set keyed by the rest, so one copy costs O(groups + log n) instead of a
//! scan. Feasibility that cannot come back within one request (agent,
//! status, memberOf, too little left) drops an instance for good.
use crate::{group_count, Candidate, Constraint, Refusals, Request, SpreadField, Strategy};
use crate::{BinpackField, Rng};
use rustc_hash::FxHashMap as HashMap;
use std::collections::BTreeMap;

/// The shape of a chain the indexed path can serve.
struct Shape<'a> {
    attributes: Vec<&'a str>,
    by_instance: bool,
    binpack: Option<BinpackField>,
    distinct: bool,
}

fn shape(r: &Request) -> Option<Shape<'_>> {
    let mut s = Shape {
        attributes: vec![],
        by_instance: false,
        binpack: None,
        distinct: false,
    };
    for st in &r.strategies {
        match st {
            Strategy::Spread(SpreadField::Attribute(a))
                if !s.by_instance && s.binpack.is_none() =>
            {
                s.attributes.push(a)
            }
            Strategy::Spread(SpreadField::InstanceId) if !s.by_instance && s.binpack.is_none() => {
                s.by_instance = true
            }
            Strategy::Binpack(f) if s.binpack.is_none() => s.binpack = Some(*f),
            // Random after a binpack only breaks ties, as ties are broken anyway.
            Strategy::Random if s.binpack.is_some() => {}
            _ => return None,
        }
    }
    // With no strategy at all placement is random: the scan does that.
    if r.strategies.is_empty() {
        return None;
    }
    for k in &r.constraints {
        match k {
            Constraint::DistinctInstance => s.distinct = true,
            Constraint::MemberOf(e) if !e.reads_placement() => {}
            Constraint::MemberOf(_) => return None,
        }
    }
    Some(s)
}

/// (own group count, binpack value): instances with equal keys share a bucket.
type Key = (usize, i64);
/// Attribute values by level, as 16-bit ids into `Values`, packed.
type GroupKey = u64;
/// Levels and distinct values per level a packed `GroupKey` holds.
const MAX_LEVELS: usize = 4;
const MAX_VALUES: u32 = 1 << 16;

/// Interned attribute values per spread level, with each value's spread count.
struct Values {
    ids: Vec<HashMap<String, u32>>,
    counts: Vec<Vec<usize>>,
}

impl Values {
    fn id(&mut self, level: usize, v: &str) -> Option<u32> {
        if let Some(id) = self.ids[level].get(v) {
            return Some(*id);
        }
        let id = self.counts[level].len() as u32;
        if id >= MAX_VALUES {
            return None;
        }
        self.ids[level].insert(v.to_string(), id);
        self.counts[level].push(0);
        Some(id)
    }

    /// The ids a packed key holds, level by level.
    fn levels(&self, key: GroupKey) -> impl Iterator<Item = (usize, usize)> + '_ {
        (0..self.counts.len()).map(move |l| (l, ((key >> (16 * l)) & 0xffff) as usize))
    }

    fn counts_of(&self, key: GroupKey) -> [usize; MAX_LEVELS] {
        let mut out = [0; MAX_LEVELS];
        for (l, id) in self.levels(key) {
            out[l] = self.counts[l][id];
        }
        out
    }
}

/// Places like `crate::place_scan` when the request has a shape this path
/// serves; None otherwise.
pub fn place(r: &Request, candidates: &mut [Candidate]) -> Option<(Vec<usize>, Refusals)> {
    let s = shape(r)?;
    let levels = s.attributes.len();
    if levels > MAX_LEVELS {
        return None;
    }
    let mut rng = Rng(r.seed | 1);
    let mut values = Values {
        ids: vec![HashMap::default(); levels],
        counts: vec![vec![]; levels],
    };
    let mut groups: HashMap<GroupKey, BTreeMap<Key, Vec<usize>>> = HashMap::default();
    let mut group_of: Vec<GroupKey> = vec![0; candidates.len()];
    let mut own: Vec<usize> = vec![0; candidates.len()];
    let binpack = |c: &Candidate| match s.binpack {
        Some(BinpackField::Cpu) => c.remaining.cpu,
        Some(BinpackField::Memory) => c.remaining.memory,
        None => 0,
    };
    for (i, c) in candidates.iter().enumerate().filter(|(_, c)| c.active) {
        let n = if c.facts.task_groups.is_empty() {
            0
        } else {
            group_count(c, &r.group)
        };
        let mut key: GroupKey = 0;
        for (level, a) in s.attributes.iter().enumerate() {
            let v = c.facts.attributes.get(*a).and_then(|v| v.as_deref());
            // More distinct values than a key holds: the scan serves the request.
            let id = values.id(level, v.unwrap_or_default())?;
            values.counts[level][id as usize] += n;
            key |= u64::from(id) << (16 * level);
        }
        own[i] = n;
        let feasible = c.agent_connected
            && crate::has_attributes(c, r)
            && !(s.distinct && n > 0)
            && r.constraints.iter().all(|k| match k {
                Constraint::MemberOf(e) => e.eval(&c.facts),
                Constraint::DistinctInstance => true,
            })
            && c.remaining.check(&r.demand).is_ok();
        if feasible {
            let k = (if s.by_instance { n } else { 0 }, binpack(c));
            groups.entry(key).or_default().entry(k).or_default().push(i);
        }
        group_of[i] = key;
    }
    let mut placed = Vec::with_capacity(r.count);
    for _ in 0..r.count {
        let Some(i) = next(&mut groups, &values, candidates, r, &mut rng) else {
            return Some((placed, crate::refusals(r, candidates)));
        };
        let c = &mut candidates[i];
        c.remaining.take(&r.demand);
        c.facts.task_groups.push(r.group.clone());
        c.facts.running_tasks_count += 1;
        own[i] += 1;
        let ids: Vec<(usize, usize)> = values.levels(group_of[i]).collect();
        for (level, id) in ids {
            values.counts[level][id] += 1;
        }
        placed.push(i);
        // A distinctInstance copy never returns to the same instance; one that
        // no longer fits is dropped when next met.
        if !s.distinct {
            let k = (if s.by_instance { own[i] } else { 0 }, binpack(c));
            groups
                .entry(group_of[i])
                .or_default()
                .entry(k)
                .or_default()
                .push(i);
        }
    }
    Some((placed, Refusals::new()))
}

/// Takes the best instance that still fits out of `groups`: least counts of
/// its group's values (level by level), then least key, at random among
/// equals. An instance met that no longer fits is dropped.
fn next(
    groups: &mut HashMap<GroupKey, BTreeMap<Key, Vec<usize>>>,
    values: &Values,
    candidates: &[Candidate],
    r: &Request,
    rng: &mut Rng,
) -> Option<usize> {
    loop {
        groups.retain(|_, buckets| !buckets.is_empty());
        let (group, _) = groups.iter().min_by(|(ga, ba), (gb, bb)| {
            (values.counts_of(**ga), ba.keys().next(), *ga).cmp(&(
                values.counts_of(**gb),
                bb.keys().next(),
                *gb,
            ))
        })?;
        let group = *group;
        let buckets = groups.get_mut(&group)?;
        let mut first = buckets.first_entry()?;
        let bucket = first.get_mut();
        let i = bucket.swap_remove(rng.below(bucket.len()));
        if bucket.is_empty() {
            first.remove();
        }
        if candidates[i].remaining.check(&r.demand).is_ok() {
            return Some(i);
        }
    }
}
