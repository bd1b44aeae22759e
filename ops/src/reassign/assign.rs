//! `reassign generate`'s planner: new replicas for some topics' partitions on a given set
//! of brokers. Pure: the cluster comes in as a [`ClusterView`].
//!
//! What the proposal guarantees, in order of priority:
//! 1. each partition keeps its replication factor and uses only the given brokers, each
//!    at most once;
//! 2. (rack-aware) each partition's replicas cover as many racks as possible, as evenly as
//!    the racks' sizes allow: with `r` replicas over racks of sizes `c_k` there is a level
//!    `L` (the least with `Σ min(c_k, L) ≥ r`) and every rack holds between
//!    `min(c_k, L-1)` and `min(c_k, L)` of them, which is what Kafka's round-robin over
//!    racks gives; with `r ≤` the number of racks, every replica is in its own rack;
//! 3. replica counts per broker are as even as 1 and 2 allow (least sum of squares, so
//!    floor/ceil of the average whenever the racks permit);
//! 4. among those, the most replicas stay where they are (fewest bytes move): unlike
//!    Kafka's tool, which assigns from scratch;
//! 5. leaders (first replicas) are spread evenly, keeping current leaders where that costs
//!    no balance; followers alternate racks after the leader (a partition whose replicas
//!    do not change keeps its order).
//!
//! 1–4 are one minimum-cost flow ([`super::flow`]): source → partition → (partition, rack)
//! → broker → sink, where each rack's lower bound comes straight from the source (so any
//! full flow meets it), each broker's edge to the sink costs more for each further
//! replica (by more than all movement savings together, so balance comes first), and an
//! edge to a broker that already holds the replica earns 1. Leaders are a second, smaller
//! flow over the chosen replica sets; where those sets allow no even spread (mixed
//! replication factors), replicas of equally loaded brokers are swapped between
//! partitions until they do ([`balance_leaders`]).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::flow::Network;
use super::plan::{list, tp_name, Assignment, Tp};

/// What Metadata says, reduced to what the planner needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterView {
    /// Live brokers and their racks.
    pub brokers: BTreeMap<i32, Option<String>>,
    /// Topic → its partitions' replicas, or the topic's Kafka error code.
    pub topics: BTreeMap<String, Result<BTreeMap<i32, Vec<i32>>, i16>>,
}

impl ClusterView {
    /// The current replicas of every partition of `topics` that exists.
    pub fn assignment_of<'a>(&self, topics: impl IntoIterator<Item = &'a String>) -> Assignment {
        let mut out = Assignment::new();
        for t in topics {
            if let Some(Ok(parts)) = self.topics.get(t) {
                for (p, replicas) in parts {
                    out.insert((t.clone(), *p), replicas.clone());
                }
            }
        }
        out
    }
}

/// Kafka's UNKNOWN_TOPIC_OR_PARTITION.
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;

/// `generate`: (current assignment of `topics`, proposal on `brokers`), or why not.
pub fn generate(
    cluster: &ClusterView,
    topics: &[String],
    brokers: &[i32],
    rack_aware: bool,
) -> Result<(Assignment, Assignment), String> {
    if topics.is_empty() {
        return Err("no topics given: name them with --topics t1,t2".into());
    }
    if brokers.is_empty() {
        return Err("no brokers given: name them with --brokers 1,2,3".into());
    }
    let mut allowed: BTreeMap<i32, Option<String>> = BTreeMap::new();
    for &b in brokers {
        let Some(rack) = cluster.brokers.get(&b) else {
            let live: Vec<i32> = cluster.brokers.keys().copied().collect();
            return Err(format!(
                "broker {b} is not registered (the cluster's live brokers are {})",
                list(&live)
            ));
        };
        if allowed.insert(b, rack.clone()).is_some() {
            return Err(format!("broker {b} is listed twice in --brokers"));
        }
    }
    let topics: BTreeSet<&String> = topics.iter().collect();
    for t in &topics {
        match cluster.topics.get(*t) {
            None | Some(Err(UNKNOWN_TOPIC_OR_PARTITION)) => {
                return Err(format!("unknown topic '{t}'"))
            }
            Some(Err(code)) => {
                return Err(format!(
                    "topic '{t}': Metadata answered {}",
                    crate::groups::client::KafkaCode(*code)
                ))
            }
            Some(Ok(parts)) => {
                if let Some((p, _)) = parts.iter().find(|(_, r)| r.is_empty()) {
                    return Err(format!("{t}-{p} has no replicas in Metadata"));
                }
                let rf = parts.values().map(Vec::len).max().unwrap_or(0);
                if rf > allowed.len() {
                    return Err(format!(
                        "topic '{t}' has replication factor {rf} but only {} brokers were given ({})",
                        allowed.len(),
                        list(&allowed.keys().copied().collect::<Vec<_>>())
                    ));
                }
            }
        }
    }
    let current = cluster.assignment_of(topics.iter().copied());
    let proposed = propose(&current, &allowed, rack_aware)?;
    Ok((current, proposed))
}

/// The racks of `brokers` (name → ids), or one unnamed rack when racks are ignored or no
/// broker has one. Some brokers with a rack and some without is refused, as Kafka does.
fn racks(
    brokers: &BTreeMap<i32, Option<String>>,
    rack_aware: bool,
) -> Result<BTreeMap<String, Vec<i32>>, String> {
    let without: Vec<i32> = brokers
        .iter()
        .filter(|(_, r)| r.is_none())
        .map(|(b, _)| *b)
        .collect();
    if !rack_aware || without.len() == brokers.len() {
        return Ok(BTreeMap::from([(
            String::new(),
            brokers.keys().copied().collect(),
        )]));
    }
    if !without.is_empty() {
        return Err(format!(
            "brokers {} have no rack (broker.rack) while others do; give every broker a rack, or plan without racks with --rack-aware false",
            list(&without)
        ));
    }
    let mut out: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for (b, r) in brokers {
        out.entry(r.clone().unwrap_or_default())
            .or_default()
            .push(*b);
    }
    Ok(out)
}

/// For `replicas` over racks of `sizes`: each rack's (least, most) replicas, the most even
/// spread the sizes allow.
fn rack_bounds(replicas: usize, sizes: &[usize]) -> Vec<(usize, usize)> {
    let level = (1..=replicas)
        .find(|&l| sizes.iter().map(|&c| c.min(l)).sum::<usize>() >= replicas)
        .unwrap_or(replicas);
    sizes
        .iter()
        .map(|&c| (c.min(level - 1), c.min(level)))
        .collect()
}

/// New replicas for every partition of `current` on `brokers` (see the module docs).
pub fn propose(
    current: &Assignment,
    brokers: &BTreeMap<i32, Option<String>>,
    rack_aware: bool,
) -> Result<Assignment, String> {
    let racks = racks(brokers, rack_aware)?;
    let rack_of: BTreeMap<i32, &str> = racks
        .iter()
        .flat_map(|(r, ids)| ids.iter().map(move |b| (*b, r.as_str())))
        .collect();
    let sizes: Vec<usize> = racks.values().map(Vec::len).collect();
    for (tp, replicas) in current {
        if replicas.len() > brokers.len() {
            return Err(format!(
                "{} has {} replicas but only {} brokers were given",
                tp_name(tp),
                replicas.len(),
                brokers.len()
            ));
        }
    }
    let mut sets = replica_sets(current, &racks, &sizes)?;
    let rack_index: BTreeMap<i32, usize> = racks
        .values()
        .enumerate()
        .flat_map(|(i, ids)| ids.iter().map(move |b| (*b, i)))
        .collect();
    let leaders = balance_leaders(current, &mut sets, brokers, &rack_index, &sizes);
    Ok(current
        .keys()
        .map(|tp| {
            let order = order(&current[tp], &sets[tp], leaders[tp], &rack_of);
            (tp.clone(), order)
        })
        .collect())
}

/// Steps 1–4: each partition's replica set.
fn replica_sets(
    current: &Assignment,
    racks: &BTreeMap<String, Vec<i32>>,
    sizes: &[usize],
) -> Result<BTreeMap<Tp, BTreeSet<i32>>, String> {
    let total: usize = current.values().map(Vec::len).sum();
    // One more replica on a broker costs more than every possible saving from keeping
    // replicas in place together, so balance always wins over movement.
    let step = i64::try_from(total).map_err(|_| "too many replicas")? + 1;
    let mut net = Network::new(2);
    let (source, sink) = (0, 1);
    let broker_node: BTreeMap<i32, usize> = racks
        .values()
        .flatten()
        .map(|b| (*b, net.add_node()))
        .collect();
    let partitions = i64::try_from(current.len()).map_err(|_| "too many partitions")?;
    for &node in broker_node.values() {
        net.add_edge(node, sink, partitions, step, step);
    }
    // (partition, broker) → edge, to read the result back.
    let mut placed: Vec<(Tp, i32, usize)> = Vec::new();
    for (tp, replicas) in current {
        let bounds = rack_bounds(replicas.len(), sizes);
        let least: usize = bounds.iter().map(|(lo, _)| lo).sum();
        let p = net.add_node();
        net.add_edge(source, p, (replicas.len() - least) as i64, 0, 0);
        for ((_, ids), (lo, hi)) in racks.iter().zip(bounds) {
            let pk = net.add_node();
            if lo > 0 {
                net.add_edge(source, pk, lo as i64, 0, 0);
            }
            if hi > lo {
                net.add_edge(p, pk, (hi - lo) as i64, 0, 0);
            }
            for b in ids {
                let keep = if replicas.contains(b) { -1 } else { 0 };
                let e = net.add_edge(pk, broker_node[b], 1, keep, 0);
                placed.push((tp.clone(), *b, e));
            }
        }
    }
    let sent = net.min_cost_flow(source, sink, total as i64);
    if sent != total as i64 {
        return Err(format!(
            "internal error: placed {sent} of {total} replicas; please report this with the topics and brokers used"
        ));
    }
    let mut sets: BTreeMap<Tp, BTreeSet<i32>> = BTreeMap::new();
    for (tp, b, e) in placed {
        if net.flow(e) > 0 {
            sets.entry(tp).or_default().insert(b);
        }
    }
    Ok(sets)
}

/// Step 5: each partition's leader among its replica set.
fn leaders(
    current: &Assignment,
    sets: &BTreeMap<Tp, BTreeSet<i32>>,
    brokers: &BTreeMap<i32, Option<String>>,
) -> BTreeMap<Tp, i32> {
    let mut net = Network::new(2);
    let (source, sink) = (0, 1);
    let partitions = sets.len() as i64;
    let step = partitions + 1;
    let broker_node: BTreeMap<i32, usize> = brokers.keys().map(|b| (*b, net.add_node())).collect();
    for &node in broker_node.values() {
        net.add_edge(node, sink, partitions, step, step);
    }
    let mut edges: Vec<(Tp, i32, usize)> = Vec::new();
    for (tp, set) in sets {
        let p = net.add_node();
        net.add_edge(source, p, 1, 0, 0);
        let was = current.get(tp).and_then(|r| r.first()).copied();
        for &b in set {
            let keep = if Some(b) == was { -1 } else { 0 };
            let e = net.add_edge(p, broker_node[&b], 1, keep, 0);
            edges.push((tp.clone(), b, e));
        }
    }
    net.min_cost_flow(source, sink, partitions);
    edges
        .into_iter()
        .filter(|(_, _, e)| net.flow(*e) > 0)
        .map(|(tp, b, _)| (tp, b))
        .collect()
}

/// Step 5 where the replica sets stand in the way: topics of different replication factors
/// (or layouts kept in place) can leave sets that allow no even leader spread, e.g. single
/// replicas all on one broker. While a broker leads two or more partitions than another,
/// this swaps replicas of the two brokers between two partitions (replica counts stay,
/// rack bounds are kept, the fewest extra moves first) when that lets the busier one hand
/// over a leadership; each swap makes the leader spread strictly more even.
fn balance_leaders(
    current: &Assignment,
    sets: &mut BTreeMap<Tp, BTreeSet<i32>>,
    brokers: &BTreeMap<i32, Option<String>>,
    rack_index: &BTreeMap<i32, usize>,
    sizes: &[usize],
) -> BTreeMap<Tp, i32> {
    let fits = |set: &BTreeSet<i32>| {
        let mut per_rack = vec![0; sizes.len()];
        for b in set {
            per_rack[rack_index[b]] += 1;
        }
        rack_bounds(set.len(), sizes)
            .iter()
            .zip(&per_rack)
            .all(|((lo, hi), n)| lo <= n && n <= hi)
    };
    let new = |tp: &Tp, b: i32| i64::from(!current[tp].contains(&b));
    loop {
        let leaders = leaders(current, sets, brokers);
        let mut count: BTreeMap<i32, usize> = brokers.keys().map(|b| (*b, 0)).collect();
        for b in leaders.values() {
            *count.get_mut(b).expect("leaders are given brokers") += 1;
        }
        // (extra moves, p, q, busy broker, idle broker): p hands `busy` to q for `idle`.
        let mut best: Option<(i64, &Tp, &Tp, i32, i32)> = None;
        for (p, &busy) in &leaders {
            for (&idle, &n) in &count {
                if count[&busy] < n + 2 || sets[p].contains(&idle) {
                    continue;
                }
                let mut p_set = sets[p].clone();
                p_set.remove(&busy);
                p_set.insert(idle);
                if !fits(&p_set) {
                    continue;
                }
                for (q, q_set) in sets.iter() {
                    if q == p
                        || !q_set.contains(&idle)
                        || q_set.contains(&busy)
                        || leaders[q] == idle
                    {
                        continue;
                    }
                    let mut q_new = q_set.clone();
                    q_new.remove(&idle);
                    q_new.insert(busy);
                    if !fits(&q_new) {
                        continue;
                    }
                    let extra = new(p, idle) - new(p, busy) + new(q, busy) - new(q, idle);
                    if best.is_none_or(|b| extra < b.0) {
                        best = Some((extra, p, q, busy, idle));
                    }
                }
            }
        }
        let Some((_, p, q, busy, idle)) = best else {
            return leaders;
        };
        let (p, q) = (p.clone(), q.clone());
        let p_set = sets.get_mut(&p).expect("planned partition");
        p_set.remove(&busy);
        p_set.insert(idle);
        let q_set = sets.get_mut(&q).expect("planned partition");
        q_set.remove(&idle);
        q_set.insert(busy);
    }
}

/// The replica list: `leader` first; an unchanged set keeps its current order otherwise;
/// a changed one alternates racks after the leader's, replicas that stay before new ones.
fn order(now: &[i32], set: &BTreeSet<i32>, leader: i32, rack_of: &BTreeMap<i32, &str>) -> Vec<i32> {
    let mut out = vec![leader];
    if now.iter().copied().collect::<BTreeSet<i32>>() == *set {
        out.extend(now.iter().copied().filter(|b| *b != leader));
        return out;
    }
    // Within a rack: staying replicas in their current order, then new ones by id.
    let mut followers: Vec<i32> = now
        .iter()
        .copied()
        .filter(|b| set.contains(b) && *b != leader)
        .collect();
    followers.extend(
        set.iter()
            .copied()
            .filter(|b| !now.contains(b) && *b != leader),
    );
    let mut by_rack: BTreeMap<&str, VecDeque<i32>> = BTreeMap::new();
    for b in followers {
        by_rack.entry(rack_of[&b]).or_default().push_back(b);
    }
    let names: Vec<&str> = rack_of
        .values()
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let start = names
        .iter()
        .position(|r| *r == rack_of[&leader])
        .map_or(0, |i| i + 1);
    while by_rack.values().any(|q| !q.is_empty()) {
        for i in 0..names.len() {
            let name = names[(start + i) % names.len()];
            if let Some(b) = by_rack.get_mut(name).and_then(VecDeque::pop_front) {
                out.push(b);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Brokers from `(id, rack)`; rack "" means none.
    fn brokers(spec: &[(i32, &str)]) -> BTreeMap<i32, Option<String>> {
        spec.iter()
            .map(|(b, r)| (*b, (!r.is_empty()).then(|| r.to_string())))
            .collect()
    }

    /// `count` partitions of `topic`, all on `replicas`.
    fn topic(topic: &str, count: i32, replicas: &[i32]) -> Assignment {
        (0..count)
            .map(|p| ((topic.to_owned(), p), replicas.to_vec()))
            .collect()
    }

    fn counts(a: &Assignment) -> (BTreeMap<i32, usize>, BTreeMap<i32, usize>) {
        let mut replicas = BTreeMap::new();
        let mut leaders = BTreeMap::new();
        for r in a.values() {
            for b in r {
                *replicas.entry(*b).or_insert(0) += 1;
            }
            *leaders.entry(r[0]).or_insert(0) += 1;
        }
        (replicas, leaders)
    }

    /// Replicas that are in the proposal but not in the current assignment.
    fn moved(current: &Assignment, proposed: &Assignment) -> usize {
        proposed
            .iter()
            .map(|(tp, r)| r.iter().filter(|b| !current[tp].contains(b)).count())
            .sum()
    }

    /// Basic promises: same partitions and replication factors, distinct allowed brokers.
    fn check_shape(current: &Assignment, proposed: &Assignment, allowed: &[i32]) {
        assert_eq!(
            current.keys().collect::<Vec<_>>(),
            proposed.keys().collect::<Vec<_>>()
        );
        for (tp, r) in proposed {
            assert_eq!(r.len(), current[tp].len(), "{tp:?}: {r:?}");
            assert_eq!(
                r.iter().collect::<BTreeSet<_>>().len(),
                r.len(),
                "{tp:?}: {r:?}"
            );
            assert!(r.iter().all(|b| allowed.contains(b)), "{tp:?}: {r:?}");
        }
    }

    fn spread(counts: &BTreeMap<i32, usize>, over: &[i32]) -> usize {
        let v: Vec<usize> = over
            .iter()
            .map(|b| counts.get(b).copied().unwrap_or(0))
            .collect();
        v.iter().max().unwrap() - v.iter().min().unwrap()
    }

    #[test]
    fn rack_bounds_are_the_most_even_spread() {
        assert_eq!(rack_bounds(3, &[2, 2, 2]), vec![(0, 1); 3]);
        assert_eq!(rack_bounds(2, &[2, 2, 2]), vec![(0, 1); 3]);
        assert_eq!(rack_bounds(3, &[2, 2]), vec![(1, 2), (1, 2)]);
        assert_eq!(rack_bounds(4, &[5, 5, 5]), vec![(1, 2); 3]);
        // A rack of one broker takes one replica; the other holds the rest.
        assert_eq!(rack_bounds(4, &[1, 3]), vec![(1, 1), (2, 3)]);
        assert_eq!(rack_bounds(3, &[4]), vec![(2, 3)]);
    }

    #[test]
    fn every_partition_covers_every_rack_and_brokers_are_balanced() {
        // Six brokers in three racks; twelve RF-3 partitions all on brokers 1, 2, 3 of
        // racks a and b.
        let all = brokers(&[(1, "a"), (2, "a"), (3, "b"), (4, "b"), (5, "c"), (6, "c")]);
        let current = topic("t", 12, &[1, 2, 3]);
        let proposed = propose(&current, &all, true).unwrap();
        check_shape(&current, &proposed, &[1, 2, 3, 4, 5, 6]);
        for (tp, r) in &proposed {
            let racks: BTreeSet<&str> = r.iter().map(|b| all[b].as_deref().unwrap()).collect();
            assert_eq!(racks.len(), 3, "{tp:?}: {r:?}");
        }
        let (replicas, leaders) = counts(&proposed);
        assert_eq!(replicas.values().copied().collect::<Vec<_>>(), vec![6; 6]);
        assert_eq!(leaders.values().copied().collect::<Vec<_>>(), vec![2; 6]);
        // The least movement for that: brokers 1-3 each keep 6 of their 12.
        assert_eq!(moved(&current, &proposed), 18);
    }

    #[test]
    fn more_replicas_than_racks_spread_evenly_over_racks() {
        let all = brokers(&[(1, "a"), (2, "a"), (3, "b"), (4, "b")]);
        let current = topic("t", 8, &[1, 2, 3]);
        let proposed = propose(&current, &all, true).unwrap();
        check_shape(&current, &proposed, &[1, 2, 3, 4]);
        for (tp, r) in &proposed {
            let in_a = r.iter().filter(|b| **b <= 2).count();
            assert!(in_a == 1 || in_a == 2, "{tp:?}: {r:?}");
            // A new list puts the fallback leader in the other rack.
            if r.iter().collect::<BTreeSet<_>>() != current[tp].iter().collect() {
                assert_ne!(all[&r[0]], all[&r[1]], "{tp:?}: {r:?}");
            }
        }
        let (replicas, leaders) = counts(&proposed);
        assert_eq!(replicas.values().copied().collect::<Vec<_>>(), vec![6; 4]);
        assert_eq!(leaders.values().copied().collect::<Vec<_>>(), vec![2; 4]);
    }

    #[test]
    fn uneven_racks_bind_before_balance() {
        // Rack a has one broker: every RF-2 partition needs it.
        let all = brokers(&[(1, "a"), (2, "b"), (3, "b"), (4, "b")]);
        let current = topic("t", 6, &[2, 3]);
        let proposed = propose(&current, &all, true).unwrap();
        for r in proposed.values() {
            assert!(r.contains(&1), "{r:?}");
        }
        let (replicas, leaders) = counts(&proposed);
        assert_eq!(replicas[&1], 6);
        assert_eq!(spread(&replicas, &[2, 3, 4]), 0);
        assert_eq!(spread(&leaders, &[1, 2, 3, 4]), 1);
        // Without racks the same input balances all four brokers.
        let proposed = propose(&current, &all, false).unwrap();
        let (replicas, _) = counts(&proposed);
        assert_eq!(spread(&replicas, &[1, 2, 3, 4]), 0);
    }

    #[test]
    fn adding_a_broker_moves_only_its_share() {
        let all = brokers(&[(1, ""), (2, ""), (3, ""), (4, "")]);
        let current = topic("t", 4, &[1, 2, 3]);
        let proposed = propose(&current, &all, true).unwrap();
        check_shape(&current, &proposed, &[1, 2, 3, 4]);
        let (replicas, leaders) = counts(&proposed);
        assert_eq!(replicas.values().copied().collect::<Vec<_>>(), vec![3; 4]);
        assert_eq!(leaders.values().copied().collect::<Vec<_>>(), vec![1; 4]);
        // Broker 4's three replicas are all that move.
        assert_eq!(moved(&current, &proposed), 3);
    }

    #[test]
    fn removing_a_broker_moves_only_its_replicas() {
        // A balanced layout on 1..4; broker 1 leaves.
        let current: Assignment = [
            [1, 2, 3],
            [2, 3, 4],
            [3, 4, 1],
            [4, 1, 2],
            [1, 3, 4],
            [2, 4, 1],
        ]
        .iter()
        .enumerate()
        .map(|(p, r)| (("t".to_owned(), p as i32), r.to_vec()))
        .collect();
        let all = brokers(&[(2, ""), (3, ""), (4, "")]);
        let proposed = propose(&current, &all, true).unwrap();
        check_shape(&current, &proposed, &[2, 3, 4]);
        let on_one = current.values().filter(|r| r.contains(&1)).count();
        assert_eq!(moved(&current, &proposed), on_one);
        let (replicas, leaders) = counts(&proposed);
        assert_eq!(replicas.values().copied().collect::<Vec<_>>(), vec![6; 3]);
        assert_eq!(leaders.values().copied().collect::<Vec<_>>(), vec![2; 3]);
    }

    #[test]
    fn a_balanced_layout_is_left_alone() {
        let all = brokers(&[(1, "a"), (2, "b"), (3, "c")]);
        let current: Assignment = [
            [1, 2, 3],
            [2, 3, 1],
            [3, 1, 2],
            [1, 3, 2],
            [2, 1, 3],
            [3, 2, 1],
        ]
        .iter()
        .enumerate()
        .map(|(p, r)| (("t".to_owned(), p as i32), r.to_vec()))
        .collect();
        assert_eq!(propose(&current, &all, true).unwrap(), current);
    }

    #[test]
    fn moving_to_new_brokers_moves_everything_once() {
        let all = brokers(&[(4, "a"), (5, "b"), (6, "c")]);
        let current = topic("t", 3, &[1, 2, 3]);
        let proposed = propose(&current, &all, true).unwrap();
        check_shape(&current, &proposed, &[4, 5, 6]);
        assert_eq!(moved(&current, &proposed), 9);
        let (_, leaders) = counts(&proposed);
        assert_eq!(leaders.values().copied().collect::<Vec<_>>(), vec![1; 3]);
    }

    #[test]
    fn several_topics_and_replication_factors_together() {
        let all = brokers(&[(1, "a"), (2, "a"), (3, "b"), (4, "b"), (5, "c"), (6, "c")]);
        let ids = [1, 2, 3, 4, 5, 6];
        let mut current = topic("three", 10, &[1, 2, 3]);
        current.extend(topic("one", 5, &[1]));
        current.extend(topic("two", 5, &[4, 5]));
        let proposed = propose(&current, &all, true).unwrap();
        check_shape(&current, &proposed, &ids);
        for (tp, r) in &proposed {
            let racks: BTreeSet<&str> = r.iter().map(|b| all[b].as_deref().unwrap()).collect();
            assert_eq!(racks.len(), r.len(), "{tp:?}: {r:?}");
        }
        // 45 replicas and 20 leaders over 6 brokers.
        let (replicas, leaders) = counts(&proposed);
        assert_eq!(spread(&replicas, &ids), 1, "{replicas:?}");
        assert_eq!(spread(&leaders, &ids), 1, "{leaders:?}");
    }

    #[test]
    fn leaders_even_out_across_replication_factors() {
        // Replica counts are already even (10 each), but the RF-2 topic sits on brokers
        // 1 and 2 only: they would lead 5 each while 3, 4, 5 share the other 10.
        let all = brokers(&[(1, ""), (2, ""), (3, ""), (4, ""), (5, "")]);
        let mut current = topic("two", 10, &[1, 2]);
        current.extend(topic("three", 10, &[3, 4, 5]));
        let proposed = propose(&current, &all, true).unwrap();
        check_shape(&current, &proposed, &[1, 2, 3, 4, 5]);
        let (replicas, leaders) = counts(&proposed);
        assert_eq!(replicas.values().copied().collect::<Vec<_>>(), vec![10; 5]);
        assert_eq!(leaders.values().copied().collect::<Vec<_>>(), vec![4; 5]);
        // One swap of two replicas frees a leadership from each of 1 and 2.
        assert_eq!(moved(&current, &proposed), 4);
    }

    #[test]
    fn random_layouts_keep_every_promise() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for round in 0..40 {
            let racks = rng.gen_range(1..=4);
            let per_rack = rng.gen_range(1..=3);
            let spec: Vec<(i32, String)> = (0..racks * per_rack)
                .map(|i| (i as i32 + 1, format!("r{}", i % racks)))
                .collect();
            let all: BTreeMap<i32, Option<String>> =
                spec.iter().map(|(b, r)| (*b, Some(r.clone()))).collect();
            let ids: Vec<i32> = all.keys().copied().collect();
            let rf = rng.gen_range(1..=ids.len().min(4));
            let mut current = Assignment::new();
            for p in 0..rng.gen_range(1..=20) {
                let mut r: Vec<i32> = Vec::new();
                while r.len() < rf {
                    let b = rng.gen_range(1..=ids.len() as i32 + 2);
                    if !r.contains(&b) {
                        r.push(b);
                    }
                }
                current.insert(("t".to_owned(), p), r);
            }
            let proposed = propose(&current, &all, true).unwrap();
            check_shape(&current, &proposed, &ids);
            let distinct_racks = rf.min(racks);
            for (tp, r) in &proposed {
                let covered: BTreeSet<&str> =
                    r.iter().map(|b| all[b].as_deref().unwrap()).collect();
                assert_eq!(covered.len(), distinct_racks, "round {round} {tp:?}: {r:?}");
            }
            // Equal rack sizes: the average is reachable, so floor/ceil holds.
            let (replicas, leaders) = counts(&proposed);
            assert!(spread(&replicas, &ids) <= 1, "round {round}: {replicas:?}");
            assert!(spread(&leaders, &ids) <= 1, "round {round}: {leaders:?}");
            // Planning again from the proposal changes nothing.
            assert_eq!(
                propose(&proposed, &all, true).unwrap(),
                proposed,
                "round {round}"
            );
        }
    }

    #[test]
    fn a_larger_plan_finishes() {
        let spec: Vec<(i32, String)> = (1..=9).map(|b| (b, format!("r{}", b % 3))).collect();
        let all: BTreeMap<i32, Option<String>> =
            spec.iter().map(|(b, r)| (*b, Some(r.clone()))).collect();
        let mut current = Assignment::new();
        for t in 0..10 {
            current.extend(topic(&format!("t{t}"), 30, &[1, 2, 3]));
        }
        let proposed = propose(&current, &all, true).unwrap();
        let (replicas, leaders) = counts(&proposed);
        assert_eq!(replicas.values().copied().collect::<Vec<_>>(), vec![100; 9]);
        assert!(spread(&leaders, &(1..=9).collect::<Vec<_>>()) <= 1);
    }

    fn view() -> ClusterView {
        ClusterView {
            brokers: brokers(&[(1, "a"), (2, "a"), (3, "b"), (4, "b")]),
            topics: BTreeMap::from([
                (
                    "t".to_owned(),
                    Ok(BTreeMap::from([(0, vec![1, 2, 3]), (1, vec![2, 3, 1])])),
                ),
                ("bad".to_owned(), Err(UNKNOWN_TOPIC_OR_PARTITION)),
                ("auth".to_owned(), Err(29)),
            ]),
        }
    }

    #[test]
    fn generate_returns_current_and_proposal() {
        let (current, proposed) =
            generate(&view(), &["t".into(), "t".into()], &[2, 3, 4], true).unwrap();
        assert_eq!(current.len(), 2);
        assert_eq!(current[&("t".to_owned(), 1)], vec![2, 3, 1]);
        check_shape(&current, &proposed, &[2, 3, 4]);
        assert_eq!(moved(&current, &proposed), 2);
    }

    #[test]
    fn generate_refuses_clearly() {
        let err = |topics: &[&str], brokers: &[i32]| {
            let topics: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
            generate(&view(), &topics, brokers, true).unwrap_err()
        };
        assert!(err(&[], &[1, 2, 3]).contains("no topics given"));
        assert!(err(&["t"], &[]).contains("no brokers given"));
        assert_eq!(err(&["nope"], &[1, 2, 3]), "unknown topic 'nope'");
        assert_eq!(err(&["bad"], &[1, 2, 3]), "unknown topic 'bad'");
        assert!(err(&["auth"], &[1, 2, 3]).contains("TOPIC_AUTHORIZATION_FAILED (29)"));
        assert_eq!(
            err(&["t"], &[1, 9]),
            "broker 9 is not registered (the cluster's live brokers are [1,2,3,4])"
        );
        assert!(err(&["t"], &[1, 1, 2]).contains("broker 1 is listed twice"));
        assert_eq!(
            err(&["t"], &[3, 4]),
            "topic 't' has replication factor 3 but only 2 brokers were given ([3,4])"
        );
        let mut mixed = view();
        mixed.brokers.insert(5, None);
        let e = generate(&mixed, &["t".into()], &[1, 3, 5], true).unwrap_err();
        assert!(
            e.contains("brokers [5] have no rack") && e.contains("--rack-aware false"),
            "{e}"
        );
        assert!(generate(&mixed, &["t".into()], &[1, 3, 5], false).is_ok());
    }

    #[test]
    fn followers_alternate_racks_after_the_leader() {
        let rack_of: BTreeMap<i32, &str> =
            BTreeMap::from([(1, "a"), (2, "a"), (3, "b"), (4, "b"), (5, "c")]);
        let set = BTreeSet::from([1, 2, 3, 4, 5]);
        assert_eq!(order(&[9], &set, 3, &rack_of), vec![3, 5, 1, 4, 2]);
        // Unchanged set, new leader: the rest keep their order.
        assert_eq!(
            order(&[1, 2, 3, 4, 5], &set, 4, &rack_of),
            vec![4, 1, 2, 3, 5]
        );
    }
}
