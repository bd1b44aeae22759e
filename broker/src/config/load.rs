//! Reads the node's settings from (lowest to highest precedence) defaults, an optional TOML
//! file, `ISTHMUS_*` environment variables and command-line flags, validates every value and
//! turns them into a typed [`NodeConfig`]. Every error names the setting, where the bad value
//! came from and what would be accepted.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use clap::{Arg, ArgAction, ArgMatches, Command};
use isthmus_controller::Voter;

use super::defs::{broker_setting, env_name, suggest, validate, BROKER_SETTINGS};

/// Where a setting's value came from; DescribeConfigs reports it as `config_source`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Default,
    File(PathBuf),
    Env(String),
    Flag,
    /// Changed at run time through AlterConfigs / IncrementalAlterConfigs.
    Dynamic,
}

impl Source {
    /// Kafka's DescribeConfigs `ConfigSource` for a broker setting.
    pub fn describe_code(&self) -> i8 {
        match self {
            Source::Default => 5,
            Source::File(_) | Source::Env(_) | Source::Flag => 4,
            Source::Dynamic => 3,
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => write!(f, "default"),
            Source::File(p) => write!(f, "config file {}", p.display()),
            Source::Env(v) => write!(f, "environment variable {v}"),
            Source::Flag => write!(f, "command line"),
            Source::Dynamic => write!(f, "dynamic config"),
        }
    }
}

/// Raw, validated setting values by name.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    values: BTreeMap<&'static str, (String, Source)>,
}

impl Settings {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(|(v, _)| v.as_str())
    }

    pub fn source(&self, name: &str) -> Option<&Source> {
        self.values.get(name).map(|(_, s)| s)
    }

    /// Sets a value after validating it against the table.
    pub fn set(&mut self, name: &str, value: &str, source: Source) -> Result<(), String> {
        let setting = broker_setting(name).ok_or_else(|| unknown_setting(name))?;
        validate(&setting.kind, value)
            .map_err(|e| format!("invalid value '{value}' for {name} (from {source}): {e}"))?;
        self.values
            .insert(setting.name, (value.to_string(), source));
        Ok(())
    }

    pub fn bool(&self, name: &str) -> bool {
        self.get(name) == Some("true")
    }

    pub fn i64(&self, name: &str) -> Option<i64> {
        self.get(name).and_then(|v| v.trim().parse().ok())
    }

    fn defaults() -> Settings {
        let mut s = Settings::default();
        for setting in BROKER_SETTINGS {
            if let Some(d) = setting.default {
                s.values
                    .insert(setting.name, (d.to_string(), Source::Default));
            }
        }
        s
    }
}

fn unknown_setting(name: &str) -> String {
    match suggest(name) {
        Some(s) => format!("unknown setting '{name}'; did you mean '{s}'?"),
        None => format!("unknown setting '{name}'; see the configuration table in README.md"),
    }
}

/// One listener, as `NAME://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub name: String,
    pub host: String,
    pub port: u16,
}

impl Listener {
    /// A client listener (`PLAINTEXT://host:port`).
    pub fn parse(text: &str) -> Result<Listener, String> {
        Self::parse_with(text, &[])
    }

    /// A client listener, or one whose name is in `controller_names`.
    pub fn parse_with(text: &str, controller_names: &[String]) -> Result<Listener, String> {
        let (name, rest) = text
            .split_once("://")
            .ok_or_else(|| format!("listener '{text}' must look like PLAINTEXT://host:port"))?;
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| format!("listener '{text}' has no port; write PLAINTEXT://host:port"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| format!("listener '{text}' has an invalid port '{port}'"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if name != "PLAINTEXT" && !controller_names.iter().any(|c| c == name) {
            return Err(format!(
                "listener '{text}': only PLAINTEXT listeners are implemented so far (TLS and SASL come later)"
            ));
        }
        Ok(Listener {
            name: name.to_string(),
            host: host.to_string(),
            port,
        })
    }

    /// The address to bind: an empty host means every interface.
    pub fn bind_address(&self) -> String {
        let host = if self.host.is_empty() {
            "0.0.0.0"
        } else {
            &self.host
        };
        if host.contains(':') {
            format!("[{host}]:{}", self.port)
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// What a node runs (`process.roles`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    pub broker: bool,
    pub controller: bool,
}

/// The node's typed configuration (fixed for the life of the process) plus the raw settings,
/// whose dynamic ones the broker may change at run time.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub node_id: i32,
    pub rack: Option<String>,
    /// `process.roles`.
    pub roles: Roles,
    /// `controller.quorum.voters` (or its default: this node at the controller listener).
    pub voters: Vec<Voter>,
    /// The listener of `listeners` named in `controller.listener.names`. `None` only for a
    /// quorum of this node alone, whose controller has no peers to listen for.
    pub controller_listener: Option<Listener>,
    /// `metadata.log.dir` when set.
    pub metadata_log_dir: Option<PathBuf>,
    /// Client listeners (the controller listener is not among them).
    pub listeners: Vec<Listener>,
    pub advertised_listeners: Option<Vec<Listener>>,
    pub log_dirs: Vec<PathBuf>,
    pub auto_create_topics: bool,
    pub delete_topic_enable: bool,
    pub max_frame_bytes: usize,
    pub retention_check_interval_ms: u64,
    pub connections_max_idle_ms: u64,
    pub settings: Settings,
}

impl NodeConfig {
    /// Builds the typed view, checking what single values cannot (list shapes, combinations).
    pub fn from_settings(settings: Settings) -> Result<NodeConfig, String> {
        let list = |name: &str| -> Vec<String> {
            settings
                .get(name)
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        };
        let controller_names = list("controller.listener.names");
        if controller_names.iter().any(|n| n == "PLAINTEXT") {
            return Err("controller.listener.names names PLAINTEXT, the client listener; give the controller listener its own name, e.g. CONTROLLER".into());
        }
        let all_listeners: Vec<Listener> = list("listeners")
            .iter()
            .map(|l| Listener::parse_with(l, &controller_names))
            .collect::<Result<_, _>>()
            .map_err(|e| {
                format!(
                    "listeners (from {}): {e}",
                    settings.source("listeners").unwrap_or(&Source::Default)
                )
            })?;
        let (controller_listeners, listeners): (Vec<Listener>, Vec<Listener>) = all_listeners
            .into_iter()
            .partition(|l| controller_names.contains(&l.name));
        let node_id = settings.i64("node.id").unwrap_or_default() as i32;
        let roles = parse_roles(settings.get("process.roles").unwrap_or("broker,controller"));
        if roles.broker && listeners.is_empty() {
            return Err(
                "listeners has no client listener; set at least one, e.g. PLAINTEXT://127.0.0.1:9092".into(),
            );
        }
        if !roles.broker && !listeners.is_empty() {
            return Err(format!(
                "listeners has client listeners ({}) but process.roles=controller serves no clients; list only the controller listener (e.g. CONTROLLER://127.0.0.1:9093)",
                listeners.iter().map(|l| format!("{}://{}:{}", l.name, l.host, l.port)).collect::<Vec<_>>().join(", ")
            ));
        }
        let (controller_listener, voters) =
            controller_setup(&settings, node_id, roles, controller_listeners, &listeners)?;
        let session_ms = settings.i64("broker.session.timeout.ms").unwrap_or(9000);
        let heartbeat_ms = settings.i64("broker.heartbeat.interval.ms").unwrap_or(2000);
        if heartbeat_ms >= session_ms {
            return Err(format!(
                "broker.heartbeat.interval.ms {heartbeat_ms} must be below broker.session.timeout.ms {session_ms}, or brokers are fenced between heartbeats"
            ));
        }
        let lag_max_ms = settings.i64("replica.lag.time.max.ms").unwrap_or(30_000);
        let fetch_wait_ms = settings.i64("replica.fetch.wait.max.ms").unwrap_or(500);
        if fetch_wait_ms >= lag_max_ms {
            return Err(format!(
                "replica.fetch.wait.max.ms {fetch_wait_ms} must be below replica.lag.time.max.ms {lag_max_ms}, or idle followers leave the ISR"
            ));
        }
        let advertised_listeners = if settings.get("advertised.listeners").is_some() {
            let adv: Vec<Listener> = list("advertised.listeners")
                .iter()
                .map(|l| Listener::parse_with(l, &controller_names))
                .collect::<Result<_, _>>()
                .map_err(|e| format!("advertised.listeners: {e}"))?;
            if let Some(c) = adv.iter().find(|a| controller_names.contains(&a.name)) {
                return Err(format!(
                    "advertised.listeners names the controller listener {}; clients cannot use it, list only client listeners (PLAINTEXT)",
                    c.name
                ));
            }
            for a in &adv {
                if a.host.is_empty() || a.host == "0.0.0.0" || a.host == "::" {
                    return Err(format!(
                        "advertised.listeners: '{}://{}:{}' is not an address clients can connect to; give a host name or IP",
                        a.name, a.host, a.port
                    ));
                }
            }
            Some(adv)
        } else {
            None
        };
        let log_dirs: Vec<PathBuf> = list("log.dirs").into_iter().map(PathBuf::from).collect();
        if log_dirs.is_empty() {
            return Err("log.dirs is empty; give at least one directory".into());
        }
        for (i, dir) in log_dirs.iter().enumerate() {
            if log_dirs[..i].contains(dir) {
                return Err(format!(
                    "log.dirs lists {} twice; give each directory once",
                    dir.display()
                ));
            }
        }
        crate::group::assignor::Assignor::parse_list(
            settings.get("group.consumer.assignors").unwrap_or(""),
        )
        .map_err(|e| format!("group.consumer.assignors: {e}"))?;
        let metadata_log_dir = settings
            .get("metadata.log.dir")
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(PathBuf::from);
        let number = |name: &str| settings.i64(name).unwrap_or_default();
        Ok(NodeConfig {
            node_id,
            rack: settings
                .get("broker.rack")
                .filter(|r| !r.is_empty())
                .map(String::from),
            roles,
            voters,
            controller_listener,
            metadata_log_dir,
            listeners,
            advertised_listeners,
            log_dirs,
            auto_create_topics: settings.bool("auto.create.topics.enable"),
            delete_topic_enable: settings.bool("delete.topic.enable"),
            max_frame_bytes: number("socket.request.max.bytes") as usize,
            retention_check_interval_ms: number("log.retention.check.interval.ms") as u64,
            connections_max_idle_ms: number("connections.max.idle.ms") as u64,
            settings,
        })
    }
}

fn parse_roles(value: &str) -> Roles {
    let has = |role: &str| value.split(',').any(|r| r.trim() == role);
    Roles {
        broker: has("broker"),
        controller: has("controller"),
    }
}

/// Checks the controller listener against `controller.quorum.voters` and returns both (the
/// voters defaulting to this node alone at the controller listener).
fn controller_setup(
    settings: &Settings,
    node_id: i32,
    roles: Roles,
    mut controller_listeners: Vec<Listener>,
    client_listeners: &[Listener],
) -> Result<(Option<Listener>, Vec<Voter>), String> {
    if !roles.controller {
        return broker_only_setup(settings, node_id, controller_listeners);
    }
    if controller_listeners.len() > 1 {
        return Err(format!(
            "listeners has {} controller listeners ({}); give exactly one listener named in controller.listener.names",
            controller_listeners.len(),
            controller_listeners
                .iter()
                .map(|l| format!("{}://{}:{}", l.name, l.host, l.port))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let controller_listener = controller_listeners.pop();
    if let Some(c) = &controller_listener {
        if let Some(clash) = client_listeners
            .iter()
            .find(|l| l.port == c.port && c.port != 0)
        {
            return Err(format!(
                "listeners: the controller listener {}://{}:{} and the client listener {}://{}:{} use the same port; give the controller its own port (e.g. 9093)",
                c.name, c.host, c.port, clash.name, clash.host, clash.port
            ));
        }
    }
    let voters = match settings.get("controller.quorum.voters").map(str::trim) {
        Some(text) if !text.is_empty() => isthmus_controller::parse_voters(text).map_err(|e| {
            format!(
                "controller.quorum.voters (from {}): {e}",
                settings
                    .source("controller.quorum.voters")
                    .unwrap_or(&Source::Default)
            )
        })?,
        _ => {
            let (host, port) = match &controller_listener {
                Some(c) if c.port != 0 => {
                    let host = if c.host.is_empty() || c.host == "0.0.0.0" || c.host == "::" {
                        "127.0.0.1".to_string()
                    } else {
                        c.host.clone()
                    };
                    (host, c.port)
                }
                _ => ("127.0.0.1".to_string(), DEFAULT_CONTROLLER_PORT),
            };
            vec![Voter {
                id: node_id as u64,
                host,
                port,
            }]
        }
    };
    let Some(me) = voters.iter().find(|v| v.id == node_id as u64) else {
        return Err(format!(
            "node.id {node_id} is not among controller.quorum.voters `{}`; with a controller in process.roles this node must be a voter: add {node_id}@host:port",
            voters.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(",")
        ));
    };
    if voters.len() > 1 && controller_listener.is_none() {
        return Err(format!(
            "controller.quorum.voters names {} voters but listeners has no controller listener for the others to reach this node; add one, e.g. CONTROLLER://{}:{}",
            voters.len(),
            me.host,
            me.port
        ));
    }
    if let Some(c) = &controller_listener {
        if c.port != 0 && c.port != me.port {
            return Err(format!(
                "controller.quorum.voters puts node {node_id} at {} but the controller listener {}://{}:{} binds port {}; make the two ports agree",
                me.addr(),
                c.name,
                c.host,
                c.port,
                c.port
            ));
        }
    }
    Ok((controller_listener, voters))
}

/// `process.roles=broker`: no controller listener of its own, and voters it reaches but is
/// not one of.
fn broker_only_setup(
    settings: &Settings,
    node_id: i32,
    controller_listeners: Vec<Listener>,
) -> Result<(Option<Listener>, Vec<Voter>), String> {
    if let Some(c) = controller_listeners.first() {
        return Err(format!(
            "listeners has the controller listener {}://{}:{} but process.roles=broker runs no controller; remove it from listeners",
            c.name, c.host, c.port
        ));
    }
    let text = settings
        .get("controller.quorum.voters")
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or("process.roles=broker needs controller.quorum.voters (id@host:port of every controller) to find the metadata quorum")?;
    let voters = isthmus_controller::parse_voters(text)
        .map_err(|e| format!("controller.quorum.voters: {e}"))?;
    if voters.iter().any(|v| v.id == node_id as u64) {
        return Err(format!(
            "node.id {node_id} is listed in controller.quorum.voters but process.roles=broker runs no controller; give the broker its own id or add controller to process.roles"
        ));
    }
    Ok((None, voters))
}

/// The controller port of the default voter list (KRaft's usual one).
pub const DEFAULT_CONTROLLER_PORT: u16 = 9093;

/// The command line: `--config FILE` plus one `--<kafka.name> VALUE` flag per setting, each
/// also readable from its `ISTHMUS_*` variable.
pub fn command() -> Command {
    let mut cmd = Command::new("isthmus")
        .about("Isthmus: a Kafka-compatible broker for stretch clusters")
        .long_about(
            "Isthmus: a Kafka-compatible broker for stretch clusters.\n\n\
             With no arguments it runs one node on 127.0.0.1:9092 with data under ./data.\n\
             Every setting can be given as a flag (--log.dirs /var/lib/isthmus), as an\n\
             environment variable (ISTHMUS_LOG_DIRS) or in a TOML file (--config isthmus.toml,\n\
             `\"log.dirs\" = \"/var/lib/isthmus\"`); flags win over variables, variables over the file.",
        )
        .version(env!("CARGO_PKG_VERSION"))
        .arg(
            Arg::new("config")
                .long("config")
                .env("ISTHMUS_CONFIG")
                .value_name("FILE")
                .global(true)
                .help("TOML file with settings by their Kafka names"),
        )
        .subcommand(
            Command::new("format")
                .about("Initialise the metadata directory and the log dirs of a node (refuses a non-empty metadata directory)")
                .arg(
                    Arg::new("cluster-id")
                        .long("cluster-id")
                        .value_name("ID")
                        .required(true)
                        .help("The cluster id, e.g. from `isthmus random-uuid`"),
                ),
        )
        .subcommand(
            Command::new("random-uuid")
                .about("Print a new random cluster id (a UUID in URL-safe base64, as Kafka's)"),
        );
    for setting in BROKER_SETTINGS {
        let help = match setting.default {
            Some(d) => format!("{} [default: {d}]", setting.doc),
            None => setting.doc.to_string(),
        };
        cmd = cmd.arg(
            Arg::new(setting.name)
                .long(setting.name)
                .value_name("VALUE")
                .action(ArgAction::Set)
                .global(true)
                .help(help),
        );
    }
    cmd
}

/// Resolves settings from parsed flags, the environment and the optional file.
pub fn load(
    matches: &ArgMatches,
    env: impl Fn(&str) -> Option<String>,
) -> Result<NodeConfig, String> {
    let mut settings = Settings::defaults();
    if let Some(path) = matches.get_one::<String>("config") {
        load_file(&mut settings, Path::new(path))?;
    }
    for setting in BROKER_SETTINGS {
        let var = env_name(setting.name);
        if let Some(value) = env(&var) {
            settings.set(setting.name, &value, Source::Env(var))?;
        }
    }
    for setting in BROKER_SETTINGS {
        if let Some(value) = matches.get_one::<String>(setting.name) {
            settings.set(setting.name, value, Source::Flag)?;
        }
    }
    NodeConfig::from_settings(settings)
}

fn load_file(settings: &mut Settings, path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
    let table: toml::Table = toml::from_str(&text)
        .map_err(|e| format!("config file {} is not valid TOML: {e}", path.display()))?;
    let mut flat = Vec::new();
    flatten("", &toml::Value::Table(table), &mut flat)
        .map_err(|e| format!("config file {}: {e}", path.display()))?;
    for (name, value) in flat {
        settings
            .set(&name, &value, Source::File(path.to_path_buf()))
            .map_err(|e| format!("config file {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Nested tables become dotted names (`[log] dirs = …` is `log.dirs`); arrays become
/// comma-separated lists.
fn flatten(
    prefix: &str,
    value: &toml::Value,
    out: &mut Vec<(String, String)>,
) -> Result<(), String> {
    let scalar = |v: &toml::Value| -> Result<String, String> {
        match v {
            toml::Value::String(s) => Ok(s.clone()),
            toml::Value::Integer(i) => Ok(i.to_string()),
            toml::Value::Boolean(b) => Ok(b.to_string()),
            toml::Value::Float(f) => Ok(f.to_string()),
            other => Err(format!("'{prefix}' has an unsupported value {other}")),
        }
    };
    match value {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let name = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&name, v, out)?;
            }
            Ok(())
        }
        toml::Value::Array(items) => {
            let parts: Result<Vec<String>, String> = items.iter().map(scalar).collect();
            out.push((prefix.to_string(), parts?.join(",")));
            Ok(())
        }
        v => {
            out.push((prefix.to_string(), scalar(v)?));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_args(args: &[&str], env: &[(&str, &str)]) -> Result<NodeConfig, String> {
        let mut argv = vec!["isthmus"];
        argv.extend_from_slice(args);
        let matches = command()
            .try_get_matches_from(argv)
            .map_err(|e| e.to_string())?;
        let env: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        load(&matches, |k| env.get(k).cloned())
    }

    #[test]
    fn no_arguments_gives_the_single_node_defaults() {
        let c = load_args(&[], &[]).unwrap();
        assert_eq!(c.node_id, 1);
        assert_eq!(
            c.listeners,
            vec![Listener {
                name: "PLAINTEXT".into(),
                host: "127.0.0.1".into(),
                port: 9092
            }]
        );
        assert_eq!(c.log_dirs, vec![PathBuf::from("./data")]);
        assert_eq!(
            c.roles,
            Roles {
                broker: true,
                controller: true
            }
        );
        assert_eq!(
            c.controller_listener,
            Some(Listener {
                name: "CONTROLLER".into(),
                host: "127.0.0.1".into(),
                port: 9093
            })
        );
        assert_eq!(
            c.voters,
            isthmus_controller::parse_voters("1@127.0.0.1:9093").unwrap()
        );
        assert_eq!(c.metadata_log_dir, None);
        assert!(c.auto_create_topics);
        assert_eq!(c.settings.get("log.segment.bytes"), Some("1073741824"));
        assert_eq!(
            c.settings.source("log.segment.bytes"),
            Some(&Source::Default)
        );
    }

    #[test]
    fn flags_beat_environment_beats_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("isthmus.toml");
        std::fs::write(
            &file,
            "\"num.partitions\" = 3\n[log]\ndirs = [\"/a\", \"/b\"]\nsegment.bytes = 1000\n",
        )
        .unwrap();
        let c = load_args(
            &["--config", file.to_str().unwrap(), "--num.partitions", "7"],
            &[
                ("ISTHMUS_NUM_PARTITIONS", "5"),
                ("ISTHMUS_LOG_SEGMENT_BYTES", "2000"),
            ],
        )
        .unwrap();
        assert_eq!(c.settings.get("num.partitions"), Some("7"));
        assert_eq!(c.settings.get("log.segment.bytes"), Some("2000"));
        assert_eq!(c.log_dirs, vec![PathBuf::from("/a"), PathBuf::from("/b")]);
    }

    #[test]
    fn bad_values_say_what_to_change() {
        let e = load_args(&["--log.segment.bytes", "abc"], &[]).unwrap_err();
        assert!(
            e.contains("log.segment.bytes") && e.contains("integer"),
            "{e}"
        );
        let e = load_args(&[], &[("ISTHMUS_AUTO_CREATE_TOPICS_ENABLE", "yes")]).unwrap_err();
        assert!(
            e.contains("ISTHMUS_AUTO_CREATE_TOPICS_ENABLE") && e.contains("true or false"),
            "{e}"
        );
        let e = load_args(&["--listeners", "SSL://127.0.0.1:9093"], &[]).unwrap_err();
        assert!(e.contains("only PLAINTEXT"), "{e}");
        let e = load_args(&["--listeners", "PLAINTEXT://127.0.0.1"], &[]).unwrap_err();
        assert!(e.contains("no port"), "{e}");
        let e =
            load_args(&["--advertised.listeners", "PLAINTEXT://0.0.0.0:9092"], &[]).unwrap_err();
        assert!(e.contains("not an address clients can connect to"), "{e}");
    }

    #[test]
    fn quorum_settings_are_checked_together() {
        // Voters default to this node at its controller listener; without one (a quorum of
        // this node alone) the controller needs no listener.
        let c = load_args(
            &[
                "--node.id",
                "4",
                "--listeners",
                "PLAINTEXT://:9192,CONTROLLER://:9193",
            ],
            &[],
        )
        .unwrap();
        assert_eq!(
            c.voters,
            isthmus_controller::parse_voters("4@127.0.0.1:9193").unwrap()
        );
        assert_eq!(c.listeners.len(), 1);
        let c = load_args(&["--listeners", "PLAINTEXT://127.0.0.1:0"], &[]).unwrap();
        assert_eq!(c.controller_listener, None);
        let c = load_args(
            &[
                "--controller.listener.names",
                "QUORUM",
                "--listeners",
                "PLAINTEXT://127.0.0.1:9092,QUORUM://127.0.0.1:9500",
                "--metadata.log.dir",
                "/meta",
            ],
            &[],
        )
        .unwrap();
        assert_eq!(c.controller_listener.unwrap().port, 9500);
        assert_eq!(c.metadata_log_dir, Some(PathBuf::from("/meta")));

        let refused: &[(&[&str], &[&str])] = &[
            (
                &["--process.roles", "broker"],
                &["process.roles=broker", "controller listener"],
            ),
            (
                &[
                    "--process.roles",
                    "broker",
                    "--listeners",
                    "PLAINTEXT://127.0.0.1:9092",
                ],
                &["process.roles=broker needs controller.quorum.voters"],
            ),
            (
                &[
                    "--process.roles",
                    "broker",
                    "--listeners",
                    "PLAINTEXT://127.0.0.1:9092",
                    "--controller.quorum.voters",
                    "1@127.0.0.1:9093",
                ],
                &["node.id 1 is listed in controller.quorum.voters", "own id"],
            ),
            (
                &["--process.roles", "controller"],
                &["process.roles=controller serves no clients"],
            ),
            (
                &[
                    "--broker.heartbeat.interval.ms",
                    "9000",
                    "--broker.session.timeout.ms",
                    "9000",
                ],
                &["must be below broker.session.timeout.ms"],
            ),
            (
                &[
                    "--replica.fetch.wait.max.ms",
                    "30000",
                    "--replica.lag.time.max.ms",
                    "30000",
                ],
                &["must be below replica.lag.time.max.ms"],
            ),
            (
                &["--replica.selector.class", "com.example.Nearest"],
                &["replica.selector.class", "RackAwareReplicaSelector"],
            ),
            (&["--process.roles", "witness"], &["process.roles", "broker,controller"]),
            (
                &["--controller.quorum.voters", "2@127.0.0.1:9093"],
                &["node.id 1 is not among controller.quorum.voters", "add 1@host:port"],
            ),
            (
                &["--controller.quorum.voters", "1@127.0.0.1"],
                &["controller.quorum.voters", "id@host:port"],
            ),
            (
                &["--controller.quorum.voters", "1@127.0.0.1:9300"],
                &["127.0.0.1:9300", "binds port 9093", "make the two ports agree"],
            ),
            (
                &["--listeners", "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9092"],
                &["same port"],
            ),
            (
                &[
                    "--listeners",
                    "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093,CONTROLLER://127.0.0.1:9094",
                ],
                &["2 controller listeners"],
            ),
            (&["--listeners", "CONTROLLER://127.0.0.1:9093"], &["no client listener"]),
            (
                &["--controller.listener.names", "PLAINTEXT"],
                &["controller.listener.names", "own name"],
            ),
            (
                &["--advertised.listeners", "CONTROLLER://10.0.0.1:9093"],
                &["advertised.listeners", "controller listener"],
            ),
        ];
        for (args, needles) in refused {
            let e = load_args(args, &[]).unwrap_err();
            for n in *needles {
                assert!(e.contains(n), "{args:?}: {e:?} lacks {n:?}");
            }
        }
    }

    #[test]
    fn format_and_random_uuid_subcommands_take_the_settings_flags() {
        let m = command()
            .try_get_matches_from([
                "isthmus",
                "format",
                "--cluster-id",
                "abc",
                "--log.dirs",
                "/d",
            ])
            .unwrap();
        let (name, sub) = m.subcommand().unwrap();
        assert_eq!(name, "format");
        assert_eq!(sub.get_one::<String>("cluster-id").unwrap(), "abc");
        let c = load(sub, |_| None).unwrap();
        assert_eq!(c.log_dirs, vec![PathBuf::from("/d")]);
        assert!(command()
            .try_get_matches_from(["isthmus", "format"])
            .unwrap_err()
            .to_string()
            .contains("--cluster-id"));
        assert!(command()
            .try_get_matches_from(["isthmus", "random-uuid"])
            .is_ok());
    }

    #[test]
    fn unknown_file_keys_get_a_suggestion() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("isthmus.toml");
        std::fs::write(&file, "\"log.segmnt.bytes\" = 1000\n").unwrap();
        let e = load_args(&["--config", file.to_str().unwrap()], &[]).unwrap_err();
        assert!(e.contains("did you mean 'log.segment.bytes'"), "{e}");
    }
}
