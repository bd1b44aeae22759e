//! `topics` subcommands, shaped like `kafka-topics.sh` (and `kafka-configs.sh` for
//! `alter-config`): create, list, describe, delete, alter-config.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Context as _};
use clap::{Args, Subcommand};
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, ConfigEntry, ConfigSource, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::metadata::MetadataTopic;

use crate::client::{
    check_topic_name, describe_error, fetch_metadata, parse_property, parse_property_list,
    resp_error, ClientOpts, ErrorName, Property,
};

#[derive(Debug, Subcommand)]
pub enum TopicsCmd {
    /// Create a topic.
    #[command(after_help = "Examples:
  isthmusctl topics create --topic orders --partitions 6 --replication-factor 3
  isthmusctl topics create --topic orders --partitions 6 --replication-factor 3 \\
      --config min.insync.replicas=2 --config retention.ms=604800000 --if-not-exists")]
    Create(CreateArgs),
    /// List topic names, one per line.
    #[command(after_help = "Example:\n  isthmusctl topics list")]
    List,
    /// Show partitions (leader, replicas, ISR) and non-default configs.
    #[command(after_help = "Examples:
  isthmusctl topics describe --topic orders
  isthmusctl topics describe            # every topic")]
    Describe(DescribeArgs),
    /// Delete a topic and all its data.
    #[command(after_help = "Example:\n  isthmusctl topics delete --topic orders")]
    Delete(DeleteArgs),
    /// Set or remove topic configs, keeping the others.
    #[command(after_help = "Examples:
  isthmusctl topics alter-config --topic orders --add-config retention.ms=86400000,cleanup.policy=compact
  isthmusctl topics alter-config --topic orders --delete-config retention.ms

Brokers receive the full resulting set of topic overrides (AlterConfigs): the current
overrides are read first, so a change made by someone else in between is overwritten.")]
    AlterConfig(AlterConfigArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Topic name.
    #[arg(long)]
    pub topic: String,
    /// Partition count (default: the broker's num.partitions).
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
    pub partitions: Option<i32>,
    /// Replicas per partition (default: the broker's default.replication.factor).
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
    pub replication_factor: Option<i32>,
    /// Topic config override (repeatable).
    #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_property)]
    pub configs: Vec<Property>,
    /// Succeed quietly if the topic already exists.
    #[arg(long)]
    pub if_not_exists: bool,
}

#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// Topic to describe (default: all topics).
    #[arg(long)]
    pub topic: Option<String>,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Topic name.
    #[arg(long)]
    pub topic: String,
    /// Succeed quietly if the topic does not exist.
    #[arg(long)]
    pub if_exists: bool,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("change").required(true).multiple(true))]
pub struct AlterConfigArgs {
    /// Topic name.
    #[arg(long)]
    pub topic: String,
    /// Configs to set: k=v[,k=v...] (repeatable; wrap a value holding commas in [...]).
    #[arg(long, value_name = "K=V,...", value_parser = parse_property_list, group = "change")]
    pub add_config: Vec<Vec<Property>>,
    /// Config names to reset to the default: k[,k...] (repeatable).
    #[arg(long, value_name = "K,...", value_delimiter = ',', group = "change")]
    pub delete_config: Vec<String>,
}

pub async fn run(opts: ClientOpts, cmd: TopicsCmd) -> anyhow::Result<()> {
    let ctx = Ctx::new(opts)?;
    match cmd {
        TopicsCmd::Create(a) => {
            if ctx.create(&a).await? {
                println!("Created topic {}.", a.topic);
            }
            Ok(())
        }
        TopicsCmd::List => ctx.list().await,
        TopicsCmd::Describe(a) => ctx.describe(a).await,
        TopicsCmd::Delete(a) => ctx.delete(a).await,
        TopicsCmd::AlterConfig(a) => ctx.alter_config(a).await,
    }
}

/// Makes sure `topic` exists for a benchmark, creating it with `partitions` if not.
/// Progress goes to stderr so that `--json` output stays machine-readable.
pub async fn ensure_topic(
    opts: &ClientOpts,
    topic: &str,
    partitions: i32,
    replication_factor: Option<i32>,
) -> anyhow::Result<()> {
    let ctx = Ctx::new(opts.clone())?;
    let existing = ctx
        .metadata(None)
        .await?
        .into_iter()
        .find(|t| t.name == topic);
    if let Some(t) = existing {
        let have = t.partitions.len();
        if i32::try_from(have).ok() != Some(partitions) {
            eprintln!("note: topic '{topic}' exists with {have} partitions; --partitions {partitions} not applied");
        }
        return Ok(());
    }
    let args = CreateArgs {
        topic: topic.to_owned(),
        partitions: Some(partitions),
        replication_factor,
        configs: Vec::new(),
        if_not_exists: true,
    };
    if ctx.create(&args).await? {
        eprintln!("Created topic {topic} with {partitions} partitions.");
    }
    Ok(())
}

struct Ctx {
    admin: AdminClient<DefaultClientContext>,
    opts: AdminOptions,
    cli: ClientOpts,
}

impl Ctx {
    fn new(cli: ClientOpts) -> anyhow::Result<Self> {
        // Targeted metadata requests from a producer-type client may auto-create the topic
        // on brokers with auto.create.topics.enable; describing a typo must not create it.
        let admin = cli
            .config(&[("allow.auto.create.topics", "false")], &[])
            .create()
            .context("creating admin client")?;
        let opts = AdminOptions::new()
            .request_timeout(Some(cli.request_timeout))
            .operation_timeout(Some(cli.request_timeout));
        Ok(Self { admin, opts, cli })
    }

    /// Metadata for one topic (failing with the broker's error if it is missing) or all.
    async fn metadata(&self, topic: Option<&str>) -> anyhow::Result<Vec<TopicInfo>> {
        let md = tokio::task::block_in_place(|| {
            fetch_metadata(self.admin.inner(), topic, self.cli.request_timeout)
        })?;
        let mut topics: Vec<TopicInfo> = md.topics().iter().map(TopicInfo::from).collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        if let Some(t) = topic {
            match topics.iter().find(|i| i.name == t) {
                None => bail!("topic '{t}' not found"),
                Some(TopicInfo { error: Some(e), .. }) => bail!("topic '{t}': {e}"),
                Some(_) => {}
            }
        }
        Ok(topics)
    }

    /// Returns whether the topic was created (false: it existed and `--if-not-exists`).
    async fn create(&self, a: &CreateArgs) -> anyhow::Result<bool> {
        check_topic_name(&a.topic)?;
        let mut topic = NewTopic::new(
            &a.topic,
            a.partitions.unwrap_or(-1),
            TopicReplication::Fixed(a.replication_factor.unwrap_or(-1)),
        );
        for (k, v) in &a.configs {
            topic = topic.set(k, v);
        }
        let results = self
            .admin
            .create_topics([&topic], &self.opts)
            .await
            .map_err(|e| anyhow!("creating topic '{}': {}", a.topic, describe_error(&e)))?;
        match results.into_iter().next() {
            Some(Ok(_)) => Ok(true),
            Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) if a.if_not_exists => Ok(false),
            Some(Err((name, code))) => bail!("creating topic '{name}': {}", ErrorName(code)),
            None => bail!("creating topic '{}': empty response", a.topic),
        }
    }

    async fn list(&self) -> anyhow::Result<()> {
        for t in self.metadata(None).await? {
            println!("{}", t.name);
        }
        Ok(())
    }

    async fn describe(&self, a: DescribeArgs) -> anyhow::Result<()> {
        let topics = self.metadata(a.topic.as_deref()).await?;
        let topics: Vec<TopicInfo> = match &a.topic {
            Some(t) => topics.into_iter().filter(|i| &i.name == t).collect(),
            None => topics,
        };
        let readable: Vec<ResourceSpecifier<'_>> = topics
            .iter()
            .filter(|t| t.error.is_none())
            .map(|t| ResourceSpecifier::Topic(&t.name))
            .collect();
        // Partitions are still worth showing when the broker cannot describe configs.
        let (configs, config_error) = if readable.is_empty() {
            (BTreeMap::new(), None)
        } else {
            match self.admin.describe_configs(&readable, &self.opts).await {
                Ok(results) => {
                    let mut by_topic = BTreeMap::new();
                    for (spec, r) in readable.iter().zip(results) {
                        if let (ResourceSpecifier::Topic(t), Ok(res)) = (spec, r) {
                            by_topic.insert(t.to_string(), non_default_configs(&res.entries));
                        }
                    }
                    (by_topic, None)
                }
                Err(e) => (BTreeMap::new(), Some(describe_error(&e))),
            }
        };
        for t in &topics {
            print!(
                "{}",
                format_topic(t, configs.get(&t.name).map(Vec::as_slice))
            );
        }
        if let Some(e) = config_error {
            bail!("describing topic configs: {e}");
        }
        Ok(())
    }

    async fn delete(&self, a: DeleteArgs) -> anyhow::Result<()> {
        check_topic_name(&a.topic)?;
        let results = self
            .admin
            .delete_topics(&[&a.topic], &self.opts)
            .await
            .map_err(|e| anyhow!("deleting topic '{}': {}", a.topic, describe_error(&e)))?;
        for r in results {
            match r {
                Ok(name) => println!("Deleted topic {name}."),
                Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) if a.if_exists => {}
                Err((name, code)) => bail!("deleting topic '{name}': {}", ErrorName(code)),
            }
        }
        Ok(())
    }

    async fn alter_config(&self, a: AlterConfigArgs) -> anyhow::Result<()> {
        check_topic_name(&a.topic)?;
        // DescribeConfigs results carry no per-topic error in rdkafka, so check existence
        // first rather than mistaking a missing topic for one without overrides.
        self.metadata(Some(&a.topic)).await?;
        let spec = ResourceSpecifier::Topic(&a.topic);
        let described = self
            .admin
            .describe_configs([&spec], &self.opts)
            .await
            .map_err(|e| anyhow!("reading configs of '{}': {}", a.topic, describe_error(&e)))?;
        let current = match described.into_iter().next() {
            Some(Ok(res)) => topic_overrides(&res.entries)?,
            Some(Err(code)) => bail!("reading configs of '{}': {}", a.topic, ErrorName(code)),
            None => bail!("reading configs of '{}': empty response", a.topic),
        };
        let add: Vec<Property> = a.add_config.into_iter().flatten().collect();
        let wanted = apply_config_changes(current, &add, &a.delete_config)
            .map_err(|e| anyhow!("topic '{}': {e}", a.topic))?;
        let mut alter = AlterConfig::new(spec);
        for (k, v) in &wanted {
            alter = alter.set(k, v);
        }
        let results = self
            .admin
            .alter_configs([&alter], &self.opts)
            .await
            .map_err(|e| anyhow!("altering configs of '{}': {}", a.topic, describe_error(&e)))?;
        for r in results {
            if let Err((_, code)) = r {
                bail!("altering configs of '{}': {}", a.topic, ErrorName(code));
            }
        }
        println!("Completed updating config for topic {}.", a.topic);
        Ok(())
    }
}

/// What `describe` prints about one topic, detached from rdkafka's borrowed metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicInfo {
    pub name: String,
    pub error: Option<ErrorName>,
    pub partitions: Vec<PartitionInfo>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PartitionInfo {
    pub id: i32,
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub error: Option<ErrorName>,
}

impl From<&MetadataTopic> for TopicInfo {
    fn from(t: &MetadataTopic) -> Self {
        let mut partitions: Vec<PartitionInfo> = t
            .partitions()
            .iter()
            .map(|p| PartitionInfo {
                id: p.id(),
                leader: p.leader(),
                replicas: p.replicas().to_vec(),
                isr: p.isr().to_vec(),
                error: resp_error(p.error()),
            })
            .collect();
        partitions.sort_by_key(|p| p.id);
        Self {
            name: t.name().to_owned(),
            error: resp_error(t.error()),
            partitions,
        }
    }
}

/// Kafka's `--describe` layout: a topic line, then one tab-indented line per partition.
pub fn format_topic(t: &TopicInfo, configs: Option<&[Property]>) -> String {
    let ids = |v: &[i32]| v.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
    if let Some(e) = &t.error {
        return format!("Topic: {}\tError: {e}\n", t.name);
    }
    let rf = t.partitions.first().map_or(0, |p| p.replicas.len());
    let configs = match configs {
        Some(c) => c
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
        None => "?".to_owned(),
    };
    let mut out = format!(
        "Topic: {}\tPartitionCount: {}\tReplicationFactor: {rf}\tConfigs: {configs}\n",
        t.name,
        t.partitions.len()
    );
    for p in &t.partitions {
        let leader = if p.leader < 0 {
            "none".to_owned()
        } else {
            p.leader.to_string()
        };
        out.push_str(&format!(
            "\tTopic: {}\tPartition: {}\tLeader: {leader}\tReplicas: {}\tIsr: {}",
            t.name,
            p.id,
            ids(&p.replicas),
            ids(&p.isr)
        ));
        if let Some(e) = &p.error {
            out.push_str(&format!("\tError: {e}"));
        }
        out.push('\n');
    }
    out
}

/// Configs whose value differs from the default (Kafka's `describe` filter), sorted.
pub fn non_default_configs(entries: &[ConfigEntry]) -> Vec<Property> {
    let mut out: Vec<Property> = entries
        .iter()
        .filter(|e| !e.is_default && e.source != ConfigSource::Default)
        .map(|e| {
            let v = match (&e.value, e.is_sensitive) {
                (_, true) => "<sensitive>".to_owned(),
                (Some(v), false) => v.clone(),
                (None, false) => "null".to_owned(),
            };
            (e.name.clone(), v)
        })
        .collect();
    out.sort();
    out
}

/// The overrides set on the topic itself: what a non-incremental AlterConfigs must resend
/// to keep them. Brokers older than Kafka 1.1 report no source, so fall back to
/// `is_default` there.
pub fn topic_overrides(entries: &[ConfigEntry]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for e in entries {
        let is_override = match e.source {
            ConfigSource::DynamicTopic => true,
            ConfigSource::Unknown => !e.is_default,
            _ => false,
        };
        if !is_override {
            continue;
        }
        match &e.value {
            Some(v) => {
                out.insert(e.name.clone(), v.clone());
            }
            None => bail!(
                "config '{}' is sensitive and its value is hidden, so it cannot be kept \
                 through AlterConfigs; change it with a tool that supports incremental updates",
                e.name
            ),
        }
    }
    Ok(out)
}

/// Applies `--add-config` and `--delete-config` to the current overrides. Deleting a name
/// that is not set is refused (as `kafka-configs.sh` does) since it is usually a typo.
pub fn apply_config_changes(
    mut current: BTreeMap<String, String>,
    add: &[Property],
    delete: &[String],
) -> anyhow::Result<BTreeMap<String, String>> {
    for name in delete {
        let name = name.trim();
        if add.iter().any(|(k, _)| k == name) {
            bail!("'{name}' is both added and deleted");
        }
        if current.remove(name).is_none() {
            let set: Vec<&str> = current.keys().map(String::as_str).collect();
            bail!(
                "cannot delete '{name}': it is not set on the topic (overrides: {})",
                if set.is_empty() {
                    "none".to_owned()
                } else {
                    set.join(", ")
                }
            );
        }
    }
    for (k, v) in add {
        current.insert(k.clone(), v.clone());
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, value: &str, source: ConfigSource, is_default: bool) -> ConfigEntry {
        ConfigEntry {
            name: name.into(),
            value: Some(value.into()),
            source,
            is_read_only: false,
            is_default,
            is_sensitive: false,
        }
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn overrides_are_topic_level_only() {
        let entries = vec![
            entry("retention.ms", "1000", ConfigSource::DynamicTopic, false),
            entry("segment.bytes", "1024", ConfigSource::StaticBroker, false),
            entry("cleanup.policy", "delete", ConfigSource::Default, true),
        ];
        assert_eq!(
            topic_overrides(&entries).unwrap(),
            map(&[("retention.ms", "1000")])
        );
        assert_eq!(
            non_default_configs(&entries),
            vec![
                ("retention.ms".into(), "1000".into()),
                ("segment.bytes".into(), "1024".into())
            ]
        );
    }

    #[test]
    fn hidden_sensitive_override_is_refused() {
        let mut e = entry("secret", "", ConfigSource::DynamicTopic, false);
        e.value = None;
        e.is_sensitive = true;
        assert!(topic_overrides(&[e]).is_err());
    }

    #[test]
    fn add_and_delete_apply_to_current_set() {
        let current = map(&[("retention.ms", "1000"), ("cleanup.policy", "compact")]);
        let add = vec![("retention.ms".to_string(), "2000".to_string())];
        let got = apply_config_changes(current.clone(), &add, &["cleanup.policy".into()]).unwrap();
        assert_eq!(got, map(&[("retention.ms", "2000")]));
        let err = apply_config_changes(current.clone(), &[], &["nope".into()]).unwrap_err();
        assert!(err.to_string().contains("cannot delete 'nope'"), "{err}");
        let err = apply_config_changes(current, &add, &["retention.ms".into()]).unwrap_err();
        assert!(err.to_string().contains("both added and deleted"), "{err}");
    }

    #[test]
    fn describe_layout_matches_kafka() {
        let t = TopicInfo {
            name: "orders".into(),
            error: None,
            partitions: vec![
                PartitionInfo {
                    id: 0,
                    leader: 1,
                    replicas: vec![1, 2],
                    isr: vec![1, 2],
                    error: None,
                },
                PartitionInfo {
                    id: 1,
                    leader: -1,
                    replicas: vec![2, 1],
                    isr: vec![],
                    error: Some(ErrorName(RDKafkaErrorCode::LeaderNotAvailable)),
                },
            ],
        };
        let out = format_topic(&t, Some(&[("retention.ms".into(), "1000".into())]));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "Topic: orders\tPartitionCount: 2\tReplicationFactor: 2\tConfigs: retention.ms=1000"
        );
        assert_eq!(
            lines[1],
            "\tTopic: orders\tPartition: 0\tLeader: 1\tReplicas: 1,2\tIsr: 1,2"
        );
        assert!(
            lines[2].starts_with(
                "\tTopic: orders\tPartition: 1\tLeader: none\tReplicas: 2,1\tIsr: \tError: LEADER_NOT_AVAILABLE (5)"
            ),
            "{}",
            lines[2]
        );
    }
}
