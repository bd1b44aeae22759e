//! `reassign generate|execute|verify`, after Kafka's `kafka-reassign-partitions.sh`: move
//! partitions between brokers through the controller's AlterPartitionReassignments and
//! follow them with ListPartitionReassignments, optionally throttling the copy.
//!
//! Parts, one job each:
//! - `mod.rs`: the arguments, and the requests (Metadata, AlterPartitionReassignments,
//!   ListPartitionReassignments, DescribeConfigs, IncrementalAlterConfigs) on the small
//!   client of [`crate::groups::client`] (librdkafka has no reassignment calls).
//! - [`plan`]: the reassignment JSON, the throttle configs, each partition's state.
//! - [`assign`]: `generate`'s planner (rack spread, balance, least movement).
//! - [`flow`]: the minimum-cost flow the planner solves.
//!
//! Throttles work as with Kafka's tool: `execute --throttle` sets
//! `leader.replication.throttled.rate` and `follower.replication.throttled.rate` on every
//! broker that sends or receives data, and on each topic
//! `leader.replication.throttled.replicas` (current replicas of moving partitions) and
//! `follower.replication.throttled.replicas` (the replicas being added); `verify` removes
//! them once every partition of the plan is complete, as does `execute --cancel`. Only
//! configs actually set are removed (read back with DescribeConfigs first), so a cluster
//! without throttles is left alone.

pub mod assign;
pub mod flow;
pub mod plan;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use clap::{ArgAction, Args, Subcommand};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, BrokerId, DescribeConfigsRequest,
    IncrementalAlterConfigsRequest, ListPartitionReassignmentsRequest, MetadataRequest,
    MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use self::assign::ClusterView;
use self::plan::{list, tp_name, Assignment, Ongoing, Tp};
use crate::client::{ClientOpts, Exit};
use crate::groups::client::{Cluster, KafkaCode, Retry};

/// ConfigResource types.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
/// IncrementalAlterConfigs operations.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
/// DescribeConfigs `config_source` values of settings someone set at run time.
const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const SOURCE_DYNAMIC_BROKER: i8 = 2;
const SOURCE_DYNAMIC_DEFAULT_BROKER: i8 = 3;
/// How often `verify` looks again before calling a partition different: a broker's
/// Metadata may trail the controller for a moment after a reassignment completes.
const VERIFY_ATTEMPTS_MAX: u32 = 3;
const VERIFY_RECHECK_DELAY: Duration = Duration::from_secs(1);
/// How long the controller may take to answer ListPartitionReassignments.
const LIST_TIMEOUT_MS: i32 = 10_000;
/// `verify`'s exit code when it could not tell (bad plan, cluster unreachable).
const VERIFY_ERROR_EXIT: u8 = 3;

#[derive(Debug, Subcommand)]
pub enum ReassignCmd {
    /// Propose new replicas for topics on a set of brokers (prints the current assignment
    /// too, for rollback).
    #[command(after_help = "Examples:
  isthmusctl reassign generate --topics orders,payments --brokers 2,3,4
  isthmusctl reassign generate --topics orders --brokers 1,2,3,4,5,6 --output plan.json
  isthmusctl reassign generate --topics orders --brokers 2,3,4 --rack-aware false

The proposal keeps each partition's replication factor and uses only the given brokers.
Rack-aware (the default when brokers have broker.rack), each partition's replicas cover as
many racks as possible. Replica and leader counts are balanced over the given brokers
(counting the given topics only), and replicas already on a given broker stay there when
that costs no balance, so as little data as possible moves. Nothing changes until
`reassign execute`.")]
    Generate(GenerateArgs),
    /// Start (or --cancel) the reassignments of a plan.
    #[command(after_help = "Examples:
  isthmusctl reassign execute --plan plan.json
  isthmusctl reassign execute --plan plan.json --throttle 50000000
  isthmusctl reassign execute --plan plan.json --cancel

The plan is Kafka's reassignment JSON:
  {\"version\":1,\"partitions\":[{\"topic\":\"orders\",\"partition\":0,\"replicas\":[2,3,4]}]}
The current assignment is printed first: keep it to roll back. Each partition's result is
printed with Kafka's error name; the exit code is 1 if any partition was refused.

--throttle BYTES_PER_SEC sets leader/follower.replication.throttled.rate on every broker
that sends or receives data and leader/follower.replication.throttled.replicas on each
topic, before anything starts; `reassign verify` removes them once all is complete. To
change the throttle of a running move, run execute again with the same plan and the new
--throttle (partitions already moving keep their target).")]
    Execute(ExecuteArgs),
    /// Report each plan partition as complete, in progress or different; remove the
    /// throttles once all are complete.
    #[command(after_help = "Examples:
  isthmusctl reassign verify --plan plan.json
  until isthmusctl reassign verify --plan plan.json; do sleep 10; done

Exit codes:
  0  every partition is complete (replicas as the plan says, nothing in progress)
  1  some are still in progress (none different)
  2  some are different: no reassignment in progress but other replicas, or another
     reassignment in progress, or no such partition
  3  could not tell (unreadable plan, cluster unreachable, throttles not removed)")]
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Topics to move, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        required = true,
        value_name = "TOPIC[,TOPIC...]"
    )]
    pub topics: Vec<String>,
    /// Broker ids the replicas may use, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        required = true,
        value_name = "ID[,ID...]"
    )]
    pub brokers: Vec<i32>,
    /// Spread each partition over racks (broker.rack).
    #[arg(long, default_value_t = true, action = ArgAction::Set, value_name = "true|false")]
    pub rack_aware: bool,
    /// Also write the proposal to this file (the input of `execute --plan`).
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ExecuteArgs {
    /// The reassignment plan (JSON, as `generate` writes it).
    #[arg(long, value_name = "FILE")]
    pub plan: PathBuf,
    /// Limit replication traffic of the move to this many bytes/s per broker (0 holds it
    /// back entirely; run execute again with another value to change it).
    #[arg(long, value_name = "BYTES_PER_SEC", conflicts_with = "cancel")]
    pub throttle: Option<u64>,
    /// How long the controller may take to answer AlterPartitionReassignments.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(i32).range(1..))]
    pub timeout_ms: i32,
    /// Let the plan change a partition's replica count (refused otherwise, with
    /// INVALID_REPLICATION_FACTOR).
    #[arg(long, conflicts_with = "cancel")]
    pub allow_replication_factor_change: bool,
    /// Cancel the plan's ongoing reassignments instead (the partitions go back to their
    /// replicas before the reassignment), then remove the throttles.
    #[arg(long)]
    pub cancel: bool,
    /// With --cancel: keep the throttle configs.
    #[arg(long, requires = "cancel")]
    pub preserve_throttles: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The reassignment plan that was executed.
    #[arg(long, value_name = "FILE")]
    pub plan: PathBuf,
    /// Keep the throttle configs even when everything is complete.
    #[arg(long)]
    pub preserve_throttles: bool,
}

pub async fn run(opts: ClientOpts, cmd: ReassignCmd) -> anyhow::Result<()> {
    match cmd {
        ReassignCmd::Generate(a) => generate(opts, a).await,
        ReassignCmd::Execute(a) => execute(opts, a).await,
        ReassignCmd::Verify(a) => match verify(opts, a).await {
            Ok(0) => Ok(()),
            Ok(code) => Err(Exit(code).into()),
            Err(e) => {
                eprintln!("error: {e:#}");
                Err(Exit(VERIFY_ERROR_EXIT).into())
            }
        },
    }
}

fn read_plan(path: &Path) -> anyhow::Result<Assignment> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the plan {}", path.display()))?;
    plan::parse(&text).map_err(|e| anyhow!("{}: {e}", path.display()))
}

/// The distinct topics of a plan.
fn topics_of(plan: &Assignment) -> Vec<String> {
    plan.keys()
        .map(|(t, _)| t.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

async fn generate(opts: ClientOpts, a: GenerateArgs) -> anyhow::Result<()> {
    let mut cluster = Cluster::connect(&opts).await?;
    let view = cluster_view(&mut cluster, &a.topics).await?;
    let (current, proposed) =
        assign::generate(&view, &a.topics, &a.brokers, a.rack_aware).map_err(|e| anyhow!(e))?;
    if let Some(path) = &a.output {
        std::fs::write(path, plan::to_json(&proposed) + "\n")
            .with_context(|| format!("writing the proposal to {}", path.display()))?;
    }
    println!("Current partition replica assignment (keep it to roll back):");
    println!("{}", plan::to_json(&current));
    println!();
    println!("Proposed partition reassignment configuration:");
    println!("{}", plan::to_json(&proposed));
    let moving = proposed
        .iter()
        .filter(|(tp, r)| current[*tp] != **r)
        .count();
    let added: usize = proposed
        .iter()
        .map(|(tp, r)| r.iter().filter(|b| !current[tp].contains(b)).count())
        .sum();
    let total: usize = proposed.values().map(Vec::len).sum();
    println!();
    println!(
        "{moving} of {} partitions change; {added} of {total} replicas are copied to another broker.",
        proposed.len()
    );
    if let Some(path) = &a.output {
        println!("Proposal written to {}.", path.display());
    }
    Ok(())
}

/// Metadata of `topics` (never creating them) with the live brokers and their racks.
async fn cluster_view(cluster: &mut Cluster, topics: &[String]) -> anyhow::Result<ClusterView> {
    let req = MetadataRequest::default()
        .with_topics(Some(
            topics
                .iter()
                .map(|t| {
                    MetadataRequestTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_string(t.clone()))))
                })
                .collect(),
        ))
        .with_allow_auto_topic_creation(false);
    let (resp, _) = cluster.call_any(&req).await?;
    // Also refreshes the addresses used for per-broker requests.
    cluster.metadata(Some(&[])).await?;
    Ok(view_from_metadata(&resp))
}

/// The planner's view of a Metadata answer. A topic error with partitions listed (e.g.
/// LEADER_NOT_AVAILABLE) still has replicas worth planning with.
fn view_from_metadata(resp: &MetadataResponse) -> ClusterView {
    ClusterView {
        brokers: resp
            .brokers
            .iter()
            .map(|b| (b.node_id.0, b.rack.as_ref().map(|r| r.to_string())))
            .collect(),
        topics: resp
            .topics
            .iter()
            .filter_map(|t| {
                let name = t.name.as_ref()?.0.to_string();
                let parts = if t.error_code != 0 && t.partitions.is_empty() {
                    Err(t.error_code)
                } else {
                    Ok(t.partitions
                        .iter()
                        .map(|p| {
                            (
                                p.partition_index,
                                p.replica_nodes.iter().map(|b| b.0).collect(),
                            )
                        })
                        .collect())
                };
                Some((name, parts))
            })
            .collect(),
    }
}

/// One partition's answer to AlterPartitionReassignments.
type Outcome = Result<(), (KafkaCode, Option<String>)>;

async fn execute(opts: ClientOpts, a: ExecuteArgs) -> anyhow::Result<()> {
    let target = read_plan(&a.plan)?;
    let mut cluster = Cluster::connect(&opts).await?;
    if a.cancel {
        return cancel(&mut cluster, &target, a.timeout_ms, a.preserve_throttles).await;
    }
    let topics = topics_of(&target);
    // A partition already moving counts from its replicas before that move, as with
    // Kafka's tool: what to roll back to, and where data comes from (so running execute
    // again with another --throttle throttles the same replicas).
    let moving = ongoing(&mut cluster, &target).await?;
    let view = cluster_view(&mut cluster, &topics).await?;
    let current: Assignment = view
        .assignment_of(&topics)
        .into_iter()
        .filter(|(tp, _)| target.contains_key(tp))
        .map(|(tp, now)| {
            let before = moving.get(&tp).map_or(now, Ongoing::original);
            (tp, before)
        })
        .collect();
    if !current.is_empty() {
        println!("Current partition replica assignment (keep it to roll back with `reassign execute --plan`):");
        println!("{}", plan::to_json(&current));
        println!();
    }
    if !moving.is_empty() {
        let names: Vec<String> = moving.keys().map(tp_name).collect();
        println!(
            "Already being reassigned (the plan replaces their targets; the assignment above is from before): {}",
            names.join(", ")
        );
    }
    if let Some(rate) = a.throttle {
        set_throttles(&mut cluster, &current, &target, rate)
            .await
            .context("setting the replication throttle failed, so no reassignment was started (run again without --throttle to move unthrottled)")?;
    }
    let wanted: BTreeMap<Tp, Option<Vec<i32>>> = target
        .iter()
        .map(|(tp, r)| (tp.clone(), Some(r.clone())))
        .collect();
    let outcomes = alter(
        &mut cluster,
        &wanted,
        a.timeout_ms,
        a.allow_replication_factor_change,
    )
    .await?;
    let mut failed = 0;
    for (tp, outcome) in &outcomes {
        match outcome {
            Ok(()) => {
                let from = current.get(tp).map_or("?".to_owned(), |r| list(r));
                println!(
                    "{}: reassignment started: {from} -> {}",
                    tp_name(tp),
                    list(&target[tp])
                );
            }
            Err((code, message)) => {
                failed += 1;
                println!("{}: {}", tp_name(tp), refusal(*code, message.as_deref()));
            }
        }
    }
    if failed > 0 {
        bail!(
            "{failed} of {} partition reassignments were refused",
            outcomes.len()
        );
    }
    println!(
        "Started {} partition reassignments. Run `isthmusctl reassign verify --plan {}` until it reports every partition complete{}.",
        outcomes.len(),
        a.plan.display(),
        if a.throttle.is_some() {
            " (which also removes the throttle)"
        } else {
            ""
        }
    );
    Ok(())
}

/// `CODE_NAME (n): message`.
fn refusal(code: KafkaCode, message: Option<&str>) -> String {
    match message.filter(|m| !m.is_empty()) {
        Some(m) => format!("{code}: {m}"),
        None => code.to_string(),
    }
}

async fn cancel(
    cluster: &mut Cluster,
    target: &Assignment,
    timeout_ms: i32,
    preserve_throttles: bool,
) -> anyhow::Result<()> {
    let wanted: BTreeMap<Tp, Option<Vec<i32>>> =
        target.keys().map(|tp| (tp.clone(), None)).collect();
    let outcomes = alter(cluster, &wanted, timeout_ms, true).await?;
    let mut failed = 0;
    for (tp, outcome) in &outcomes {
        match outcome {
            Ok(()) => println!("{}: reassignment cancelled", tp_name(tp)),
            Err((code, message)) => {
                failed += 1;
                println!("{}: {}", tp_name(tp), refusal(*code, message.as_deref()));
            }
        }
    }
    if !preserve_throttles {
        clear_throttles(cluster, &topics_of(target)).await?;
    }
    if failed > 0 {
        bail!(
            "{failed} of {} partition reassignments were not cancelled",
            outcomes.len()
        );
    }
    Ok(())
}

/// AlterPartitionReassignments (`None` cancels), retried while the controller moves;
/// each partition's outcome.
async fn alter(
    cluster: &mut Cluster,
    wanted: &BTreeMap<Tp, Option<Vec<i32>>>,
    timeout_ms: i32,
    allow_replication_factor_change: bool,
) -> anyhow::Result<BTreeMap<Tp, Outcome>> {
    let mut by_topic: BTreeMap<&str, Vec<ReassignablePartition>> = BTreeMap::new();
    for ((topic, partition), replicas) in wanted {
        by_topic.entry(topic).or_default().push(
            ReassignablePartition::default()
                .with_partition_index(*partition)
                .with_replicas(
                    replicas
                        .as_ref()
                        .map(|r| r.iter().map(|b| BrokerId(*b)).collect()),
                ),
        );
    }
    let req = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(timeout_ms)
        .with_allow_replication_factor_change(allow_replication_factor_change)
        .with_topics(
            by_topic
                .into_iter()
                .map(|(t, ps)| {
                    ReassignableTopic::default()
                        .with_name(TopicName(StrBytes::from_string(t.to_owned())))
                        .with_partitions(ps)
                })
                .collect(),
        );
    // Before v1 the field does not exist and brokers allow any change.
    let min_version = if allow_replication_factor_change {
        0
    } else {
        1
    };
    let mut retry = Retry::new();
    let resp = loop {
        let (resp, _) = cluster
            .call_any_from(&req, min_version)
            .await
            .map_err(|e| {
                if min_version > 0 {
                    e.context("(refusing replication-factor changes needs AlterPartitionReassignments v1; --allow-replication-factor-change works with v0)")
                } else {
                    e
                }
            })?;
        if resp.error_code == ResponseError::NotController.code() {
            retry
                .wait(
                    "AlterPartitionReassignments",
                    anyhow!("{}", KafkaCode(resp.error_code)),
                )
                .await?;
            continue;
        }
        break resp;
    };
    let top = (resp.error_code != 0).then(|| {
        (
            KafkaCode(resp.error_code),
            resp.error_message.as_ref().map(|m| m.to_string()),
        )
    });
    let mut answered: BTreeMap<Tp, Outcome> = BTreeMap::new();
    for t in &resp.responses {
        for p in &t.partitions {
            let outcome = if p.error_code == 0 {
                Ok(())
            } else {
                Err((
                    KafkaCode(p.error_code),
                    p.error_message.as_ref().map(|m| m.to_string()),
                ))
            };
            answered.insert((t.name.0.to_string(), p.partition_index), outcome);
        }
    }
    Ok(wanted
        .keys()
        .map(|tp| {
            let outcome = match (&top, answered.remove(tp)) {
                (Some(err), _) => Err(err.clone()),
                (None, Some(o)) => o,
                (None, None) => Err((
                    KafkaCode(ResponseError::UnknownServerError.code()),
                    Some("the controller's answer left this partition out".to_owned()),
                )),
            };
            (tp.clone(), outcome)
        })
        .collect())
}

/// `execute --throttle`: validates every change first (validate_only), so an unknown
/// config or a bad value changes nothing, then applies them.
async fn set_throttles(
    cluster: &mut Cluster,
    current: &Assignment,
    target: &Assignment,
    rate: u64,
) -> anyhow::Result<()> {
    let th = plan::throttles(current, target);
    if th.topics.is_empty() {
        println!("No partition gets a new replica: no throttle needed.");
        return Ok(());
    }
    let live = cluster.brokers().clone();
    let rate = rate.to_string();
    let broker_changes = [
        (plan::LEADER_RATE, Some(rate.as_str())),
        (plan::FOLLOWER_RATE, Some(rate.as_str())),
    ];
    let topic_resources: Vec<AlterConfigsResource> = th
        .topics
        .iter()
        .map(|(t, (leader, follower))| {
            resource(
                RESOURCE_TOPIC,
                t,
                &[
                    (plan::LEADER_REPLICAS, Some(leader.as_str())),
                    (plan::FOLLOWER_REPLICAS, Some(follower.as_str())),
                ],
            )
        })
        .collect();
    let brokers: Vec<i32> = th
        .brokers
        .iter()
        .copied()
        .filter(|b| live.contains_key(b))
        .collect();
    let absent: Vec<i32> = th
        .brokers
        .iter()
        .copied()
        .filter(|b| !live.contains_key(b))
        .collect();
    for validate_only in [true, false] {
        for &b in &brokers {
            let res = resource(RESOURCE_BROKER, &b.to_string(), &broker_changes);
            incremental_alter(cluster, Some(&live[&b]), vec![res], validate_only)
                .await
                .with_context(|| format!("broker {b}"))?;
        }
        incremental_alter(cluster, None, topic_resources.clone(), validate_only).await?;
    }
    println!(
        "Throttle: {rate} bytes/s on brokers {} ({} and {}).",
        list(&brokers),
        plan::LEADER_RATE,
        plan::FOLLOWER_RATE
    );
    if !absent.is_empty() {
        println!(
            "Brokers {} are not live: no throttle set on them.",
            list(&absent)
        );
    }
    for (t, (leader, follower)) in &th.topics {
        println!(
            "Topic {t}: {}={leader} {}={follower}",
            plan::LEADER_REPLICAS,
            plan::FOLLOWER_REPLICAS
        );
    }
    Ok(())
}

/// One IncrementalAlterConfigs resource: SET for `Some` values, DELETE for `None`.
fn resource(kind: i8, name: &str, changes: &[(&str, Option<&str>)]) -> AlterConfigsResource {
    AlterConfigsResource::default()
        .with_resource_type(kind)
        .with_resource_name(StrBytes::from_string(name.to_owned()))
        .with_configs(
            changes
                .iter()
                .map(|(k, v)| {
                    AlterableConfig::default()
                        .with_name(StrBytes::from_string((*k).to_owned()))
                        .with_config_operation(if v.is_some() { OP_SET } else { OP_DELETE })
                        .with_value(v.map(|v| StrBytes::from_string(v.to_owned())))
                })
                .collect(),
        )
}

/// IncrementalAlterConfigs on `addr` (broker resources must go to their broker) or any
/// broker; fails naming the first refused resource.
async fn incremental_alter(
    cluster: &mut Cluster,
    addr: Option<&str>,
    resources: Vec<AlterConfigsResource>,
    validate_only: bool,
) -> anyhow::Result<()> {
    let req = IncrementalAlterConfigsRequest::default()
        .with_resources(resources)
        .with_validate_only(validate_only);
    let (resp, _) = match addr {
        Some(addr) => cluster.call_on(addr, &req).await?,
        None => cluster.call_any(&req).await?,
    };
    for r in &resp.responses {
        if r.error_code != 0 {
            let what = if r.resource_type == RESOURCE_BROKER {
                format!("broker {} configs", r.resource_name)
            } else {
                format!("topic {} configs", r.resource_name)
            };
            bail!(
                "{}{what}: {}",
                if validate_only { "checking " } else { "" },
                refusal(
                    KafkaCode(r.error_code),
                    r.error_message.as_ref().map(|m| m.as_str())
                )
            );
        }
    }
    Ok(())
}

/// Removes the throttle configs that are set: the rates on every live broker, the replica
/// lists on `topics`. Prints what it removed.
async fn clear_throttles(cluster: &mut Cluster, topics: &[String]) -> anyhow::Result<()> {
    cluster.metadata(Some(&[])).await?;
    let live = cluster.brokers().clone();
    let mut removed = Vec::new();
    for (&b, addr) in &live {
        let name = b.to_string();
        let set = dynamic_configs(
            cluster,
            Some(addr),
            RESOURCE_BROKER,
            &name,
            &[plan::LEADER_RATE, plan::FOLLOWER_RATE],
            &[SOURCE_DYNAMIC_BROKER, SOURCE_DYNAMIC_DEFAULT_BROKER],
        )
        .await
        .with_context(|| format!("reading broker {b}'s throttle"))?;
        if set.is_empty() {
            continue;
        }
        let changes: Vec<(&str, Option<&str>)> = set.iter().map(|k| (k.as_str(), None)).collect();
        incremental_alter(
            cluster,
            Some(addr),
            vec![resource(RESOURCE_BROKER, &name, &changes)],
            false,
        )
        .await
        .with_context(|| format!("removing broker {b}'s throttle"))?;
        removed.push(format!("broker {b}: {}", set.join(", ")));
    }
    for t in topics {
        let set = dynamic_configs(
            cluster,
            None,
            RESOURCE_TOPIC,
            t,
            &[plan::LEADER_REPLICAS, plan::FOLLOWER_REPLICAS],
            &[SOURCE_DYNAMIC_TOPIC],
        )
        .await
        .with_context(|| format!("reading topic {t}'s throttle"))?;
        if set.is_empty() {
            continue;
        }
        let changes: Vec<(&str, Option<&str>)> = set.iter().map(|k| (k.as_str(), None)).collect();
        incremental_alter(
            cluster,
            None,
            vec![resource(RESOURCE_TOPIC, t, &changes)],
            false,
        )
        .await
        .with_context(|| format!("removing topic {t}'s throttle"))?;
        removed.push(format!("topic {t}: {}", set.join(", ")));
    }
    for r in &removed {
        println!("Throttle removed from {r}");
    }
    Ok(())
}

/// Which of `keys` the resource has set with one of `sources` (DescribeConfigs). A
/// resource that does not exist (e.g. a topic deleted meanwhile) has none.
async fn dynamic_configs(
    cluster: &mut Cluster,
    addr: Option<&str>,
    kind: i8,
    name: &str,
    keys: &[&str],
    sources: &[i8],
) -> anyhow::Result<Vec<String>> {
    let req =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(kind)
            .with_resource_name(StrBytes::from_string(name.to_owned()))
            .with_configuration_keys(Some(
                keys.iter()
                    .map(|k| StrBytes::from_string((*k).to_owned()))
                    .collect(),
            ))]);
    let (resp, _) = match addr {
        Some(addr) => cluster.call_on(addr, &req).await?,
        None => cluster.call_any(&req).await?,
    };
    let mut out = Vec::new();
    for r in &resp.results {
        if r.error_code == ResponseError::UnknownTopicOrPartition.code() {
            continue;
        }
        if r.error_code != 0 {
            bail!(
                "DescribeConfigs: {}",
                refusal(
                    KafkaCode(r.error_code),
                    r.error_message.as_ref().map(|m| m.as_str())
                )
            );
        }
        for c in &r.configs {
            if keys.contains(&c.name.as_str())
                && c.value.is_some()
                && sources.contains(&c.config_source)
            {
                out.push(c.name.to_string());
            }
        }
    }
    Ok(out)
}

/// `verify`: prints each partition's state and returns the exit code (0, 1, 2).
async fn verify(opts: ClientOpts, a: VerifyArgs) -> anyhow::Result<u8> {
    let target = read_plan(&a.plan)?;
    let mut cluster = Cluster::connect(&opts).await?;
    let topics = topics_of(&target);
    let mut attempt = 1;
    let states = loop {
        // The controller's view first: a reassignment that completes in between then
        // shows as complete in Metadata rather than as different.
        let ongoing = ongoing(&mut cluster, &target).await?;
        let view = cluster_view(&mut cluster, &topics).await?;
        let current = view.assignment_of(&topics);
        let states = plan::verify(&target, &current, &ongoing);
        let different = states
            .iter()
            .any(|(_, s)| matches!(s, plan::State::Different(_)));
        if !different || attempt >= VERIFY_ATTEMPTS_MAX {
            break states;
        }
        attempt += 1;
        tokio::time::sleep(VERIFY_RECHECK_DELAY).await;
    };
    println!("Status of partition reassignment:");
    for (tp, state) in &states {
        println!("{}: {state}", tp_name(tp));
    }
    let code = plan::verify_exit_code(&states);
    if code == 0 && !a.preserve_throttles {
        clear_throttles(&mut cluster, &topics).await?;
    }
    Ok(code)
}

/// ListPartitionReassignments for the plan's partitions.
async fn ongoing(
    cluster: &mut Cluster,
    target: &Assignment,
) -> anyhow::Result<BTreeMap<Tp, Ongoing>> {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in target.keys() {
        by_topic.entry(t).or_default().push(*p);
    }
    let req = ListPartitionReassignmentsRequest::default()
        .with_timeout_ms(LIST_TIMEOUT_MS)
        .with_topics(Some(
            by_topic
                .into_iter()
                .map(|(t, ps)| {
                    ListPartitionReassignmentsTopics::default()
                        .with_name(TopicName(StrBytes::from_string(t.to_owned())))
                        .with_partition_indexes(ps)
                })
                .collect(),
        ));
    let mut retry = Retry::new();
    let resp = loop {
        let (resp, _) = cluster.call_any(&req).await?;
        if resp.error_code == ResponseError::NotController.code() {
            retry
                .wait(
                    "ListPartitionReassignments",
                    anyhow!("{}", KafkaCode(resp.error_code)),
                )
                .await?;
            continue;
        }
        break resp;
    };
    if resp.error_code != 0 {
        bail!(
            "ListPartitionReassignments: {}",
            refusal(
                KafkaCode(resp.error_code),
                resp.error_message.as_ref().map(|m| m.as_str())
            )
        );
    }
    let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<i32>>();
    Ok(resp
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| {
                (
                    (t.name.0.to_string(), p.partition_index),
                    Ongoing {
                        replicas: ids(&p.replicas),
                        adding: ids(&p.adding_replicas),
                        removing: ids(&p.removing_replicas),
                    },
                )
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use kafka_protocol::messages::metadata_response::{
        MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
    };

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: ReassignCmd,
    }

    fn parse(args: &[&str]) -> Result<ReassignCmd, clap::Error> {
        Cli::try_parse_from(std::iter::once("reassign").chain(args.iter().copied())).map(|c| c.cmd)
    }

    #[test]
    fn arguments() {
        let ReassignCmd::Generate(g) =
            parse(&["generate", "--topics", "a,b", "--brokers", "2,3,4"]).unwrap()
        else {
            panic!()
        };
        assert_eq!(g.topics, vec!["a", "b"]);
        assert_eq!(g.brokers, vec![2, 3, 4]);
        assert!(g.rack_aware);
        let ReassignCmd::Generate(g) = parse(&[
            "generate",
            "--topics",
            "a",
            "--brokers",
            "1",
            "--rack-aware",
            "false",
        ])
        .unwrap() else {
            panic!()
        };
        assert!(!g.rack_aware);
        assert!(parse(&["generate", "--topics", "a"]).is_err());
        assert!(parse(&["generate", "--topics", "a", "--brokers", "x"]).is_err());

        let ReassignCmd::Execute(e) = parse(&["execute", "--plan", "p.json"]).unwrap() else {
            panic!()
        };
        assert_eq!(
            (
                e.throttle,
                e.timeout_ms,
                e.allow_replication_factor_change,
                e.cancel
            ),
            (None, 10_000, false, false)
        );
        assert!(parse(&["execute", "--plan", "p", "--throttle", "-1"]).is_err());
        assert!(parse(&["execute", "--plan", "p", "--throttle", "0"]).is_ok());
        assert!(parse(&["execute", "--plan", "p", "--cancel", "--throttle", "5"]).is_err());
        assert!(parse(&["execute", "--plan", "p", "--preserve-throttles"]).is_err());
        assert!(parse(&["execute", "--plan", "p", "--cancel", "--preserve-throttles"]).is_ok());
        assert!(parse(&["verify", "--plan", "p", "--preserve-throttles"]).is_ok());
    }

    #[test]
    fn metadata_becomes_the_planners_view() {
        let partition = |i: i32, replicas: &[i32]| {
            MetadataResponsePartition::default()
                .with_partition_index(i)
                .with_replica_nodes(replicas.iter().map(|b| BrokerId(*b)).collect())
        };
        let resp = MetadataResponse::default()
            .with_brokers(vec![
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(1))
                    .with_rack(Some(StrBytes::from_static_str("a"))),
                MetadataResponseBroker::default().with_node_id(BrokerId(2)),
            ])
            .with_topics(vec![
                MetadataResponseTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_static_str("t"))))
                    .with_partitions(vec![partition(1, &[2, 1]), partition(0, &[1, 2])]),
                MetadataResponseTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_static_str("gone"))))
                    .with_error_code(3),
                MetadataResponseTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_static_str("leaderless"))))
                    .with_error_code(5)
                    .with_partitions(vec![partition(0, &[2])]),
            ]);
        let view = view_from_metadata(&resp);
        assert_eq!(
            view.brokers,
            BTreeMap::from([(1, Some("a".to_owned())), (2, None)])
        );
        assert_eq!(view.topics["gone"], Err(3));
        assert_eq!(
            view.topics["t"],
            Ok(BTreeMap::from([(0, vec![1, 2]), (1, vec![2, 1])]))
        );
        assert_eq!(
            view.topics["leaderless"],
            Ok(BTreeMap::from([(0, vec![2])]))
        );
    }

    #[test]
    fn refusals_read_like_kafka() {
        assert_eq!(
            refusal(KafkaCode(39), Some("broker 9 is not registered")),
            "INVALID_REPLICA_ASSIGNMENT (39): broker 9 is not registered"
        );
        assert_eq!(
            refusal(KafkaCode(85), Some("")),
            "NO_REASSIGNMENT_IN_PROGRESS (85)"
        );
    }
}
