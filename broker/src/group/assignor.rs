//! Server-side assignors of the consumer protocol (KIP-848), under Kafka's names:
//! `uniform` (balanced and sticky: partitions stay where they are unless balance needs a
//! move) and `range` (per topic, contiguous ranges over members sorted by id, so
//! co-partitioned topics line up). Pure functions of the members' subscriptions, the
//! previous target assignment and the topics' partition counts.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use uuid::Uuid;

/// Partitions per topic id.
pub type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

/// What an assignor knows about one member.
pub struct MemberSpec<'a> {
    pub member_id: &'a str,
    pub instance_id: Option<&'a str>,
    /// Topic ids the member subscribes to (only topics that exist).
    pub topics: BTreeSet<Uuid>,
    /// The member's previous target assignment, kept where possible.
    pub previous: Option<&'a Assignment>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignor {
    Uniform,
    Range,
}

impl Assignor {
    pub const ALL: [Assignor; 2] = [Assignor::Uniform, Assignor::Range];

    pub fn name(self) -> &'static str {
        match self {
            Assignor::Uniform => "uniform",
            Assignor::Range => "range",
        }
    }

    /// Kafka's short name, or the class name Kafka configurations use.
    pub fn from_name(name: &str) -> Option<Assignor> {
        let short = match name {
            "org.apache.kafka.coordinator.group.assignor.UniformAssignor" => "uniform",
            "org.apache.kafka.coordinator.group.assignor.RangeAssignor" => "range",
            other => other,
        };
        Assignor::ALL.into_iter().find(|a| a.name() == short)
    }

    /// A comma-separated `group.consumer.assignors` value.
    pub fn parse_list(list: &str) -> Result<Vec<Assignor>, String> {
        let names: Vec<&str> = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if names.is_empty() {
            return Err("give at least one of uniform, range".into());
        }
        names
            .iter()
            .map(|n| {
                Assignor::from_name(n)
                    .ok_or_else(|| format!("unknown assignor '{n}'; known: uniform, range"))
            })
            .collect()
    }

    /// The target assignment of every member; members without partitions get an empty one.
    /// `partitions` maps each subscribed topic id to its partition count.
    pub fn assign(
        self,
        members: &[MemberSpec<'_>],
        partitions: &BTreeMap<Uuid, i32>,
    ) -> BTreeMap<String, Assignment> {
        let per_member = match self {
            Assignor::Uniform => uniform(members, partitions),
            Assignor::Range => range(members, partitions),
        };
        members
            .iter()
            .zip(per_member)
            .map(|(m, parts)| {
                let mut assignment = Assignment::new();
                for (topic, p) in parts {
                    assignment.entry(topic).or_default().insert(p);
                }
                (m.member_id.to_string(), assignment)
            })
            .collect()
    }
}

type TopicPartition = (Uuid, i32);

/// Balanced over eligible members (counts differ by at most one where subscriptions allow)
/// and sticky: a partition keeps its previous owner unless balance needs it elsewhere.
fn uniform(
    members: &[MemberSpec<'_>],
    partitions: &BTreeMap<Uuid, i32>,
) -> Vec<BTreeSet<TopicPartition>> {
    let mut owned: Vec<BTreeSet<TopicPartition>> = vec![BTreeSet::new(); members.len()];
    if members.is_empty() {
        return owned;
    }
    let eligible: HashMap<Uuid, Vec<usize>> = partitions
        .keys()
        .map(|t| {
            let subscribers = (0..members.len())
                .filter(|&i| members[i].topics.contains(t))
                .collect();
            (*t, subscribers)
        })
        .collect();
    let mut owner: HashMap<TopicPartition, usize> = HashMap::new();

    // 1. Keep previous owners that are still subscribed.
    for (i, m) in members.iter().enumerate() {
        let Some(previous) = m.previous else { continue };
        for (topic, ps) in previous {
            let Some(&count) = partitions.get(topic) else {
                continue;
            };
            if !m.topics.contains(topic) {
                continue;
            }
            for &p in ps.iter().filter(|&&p| p < count) {
                if let std::collections::hash_map::Entry::Vacant(slot) = owner.entry((*topic, p)) {
                    slot.insert(i);
                    owned[i].insert((*topic, p));
                }
            }
        }
    }

    // 2. Hand out the rest, each to the least loaded eligible member.
    let least_loaded = |owned: &[BTreeSet<TopicPartition>], topic: &Uuid| -> Option<usize> {
        eligible
            .get(topic)?
            .iter()
            .copied()
            .min_by_key(|&i| (owned[i].len(), i))
    };
    for (topic, &count) in partitions {
        for p in 0..count {
            if owner.contains_key(&(*topic, p)) {
                continue;
            }
            if let Some(i) = least_loaded(&owned, topic) {
                owner.insert((*topic, p), i);
                owned[i].insert((*topic, p));
            }
        }
    }

    // 3. One move at a time, from the most loaded member that can give a partition to an
    // eligible member with at least two fewer. Taking from the most loaded first spreads
    // the moves over the owners (stickiness); each move lowers the sum of squared counts,
    // so this terminates.
    'moves: loop {
        let mut order: Vec<usize> = (0..members.len()).collect();
        order.sort_by_key(|&i| (std::cmp::Reverse(owned[i].len()), i));
        for from in order {
            // Give up the highest-numbered partitions first; earlier ones stay put.
            let candidates: Vec<TopicPartition> = owned[from].iter().rev().copied().collect();
            for tp in candidates {
                let Some(to) = least_loaded(&owned, &tp.0) else {
                    continue;
                };
                if owned[to].len() + 1 < owned[from].len() {
                    owned[from].remove(&tp);
                    owned[to].insert(tp);
                    continue 'moves;
                }
            }
        }
        return owned;
    }
}

/// Per topic, contiguous ranges over its subscribers sorted by instance id (or member id),
/// the first `count % n` members getting one extra, as Kafka's range assignor does.
fn range(
    members: &[MemberSpec<'_>],
    partitions: &BTreeMap<Uuid, i32>,
) -> Vec<BTreeSet<TopicPartition>> {
    let mut owned: Vec<BTreeSet<TopicPartition>> = vec![BTreeSet::new(); members.len()];
    for (topic, &count) in partitions {
        let mut subscribers: Vec<usize> = (0..members.len())
            .filter(|&i| members[i].topics.contains(topic))
            .collect();
        if subscribers.is_empty() {
            continue;
        }
        subscribers.sort_by_key(|&i| members[i].instance_id.unwrap_or(members[i].member_id));
        let n = subscribers.len() as i32;
        let (quota, extra) = (count / n, count % n);
        let mut next = 0;
        for (rank, &i) in subscribers.iter().enumerate() {
            let take = quota + i32::from((rank as i32) < extra);
            for p in next..next + take {
                owned[i].insert((*topic, p));
            }
            next += take;
        }
    }
    owned
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(n: u8) -> Uuid {
        Uuid::from_bytes([n; 16])
    }

    fn spec<'a>(id: &'a str, topics: &[Uuid], previous: Option<&'a Assignment>) -> MemberSpec<'a> {
        MemberSpec {
            member_id: id,
            instance_id: None,
            topics: topics.iter().copied().collect(),
            previous,
        }
    }

    fn counts(result: &BTreeMap<String, Assignment>) -> Vec<usize> {
        result
            .values()
            .map(|a| a.values().map(BTreeSet::len).sum())
            .collect()
    }

    /// Every partition of every subscribed topic is owned exactly once, by a subscriber.
    fn check_exact_cover(
        members: &[MemberSpec<'_>],
        partitions: &BTreeMap<Uuid, i32>,
        result: &BTreeMap<String, Assignment>,
    ) {
        let mut seen = BTreeSet::new();
        for m in members {
            for (t, ps) in &result[m.member_id] {
                assert!(
                    m.topics.contains(t),
                    "{} got an unsubscribed topic",
                    m.member_id
                );
                for p in ps {
                    assert!(*p < partitions[t]);
                    assert!(seen.insert((*t, *p)), "partition {t}/{p} owned twice");
                }
            }
        }
        let expected: usize = partitions
            .iter()
            .filter(|(t, _)| members.iter().any(|m| m.topics.contains(t)))
            .map(|(_, c)| *c as usize)
            .sum();
        assert_eq!(seen.len(), expected);
    }

    #[test]
    fn uniform_balances_homogeneous_members() {
        let partitions = BTreeMap::from([(topic(1), 7), (topic(2), 5)]);
        let members: Vec<_> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|id| spec(id, &[topic(1), topic(2)], None))
            .collect();
        let result = Assignor::Uniform.assign(&members, &partitions);
        check_exact_cover(&members, &partitions, &result);
        let c = counts(&result);
        assert_eq!(c.iter().sum::<usize>(), 12);
        assert!(
            c.iter().max().unwrap() - c.iter().min().unwrap() <= 1,
            "{c:?}"
        );
    }

    #[test]
    fn uniform_is_sticky_when_a_member_joins() {
        let partitions = BTreeMap::from([(topic(1), 12)]);
        let two: Vec<_> = ["a", "b"]
            .iter()
            .map(|id| spec(id, &[topic(1)], None))
            .collect();
        let first = Assignor::Uniform.assign(&two, &partitions);
        let three = vec![
            spec("a", &[topic(1)], Some(&first["a"])),
            spec("b", &[topic(1)], Some(&first["b"])),
            spec("c", &[topic(1)], None),
        ];
        let second = Assignor::Uniform.assign(&three, &partitions);
        check_exact_cover(&three, &partitions, &second);
        assert_eq!(counts(&second), vec![4, 4, 4]);
        // Only the four partitions the newcomer needs moved.
        for id in ["a", "b"] {
            let kept = second[id][&topic(1)]
                .intersection(&first[id][&topic(1)])
                .count();
            assert_eq!(kept, 4, "{id} kept {kept} of its partitions");
        }
    }

    #[test]
    fn uniform_handles_disjoint_subscriptions() {
        let partitions = BTreeMap::from([(topic(1), 6), (topic(2), 2)]);
        let members = vec![
            spec("a", &[topic(1)], None),
            spec("b", &[topic(1), topic(2)], None),
            spec("c", &[topic(2)], None),
        ];
        let result = Assignor::Uniform.assign(&members, &partitions);
        check_exact_cover(&members, &partitions, &result);
        // 8 partitions: c can only take topic 2, so a and b share topic 1 and b lends
        // topic 2 to c.
        let c = counts(&result);
        assert!(
            c.iter().max().unwrap() - c.iter().min().unwrap() <= 2,
            "{c:?}"
        );
    }

    #[test]
    fn uniform_drops_partitions_of_unsubscribed_or_shrunk_topics() {
        let partitions = BTreeMap::from([(topic(1), 2)]);
        let previous = Assignment::from([
            (topic(1), BTreeSet::from([0, 1, 5])),
            (topic(9), BTreeSet::from([0])),
        ]);
        let members = vec![spec("a", &[topic(1)], Some(&previous))];
        let result = Assignor::Uniform.assign(&members, &partitions);
        assert_eq!(
            result["a"],
            Assignment::from([(topic(1), BTreeSet::from([0, 1]))])
        );
    }

    #[test]
    fn range_assigns_contiguous_ranges_that_line_up_across_topics() {
        let partitions = BTreeMap::from([(topic(1), 5), (topic(2), 5)]);
        let members = vec![
            spec("b", &[topic(1), topic(2)], None),
            spec("a", &[topic(1), topic(2)], None),
        ];
        let result = Assignor::Range.assign(&members, &partitions);
        check_exact_cover(&members, &partitions, &result);
        for t in [topic(1), topic(2)] {
            assert_eq!(result["a"][&t], BTreeSet::from([0, 1, 2]));
            assert_eq!(result["b"][&t], BTreeSet::from([3, 4]));
        }
    }

    #[test]
    fn no_members_or_no_topics() {
        let partitions = BTreeMap::from([(topic(1), 3)]);
        assert!(Assignor::Uniform.assign(&[], &partitions).is_empty());
        let members = vec![spec("a", &[], None)];
        let result = Assignor::Range.assign(&members, &partitions);
        assert!(result["a"].is_empty());
        assert_eq!(Assignor::from_name("uniform"), Some(Assignor::Uniform));
        assert_eq!(Assignor::from_name("sticky"), None);
    }
}
