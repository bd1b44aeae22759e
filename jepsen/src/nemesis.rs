//! The nemesis: which faults a run injects, when, and how each is undone.
//!
//! A schedule alternates calm and fault: it waits about `interval` (between half and one
//! and a half of it, from the run's seeded generator), starts one fault picked from the
//! run's list, holds it for `interval`, stops it, and so on until the time limit; the run
//! then stops whatever is still on. Every start and stop is a standalone `info nemesis`
//! record in the history, with what it hit in `detail`, so the report can shade the
//! intervals and a reader can line anomalies up with faults.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use rand::seq::SliceRandom;
use rand::Rng;

use crate::runtime::{Grudge, NodeRef, Runtime, RuntimeError, RuntimeResult, WanLink};

/// One kind of fault, as named on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NemesisKind {
    /// kill -9 a random node; restart it at the stop.
    Kill,
    /// kill -9 the leader of a random partition of the workload.
    KillLeader,
    /// kill -9 the active controller (the metadata quorum's leader).
    KillController,
    /// kill -9 every node of a random site at once.
    KillSite,
    /// SIGSTOP a random node; SIGCONT at the stop.
    Pause,
    /// SIGSTOP the leader of a random partition.
    PauseLeader,
    /// Cut every site off from every other.
    PartitionSites,
    /// Cut a random majority of the nodes off from the rest.
    PartitionMajority,
    /// Cut the active controller off from every other node.
    IsolateController,
    /// Two halves that cannot reach each other, and one node both still reach.
    PartitionBridge,
    /// Delay, jitter and loss on every link between sites.
    Latency,
}

impl NemesisKind {
    pub const ALL: [NemesisKind; 11] = [
        NemesisKind::Kill,
        NemesisKind::KillLeader,
        NemesisKind::KillController,
        NemesisKind::KillSite,
        NemesisKind::Pause,
        NemesisKind::PauseLeader,
        NemesisKind::PartitionSites,
        NemesisKind::PartitionMajority,
        NemesisKind::IsolateController,
        NemesisKind::PartitionBridge,
        NemesisKind::Latency,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NemesisKind::Kill => "kill",
            NemesisKind::KillLeader => "kill-leader",
            NemesisKind::KillController => "kill-controller",
            NemesisKind::KillSite => "kill-site",
            NemesisKind::Pause => "pause",
            NemesisKind::PauseLeader => "pause-leader",
            NemesisKind::PartitionSites => "partition-sites",
            NemesisKind::PartitionMajority => "partition-majority",
            NemesisKind::IsolateController => "isolate-controller",
            NemesisKind::PartitionBridge => "partition-bridge",
            NemesisKind::Latency => "latency",
        }
    }

    /// Process faults need nothing but signals; the others need a network of the
    /// runtime's own.
    pub fn needs_network(self) -> bool {
        matches!(
            self,
            NemesisKind::PartitionSites
                | NemesisKind::PartitionMajority
                | NemesisKind::IsolateController
                | NemesisKind::PartitionBridge
                | NemesisKind::Latency
        )
    }
}

impl fmt::Display for NemesisKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kinds a `--nemesis` list names: kinds, `none`, or the groups `kills`, `pauses`,
/// `partitions` and `all`.
pub fn parse_nemesis_list(text: &str) -> Result<BTreeSet<NemesisKind>, String> {
    let mut out = BTreeSet::new();
    for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        match word {
            "none" => {}
            "all" => out.extend(NemesisKind::ALL),
            "kills" => out.extend([
                NemesisKind::Kill,
                NemesisKind::KillLeader,
                NemesisKind::KillController,
                NemesisKind::KillSite,
            ]),
            "pauses" => out.extend([NemesisKind::Pause, NemesisKind::PauseLeader]),
            "partitions" => out.extend([
                NemesisKind::PartitionSites,
                NemesisKind::PartitionMajority,
                NemesisKind::IsolateController,
                NemesisKind::PartitionBridge,
            ]),
            _ => {
                out.insert(word.parse()?);
            }
        }
    }
    Ok(out)
}

impl FromStr for NemesisKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        NemesisKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = NemesisKind::ALL.iter().map(|k| k.as_str()).collect();
                format!(
                    "unknown nemesis '{s}' (known: {}, and the groups none, kills, pauses, partitions, all)",
                    names.join(", ")
                )
            })
    }
}

/// What the nemesis needs to know about the cluster's current state to aim a fault.
pub trait Targets {
    /// The leader of a random partition of the workload, if one is known.
    fn some_partition_leader(&mut self, rng: &mut dyn rand::RngCore) -> Option<i32>;
    /// The metadata quorum's leader, if one is known.
    fn active_controller(&mut self) -> Option<i32>;
}

/// A fault that is on, and what undoes it.
#[derive(Clone, Debug, PartialEq)]
pub enum ActiveFault {
    Killed(Vec<i32>),
    Paused(Vec<i32>),
    Partitioned,
    Wan,
}

/// A started fault, for the history: its name and what it hit.
#[derive(Clone, Debug, PartialEq)]
pub struct Started {
    pub kind: NemesisKind,
    pub detail: String,
    pub fault: ActiveFault,
}

fn ids(list: &[i32]) -> String {
    let parts: Vec<String> = list.iter().map(i32::to_string).collect();
    parts.join(",")
}

fn group_text(groups: &[Vec<i32>]) -> String {
    let parts: Vec<String> = groups.iter().map(|g| format!("{{{}}}", ids(g))).collect();
    parts.join(" | ")
}

/// Starts one fault of `kind`. `Ok(None)`: nothing to aim at right now (no leader known, a
/// single site), so the schedule just stays calm.
pub fn start(
    kind: NemesisKind,
    runtime: &mut dyn Runtime,
    targets: &mut dyn Targets,
    wan: WanLink,
    rng: &mut dyn rand::RngCore,
) -> RuntimeResult<Option<Started>> {
    let nodes = runtime.nodes();
    let all: Vec<i32> = nodes.iter().map(|n| n.id).collect();
    let started = |detail: String, fault| {
        Ok(Some(Started {
            kind,
            detail,
            fault,
        }))
    };
    match kind {
        NemesisKind::Kill | NemesisKind::KillLeader | NemesisKind::KillController => {
            let Some(id) = aim(kind, &all, targets, rng) else {
                return Ok(None);
            };
            runtime.kill(id)?;
            started(format!("node {id}"), ActiveFault::Killed(vec![id]))
        }
        NemesisKind::KillSite => {
            let sites = sites(&nodes);
            let Some(site) = sites.choose(rng) else {
                return Ok(None);
            };
            let victims: Vec<i32> = nodes
                .iter()
                .filter(|n| &n.site == site)
                .map(|n| n.id)
                .collect();
            for &id in &victims {
                runtime.kill(id)?;
            }
            started(
                format!("site {site}: nodes {}", ids(&victims)),
                ActiveFault::Killed(victims),
            )
        }
        NemesisKind::Pause | NemesisKind::PauseLeader => {
            let Some(id) = aim(kind, &all, targets, rng) else {
                return Ok(None);
            };
            runtime.pause(id)?;
            started(format!("node {id}"), ActiveFault::Paused(vec![id]))
        }
        NemesisKind::PartitionSites => {
            let sites = sites(&nodes);
            if sites.len() < 2 {
                return Ok(None);
            }
            let groups: Vec<Vec<i32>> = sites
                .iter()
                .map(|s| {
                    nodes
                        .iter()
                        .filter(|n| &n.site == s)
                        .map(|n| n.id)
                        .collect()
                })
                .collect();
            runtime.partition(&Grudge {
                groups: groups.clone(),
            })?;
            started(group_text(&groups), ActiveFault::Partitioned)
        }
        NemesisKind::PartitionMajority => {
            let mut shuffled = all.clone();
            shuffled.shuffle(rng);
            let majority = shuffled.len() / 2 + 1;
            let mut groups = vec![shuffled[..majority].to_vec(), shuffled[majority..].to_vec()];
            groups.iter_mut().for_each(|g| g.sort_unstable());
            runtime.partition(&Grudge {
                groups: groups.clone(),
            })?;
            started(group_text(&groups), ActiveFault::Partitioned)
        }
        NemesisKind::IsolateController => {
            let Some(leader) = targets.active_controller() else {
                return Ok(None);
            };
            let rest: Vec<i32> = all.iter().copied().filter(|&n| n != leader).collect();
            let groups = vec![vec![leader], rest];
            runtime.partition(&Grudge {
                groups: groups.clone(),
            })?;
            started(group_text(&groups), ActiveFault::Partitioned)
        }
        NemesisKind::PartitionBridge => {
            if all.len() < 3 {
                return Ok(None);
            }
            let mut shuffled = all.clone();
            shuffled.shuffle(rng);
            let bridge = shuffled.remove(0);
            let half = shuffled.len() / 2;
            let mut groups = vec![shuffled[..half].to_vec(), shuffled[half..].to_vec()];
            groups.iter_mut().for_each(|g| g.sort_unstable());
            runtime.partition(&Grudge {
                groups: groups.clone(),
            })?;
            started(
                format!("{} (bridge {bridge})", group_text(&groups)),
                ActiveFault::Partitioned,
            )
        }
        NemesisKind::Latency => {
            runtime.set_wan(Some(wan))?;
            started(
                format!(
                    "{} ms ± {} ms, {:.1}% loss between sites",
                    wan.delay_ms,
                    wan.jitter_ms,
                    wan.loss * 100.0
                ),
                ActiveFault::Wan,
            )
        }
    }
}

/// Undoes a started fault: restarts killed nodes (controllers first, so brokers find a
/// quorum), resumes paused ones, heals partitions, removes WAN impairment. Every step is
/// tried; the first error is returned.
pub fn stop(fault: &ActiveFault, runtime: &mut dyn Runtime) -> RuntimeResult<()> {
    let mut first_error: Option<RuntimeError> = None;
    let mut note = |r: RuntimeResult<()>| {
        if let Err(e) = r {
            first_error.get_or_insert(e);
        }
    };
    match fault {
        ActiveFault::Killed(victims) => {
            let controllers: BTreeSet<i32> = runtime
                .nodes()
                .into_iter()
                .filter(|n| n.controller)
                .map(|n| n.id)
                .collect();
            let mut order = victims.clone();
            order.sort_by_key(|id| (!controllers.contains(id), *id));
            for id in order {
                note(runtime.restart(id));
            }
        }
        ActiveFault::Paused(victims) => {
            for &id in victims {
                note(runtime.resume(id));
            }
        }
        ActiveFault::Partitioned => note(runtime.heal_partitions()),
        ActiveFault::Wan => note(runtime.set_wan(None)),
    }
    first_error.map_or(Ok(()), Err)
}

fn aim(
    kind: NemesisKind,
    all: &[i32],
    targets: &mut dyn Targets,
    rng: &mut dyn rand::RngCore,
) -> Option<i32> {
    match kind {
        NemesisKind::KillLeader | NemesisKind::PauseLeader => targets.some_partition_leader(rng),
        NemesisKind::KillController => targets.active_controller(),
        _ => all.choose(rng).copied(),
    }
}

fn sites(nodes: &[NodeRef]) -> Vec<String> {
    let set: BTreeSet<&str> = nodes.iter().map(|n| n.site.as_str()).collect();
    set.into_iter().map(str::to_owned).collect()
}

/// How long the next calm (or fault) lasts: `interval` scaled by 0.5..1.5.
pub fn jittered(interval: std::time::Duration, rng: &mut dyn rand::RngCore) -> std::time::Duration {
    interval.mul_f64(rng.gen_range(0.5..1.5))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use std::path::PathBuf;

    /// A runtime that records what it was asked to do.
    #[derive(Default)]
    struct Recording {
        calls: Vec<String>,
    }

    impl Runtime for Recording {
        fn name(&self) -> &'static str {
            "recording"
        }
        fn nodes(&self) -> Vec<NodeRef> {
            let node = |id, site: &str, controller: bool| NodeRef {
                id,
                site: site.into(),
                broker: !controller,
                controller,
            };
            vec![
                node(1, "a", true),
                node(2, "a", true),
                node(3, "b", true),
                node(101, "a", false),
                node(102, "b", false),
            ]
        }
        fn bootstrap_servers(&self) -> String {
            String::new()
        }
        fn enter_client(&self, _client: usize) -> RuntimeResult<()> {
            Ok(())
        }
        fn kill(&mut self, id: i32) -> RuntimeResult<()> {
            self.calls.push(format!("kill {id}"));
            Ok(())
        }
        fn restart(&mut self, id: i32) -> RuntimeResult<()> {
            self.calls.push(format!("restart {id}"));
            Ok(())
        }
        fn pause(&mut self, id: i32) -> RuntimeResult<()> {
            self.calls.push(format!("pause {id}"));
            Ok(())
        }
        fn resume(&mut self, id: i32) -> RuntimeResult<()> {
            self.calls.push(format!("resume {id}"));
            Ok(())
        }
        fn partition(&mut self, grudge: &Grudge) -> RuntimeResult<()> {
            self.calls
                .push(format!("partition {}", group_text(&grudge.groups)));
            Ok(())
        }
        fn heal_partitions(&mut self) -> RuntimeResult<()> {
            self.calls.push("heal".into());
            Ok(())
        }
        fn set_wan(&mut self, link: Option<WanLink>) -> RuntimeResult<()> {
            self.calls.push(format!("wan {}", link.is_some()));
            Ok(())
        }
        fn log_files(&self) -> Vec<(String, PathBuf)> {
            Vec::new()
        }
    }

    struct Fixed {
        leader: Option<i32>,
        controller: Option<i32>,
    }

    impl Targets for Fixed {
        fn some_partition_leader(&mut self, _rng: &mut dyn rand::RngCore) -> Option<i32> {
            self.leader
        }
        fn active_controller(&mut self) -> Option<i32> {
            self.controller
        }
    }

    const WAN: WanLink = WanLink {
        delay_ms: 50,
        jitter_ms: 5,
        loss: 0.01,
    };

    fn run(kind: NemesisKind, targets: &mut Fixed) -> (Option<Started>, Vec<String>) {
        let mut rt = Recording::default();
        let mut rng = StdRng::seed_from_u64(7);
        let started = start(kind, &mut rt, targets, WAN, &mut rng).unwrap();
        if let Some(s) = &started {
            stop(&s.fault, &mut rt).unwrap();
        }
        (started, rt.calls)
    }

    #[test]
    fn lists_parse_kinds_and_groups_and_name_bad_words() {
        let kinds = parse_nemesis_list("kill, pauses,partition-sites").unwrap();
        assert_eq!(
            kinds.into_iter().collect::<Vec<_>>(),
            [
                NemesisKind::Kill,
                NemesisKind::Pause,
                NemesisKind::PauseLeader,
                NemesisKind::PartitionSites
            ]
        );
        assert!(parse_nemesis_list("none").unwrap().is_empty());
        assert_eq!(
            parse_nemesis_list("all").unwrap().len(),
            NemesisKind::ALL.len()
        );
        let err = parse_nemesis_list("kill,partiton").unwrap_err();
        assert!(err.contains("unknown nemesis 'partiton'"), "{err}");
        for k in NemesisKind::ALL {
            assert_eq!(k.as_str().parse::<NemesisKind>().unwrap(), k);
        }
    }

    #[test]
    fn a_killed_site_comes_back_controllers_first() {
        let mut t = Fixed {
            leader: None,
            controller: None,
        };
        let (started, calls) = run(NemesisKind::KillSite, &mut t);
        let started = started.unwrap();
        let victims = match &started.fault {
            ActiveFault::Killed(v) => v.clone(),
            other => panic!("{other:?}"),
        };
        // Site a has controllers 1, 2 and broker 101; site b controller 3 and broker 102.
        let expected: Vec<String> = if victims.contains(&101) {
            vec![
                "kill 1",
                "kill 2",
                "kill 101",
                "restart 1",
                "restart 2",
                "restart 101",
            ]
        } else {
            vec!["kill 3", "kill 102", "restart 3", "restart 102"]
        }
        .into_iter()
        .map(String::from)
        .collect();
        assert_eq!(calls, expected, "{started:?}");
    }

    #[test]
    fn leader_and_controller_faults_aim_at_them_or_stay_calm() {
        let mut t = Fixed {
            leader: Some(102),
            controller: Some(3),
        };
        assert_eq!(
            run(NemesisKind::PauseLeader, &mut t).1,
            ["pause 102", "resume 102"]
        );
        assert_eq!(
            run(NemesisKind::KillController, &mut t).1,
            ["kill 3", "restart 3"]
        );
        assert_eq!(
            run(NemesisKind::IsolateController, &mut t).1,
            ["partition {3} | {1,2,101,102}", "heal"]
        );
        let mut none = Fixed {
            leader: None,
            controller: None,
        };
        let (started, calls) = run(NemesisKind::KillLeader, &mut none);
        assert!(started.is_none() && calls.is_empty(), "{calls:?}");
    }

    #[test]
    fn partitions_cut_sites_and_bridges_leave_one_node_out() {
        let mut t = Fixed {
            leader: None,
            controller: None,
        };
        assert_eq!(
            run(NemesisKind::PartitionSites, &mut t).1,
            ["partition {1,2,101} | {3,102}", "heal"]
        );
        let (started, _) = run(NemesisKind::PartitionBridge, &mut t);
        let detail = started.unwrap().detail;
        let named: usize = detail.matches([',', '{']).count();
        assert!(detail.contains("(bridge "), "{detail}");
        // Four nodes in the two halves (two braces, two commas), the fifth is the bridge.
        assert_eq!(named, 4, "{detail}");
        let (started, _) = run(NemesisKind::PartitionMajority, &mut t);
        let detail = started.unwrap().detail;
        let halves: Vec<usize> = detail.split(" | ").map(|g| g.split(',').count()).collect();
        assert_eq!(halves, [3, 2], "{detail}");
        assert_eq!(
            run(NemesisKind::Latency, &mut t).1,
            ["wan true", "wan false"]
        );
    }
}
