//! Shared librdkafka configuration: connection flags, `KEY=VALUE` parsing, and the
//! layering rule every subcommand follows (built-in defaults, then `--command-config`,
//! then per-tool properties, then dedicated flags such as `--acks`; later layers win).

use std::fmt;
use std::time::Duration;

use anyhow::bail;
use clap::ValueEnum;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::metadata::Metadata;
use rdkafka::types::RDKafkaRespErr;

/// One `KEY=VALUE` librdkafka property.
pub type Property = (String, String);

/// Connection settings shared by every subcommand.
#[derive(Debug, Clone)]
pub struct ClientOpts {
    pub bootstrap: String,
    /// User properties from `--command-config`, in the order given.
    pub command_config: Vec<Property>,
    /// Bounds every admin request and metadata fetch.
    pub request_timeout: Duration,
}

/// A command's outcome that is not success and has already been reported: `isthmusctl`
/// exits with this code and prints nothing more (e.g. `reassign verify`'s "in progress").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit(pub u8);

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "exit code {}", self.0)
    }
}

impl std::error::Error for Exit {}

impl ClientOpts {
    /// Builds a librdkafka config: `bootstrap.servers`, then `defaults`, then the user's
    /// `--command-config`, then each of `layers` in order. A key set twice keeps the last value.
    pub fn config(&self, defaults: &[(&str, &str)], layers: &[&[Property]]) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap);
        for (k, v) in defaults {
            config.set(*k, *v);
        }
        for (k, v) in self
            .command_config
            .iter()
            .chain(layers.iter().copied().flatten())
        {
            config.set(k, v);
        }
        config
    }
}

/// Group id for assign-mode consumers. librdkafka refuses `assign` without a group id,
/// but in assign mode nothing joins the group or commits to it: it is only a label
/// (grant it Describe if the cluster enforces group ACLs).
pub const ASSIGN_GROUP_ID: &str = "isthmusctl-assign";

/// Consumer defaults: `group` subscribes and commits; `None` means assign mode, which
/// commits nothing. Consumers never auto-create a topic they merely read.
pub fn consumer_defaults<'a>(
    group: Option<&'a str>,
    offset_reset: &'a str,
) -> Vec<(&'a str, &'a str)> {
    let mut defaults = vec![
        ("auto.offset.reset", offset_reset),
        ("allow.auto.create.topics", "false"),
    ];
    match group {
        Some(g) => defaults.push(("group.id", g)),
        None => defaults.extend([
            ("group.id", ASSIGN_GROUP_ID),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
        ]),
    }
    defaults
}

/// Parses one `KEY=VALUE` argument; the value may itself contain `=` (e.g. SASL JAAS strings).
pub fn parse_property(arg: &str) -> Result<Property, String> {
    match arg.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got '{arg}'")),
    }
}

/// Parses `k=v[,k=v...]`, the form Kafka's `--add-config` takes. A comma inside a value
/// can be kept by wrapping the value in square brackets, as Kafka allows
/// (`follower.replication.throttled.replicas=[0:1,1:2]`).
pub fn parse_property_list(arg: &str) -> Result<Vec<Property>, String> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in arg.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                out.push(&arg[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&arg[start..]);
    out.into_iter()
        .filter(|s| !s.is_empty())
        .map(|s| {
            let (k, v) = parse_property(s)?;
            let v = v
                .strip_prefix('[')
                .and_then(|v| v.strip_suffix(']'))
                .map_or(v.clone(), str::to_owned);
            Ok((k, v))
        })
        .collect()
}

/// Producer `acks`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Acks {
    /// Wait for all in-sync replicas (`-1`).
    #[value(name = "all", alias = "-1")]
    All,
    /// Wait for the leader only.
    #[value(name = "1")]
    One,
    /// Do not wait for any acknowledgement.
    #[value(name = "0")]
    Zero,
}

impl Acks {
    pub fn as_config(self) -> &'static str {
        match self {
            Acks::All => "all",
            Acks::One => "1",
            Acks::Zero => "0",
        }
    }
}

/// Producer `compression.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    pub fn as_config(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// A Kafka error as operators know it: protocol name, numeric code, description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorName(pub RDKafkaErrorCode);

impl fmt::Display for ErrorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = self.0;
        // rdkafka displays "Variant (description)"; keep only the description.
        let full = code.to_string();
        let variant = format!("{code:?}");
        let desc = full
            .strip_prefix(&variant)
            .map(|d| d.trim().trim_start_matches('(').trim_end_matches(')'))
            .unwrap_or(&full);
        let number = code as i32;
        if number >= 0 {
            write!(f, "{} ({number}): {desc}", screaming_snake(&variant))
        } else {
            // Negative codes are librdkafka-local (timeouts, transport), not broker errors.
            write!(f, "{desc}")?;
            match code {
                RDKafkaErrorCode::OperationTimedOut => write!(
                    f,
                    " (no answer within --request-timeout-ms: is the broker up, \
                     and does it support this request?)"
                ),
                RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::Resolve
                | RDKafkaErrorCode::BrokerTransportFailure => {
                    write!(f, " (is --bootstrap-server right and the broker up?)")
                }
                _ => Ok(()),
            }
        }
    }
}

/// Formats any rdkafka error, naming the Kafka error code when there is one.
pub fn describe_error(err: &KafkaError) -> String {
    let code = match err {
        // rdkafka does not expose the code of a failed admin request; we want its name.
        KafkaError::AdminOp(code) => Some(*code),
        other => other.rdkafka_error_code(),
    };
    match code {
        Some(code) => ErrorName(code).to_string(),
        None => err.to_string(),
    }
}

/// Turns a broker error from metadata into a message, or `None` for "no error".
pub fn resp_error(err: Option<RDKafkaRespErr>) -> Option<ErrorName> {
    err.map(|e| ErrorName(e.into()))
}

/// `UnknownTopicOrPartition` → `UNKNOWN_TOPIC_OR_PARTITION`, the name Kafka's tools print.
pub(crate) fn screaming_snake(camel: &str) -> String {
    let chars: Vec<char> = camel.chars().collect();
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() && i > 0 {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            if prev.is_lowercase() || prev.is_ascii_digit() || (prev.is_uppercase() && next_lower) {
                out.push('_');
            }
        }
        out.extend(c.to_uppercase());
    }
    out
}

/// Fetches metadata for one topic and returns its partition ids, failing with the broker's
/// error name if the topic is missing or unreadable.
pub fn topic_partitions(metadata: &Metadata, topic: &str) -> anyhow::Result<Vec<i32>> {
    let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else {
        bail!("topic '{topic}' not found in cluster metadata");
    };
    if let Some(err) = resp_error(t.error()) {
        bail!("topic '{topic}': {err}");
    }
    if t.partitions().is_empty() {
        bail!("topic '{topic}' has no partitions (it may still be being created)");
    }
    let mut ids: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
    ids.sort_unstable();
    Ok(ids)
}

/// Parses a bool flag value the way Kafka properties spell it.
pub fn parse_bool(arg: &str) -> Result<bool, String> {
    match arg.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("expected true or false, got '{arg}'")),
    }
}

/// Validates a topic name with Kafka's rules so typos fail before reaching the broker.
pub fn check_topic_name(topic: &str) -> anyhow::Result<()> {
    const TOPIC_NAME_LEN_MAX: usize = 249;
    if topic.is_empty() || topic == "." || topic == ".." {
        bail!("invalid topic name '{topic}'");
    }
    if topic.len() > TOPIC_NAME_LEN_MAX {
        bail!(
            "topic name is {} characters long; the limit is {TOPIC_NAME_LEN_MAX}",
            topic.len()
        );
    }
    if let Some(c) = topic
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        bail!("invalid character {c:?} in topic name '{topic}' (allowed: a-z A-Z 0-9 . _ -)");
    }
    Ok(())
}

/// Reads cluster metadata for one topic (or all topics), bounded by `timeout`.
pub fn fetch_metadata<C: rdkafka::client::ClientContext>(
    client: &rdkafka::client::Client<C>,
    topic: Option<&str>,
    timeout: Duration,
) -> anyhow::Result<Metadata> {
    client
        .fetch_metadata(topic, timeout)
        .map_err(|e| anyhow::anyhow!("fetching metadata: {}", describe_error(&e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(extra: &[(&str, &str)]) -> ClientOpts {
        ClientOpts {
            bootstrap: "b:9092".into(),
            command_config: extra
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            request_timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn property_parsing() {
        assert_eq!(parse_property("a=b").unwrap(), ("a".into(), "b".into()));
        assert_eq!(
            parse_property("sasl.jaas=x=y;z").unwrap(),
            ("sasl.jaas".into(), "x=y;z".into())
        );
        assert_eq!(
            parse_property("empty=").unwrap(),
            ("empty".into(), "".into())
        );
        assert!(parse_property("novalue").is_err());
        assert!(parse_property("=v").is_err());
    }

    #[test]
    fn property_list_parsing() {
        let got = parse_property_list("retention.ms=1000,cleanup.policy=compact").unwrap();
        assert_eq!(
            got,
            vec![
                ("retention.ms".into(), "1000".into()),
                ("cleanup.policy".into(), "compact".into())
            ]
        );
        let got = parse_property_list("x=[0:1,1:2],y=3").unwrap();
        assert_eq!(
            got,
            vec![("x".into(), "0:1,1:2".into()), ("y".into(), "3".into())]
        );
        assert!(parse_property_list("a=1,oops").is_err());
    }

    #[test]
    fn layers_apply_in_order() {
        let o = opts(&[("acks", "1"), ("client.id", "mine")]);
        let tool: Vec<Property> = vec![("acks".into(), "0".into())];
        let flags: Vec<Property> = vec![("linger.ms".into(), "7".into())];
        let c = o.config(&[("acks", "all"), ("linger.ms", "5")], &[&tool, &flags]);
        assert_eq!(c.get("bootstrap.servers"), Some("b:9092"));
        assert_eq!(
            c.get("acks"),
            Some("0"),
            "tool layer beats --command-config"
        );
        assert_eq!(c.get("client.id"), Some("mine"));
        assert_eq!(c.get("linger.ms"), Some("7"), "flags beat defaults");
    }

    #[test]
    fn command_config_overrides_defaults() {
        let o = opts(&[("allow.auto.create.topics", "true")]);
        let c = o.config(&[("allow.auto.create.topics", "false")], &[]);
        assert_eq!(c.get("allow.auto.create.topics"), Some("true"));
    }

    #[test]
    fn assign_mode_never_commits() {
        let c = opts(&[]).config(&consumer_defaults(None, "earliest"), &[]);
        assert_eq!(c.get("enable.auto.commit"), Some("false"));
        assert_eq!(c.get("group.id"), Some(ASSIGN_GROUP_ID));
        assert_eq!(c.get("auto.offset.reset"), Some("earliest"));
        let c = opts(&[]).config(&consumer_defaults(Some("g"), "latest"), &[]);
        assert_eq!(c.get("group.id"), Some("g"));
        assert_eq!(
            c.get("enable.auto.commit"),
            None,
            "librdkafka's default: commit"
        );
    }

    #[test]
    fn error_names_match_kafka() {
        assert_eq!(
            screaming_snake("TopicAlreadyExists"),
            "TOPIC_ALREADY_EXISTS"
        );
        assert_eq!(
            screaming_snake("UnknownTopicOrPartition"),
            "UNKNOWN_TOPIC_OR_PARTITION"
        );
        assert_eq!(
            screaming_snake("SASLAuthenticationFailed"),
            "SASL_AUTHENTICATION_FAILED"
        );
        let shown = ErrorName(RDKafkaErrorCode::TopicAlreadyExists).to_string();
        assert!(shown.starts_with("TOPIC_ALREADY_EXISTS (36): "), "{shown}");
        assert!(!shown.contains("TopicAlreadyExists"), "{shown}");
    }

    #[test]
    fn enums_map_to_librdkafka_values() {
        assert_eq!(Acks::from_str("-1", false).unwrap(), Acks::All);
        assert_eq!(Acks::from_str("1", false).unwrap().as_config(), "1");
        assert_eq!(Compression::Zstd.as_config(), "zstd");
        assert!(parse_bool("TRUE").unwrap());
        assert!(parse_bool("yes").is_err());
    }

    #[test]
    fn topic_names() {
        assert!(check_topic_name("orders.v1_eu-west").is_ok());
        assert!(check_topic_name("").is_err());
        assert!(check_topic_name("..").is_err());
        assert!(check_topic_name("a b").is_err());
        assert!(check_topic_name(&"x".repeat(250)).is_err());
    }
}
