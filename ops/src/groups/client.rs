//! A small Kafka client on the `kafka-protocol` crate for the admin requests that
//! librdkafka's safe API lacks: the group ones (DescribeGroups with member assignments,
//! OffsetFetch and OffsetCommit on behalf of a group, DeleteGroups, ListGroups with a state
//! filter), and DescribeQuorum (`quorum status`, through [`Conn`], since it must find the
//! quorum leader) and DescribeCluster (`cluster describe`, through [`Cluster::call_any`]);
//! also CreateTopics, DeleteTopics, Metadata and ElectLeaders for the `perf metadata` and
//! `perf failover` benchmarks, which need one request in flight per connection;
//! AlterPartitionReassignments, ListPartitionReassignments, DescribeConfigs and
//! IncrementalAlterConfigs for `reassign` (librdkafka has no reassignment calls).
//!
//! - [`Conn`]: one TCP connection: framing, correlation ids, version negotiation through
//!   ApiVersions (the highest version both sides speak, capped at what this code fills in).
//! - [`Cluster`]: brokers from Metadata, one connection per broker, coordinator lookup,
//!   and the retries Kafka's admin client makes: NOT_COORDINATOR and
//!   COORDINATOR_NOT_AVAILABLE look the coordinator up again, COORDINATOR_LOAD_IN_PROGRESS
//!   and leader changes wait and retry, all bounded by [`RETRY_ATTEMPTS_MAX`].
//!
//! PLAINTEXT only: TLS and SASL settings given with `--command-config` are refused with a
//! clear message rather than ignored.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_group_describe_response::DescribedGroup as ConsumerDescribedGroup;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, BrokerId, ConsumerGroupDescribeRequest,
    DeleteGroupsRequest, DescribeGroupsRequest, FindCoordinatorRequest, GroupId, ListGroupsRequest,
    ListOffsetsRequest, MetadataRequest, OffsetCommitRequest, OffsetFetchRequest, RequestHeader,
    ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::client::{screaming_snake, ClientOpts};

/// `client.id` on every request.
const CLIENT_ID: &str = "isthmusctl";
/// Largest response accepted; a bigger size prefix means a confused peer (or not Kafka).
const RESPONSE_BYTES_MAX: usize = 100 * 1024 * 1024;
/// Bytes in a frame's size prefix.
const FRAME_PREFIX_BYTES: usize = 4;
/// Tries of one operation that meets a retriable error before giving up.
pub const RETRY_ATTEMPTS_MAX: u32 = 10;
const RETRY_BACKOFF_INITIAL: Duration = Duration::from_millis(100);
const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// ListOffsets timestamps with a special meaning.
pub const EARLIEST_TIMESTAMP: i64 = -2;
pub const LATEST_TIMESTAMP: i64 = -1;

/// The highest version of each API this client fills in correctly; the version used is
/// the highest both this table and the broker's ApiVersions allow.
fn version_cap(key: ApiKey) -> i16 {
    match key {
        ApiKey::Metadata => 12,
        ApiKey::FindCoordinator => 6,
        ApiKey::ListGroups => 5,
        ApiKey::DescribeGroups => 6,
        ApiKey::ConsumerGroupDescribe => 1,
        // v8+ batch several groups in a different layout; one group at a time is enough.
        ApiKey::OffsetFetch => 7,
        // v9+ are for KIP-848 member epochs, v10 for topic ids.
        ApiKey::OffsetCommit => 8,
        ApiKey::ListOffsets => 7,
        ApiKey::DeleteGroups => 2,
        ApiKey::ApiVersions => 3,
        ApiKey::DescribeQuorum => 2,
        ApiKey::DescribeCluster => 2,
        // `perf metadata`: every field it fills exists from v2 on.
        ApiKey::CreateTopics => 7,
        // v6 names topics in another field (with ids); names alone are enough.
        ApiKey::DeleteTopics => 5,
        // `perf failover`: preferred elections to restore leadership between runs.
        ApiKey::ElectLeaders => 2,
        // `reassign`: v1 can refuse replication-factor changes.
        ApiKey::AlterPartitionReassignments => 1,
        ApiKey::ListPartitionReassignments => 0,
        // `reassign` throttles: read and change the few configs it manages.
        ApiKey::DescribeConfigs => 4,
        ApiKey::IncrementalAlterConfigs => 1,
        _ => 0,
    }
}

/// A Kafka error code as operators know it: `NON_EMPTY_GROUP (68)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KafkaCode(pub i16);

impl KafkaCode {
    pub fn error(self) -> Option<ResponseError> {
        ResponseError::try_from_code(self.0)
    }
}

impl fmt::Display for KafkaCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.error() {
            None => write!(f, "NONE (0)"),
            Some(ResponseError::Unknown(code)) => write!(f, "error code {code}"),
            Some(e) => write!(f, "{} ({})", screaming_snake(&e.to_string()), self.0),
        }
    }
}

/// Refuses client settings the raw client cannot honour (it speaks PLAINTEXT only).
pub fn check_plaintext(opts: &ClientOpts) -> anyhow::Result<()> {
    for (k, v) in &opts.command_config {
        let k = k.as_str();
        if k == "security.protocol" && !v.eq_ignore_ascii_case("plaintext") {
            bail!(
                "this isthmusctl command speaks PLAINTEXT only; security.protocol={v} is not supported yet \
                 (Kafka's own tools, e.g. kafka-consumer-groups.sh, work with TLS/SASL)"
            );
        }
    }
    Ok(())
}

/// One connection to one broker.
pub struct Conn {
    stream: TcpStream,
    addr: String,
    correlation_id: i32,
    /// Broker's supported versions by api key.
    versions: HashMap<i16, (i16, i16)>,
    timeout: Duration,
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn").field("addr", &self.addr).finish()
    }
}

impl Conn {
    /// Connects and negotiates versions with ApiVersions.
    pub async fn open(addr: &str, timeout: Duration) -> anyhow::Result<Conn> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| {
                anyhow!(
                    "connecting to {addr}: no answer within {} ms",
                    timeout.as_millis()
                )
            })?
            .with_context(|| {
                format!("connecting to {addr} (is the broker up and the address right?)")
            })?;
        stream.set_nodelay(true).context("setting TCP_NODELAY")?;
        let mut conn = Conn {
            stream,
            addr: addr.to_owned(),
            correlation_id: 0,
            versions: HashMap::new(),
            timeout,
        };
        conn.negotiate().await?;
        Ok(conn)
    }

    async fn negotiate(&mut self) -> anyhow::Result<()> {
        let version = version_cap(ApiKey::ApiVersions);
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str(CLIENT_ID))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let mut body = self
            .round_trip(ApiKey::ApiVersions as i16, version, &req)
            .await
            .with_context(|| format!("ApiVersions to {}", self.addr))?;
        // The response header of ApiVersions is always v0. A broker that does not speak
        // our version answers in v0 with UNSUPPORTED_VERSION and its own range.
        let _header = ResponseHeader::decode(&mut body, 0)?;
        let code = body.clone().try_get_i16().unwrap_or(0);
        let at = if code == ResponseError::UnsupportedVersion.code() {
            0
        } else {
            version
        };
        let resp = ApiVersionsResponse::decode(&mut body, at)
            .with_context(|| format!("decoding ApiVersions from {}", self.addr))?;
        if resp.error_code != 0 && at != 0 {
            bail!(
                "ApiVersions to {}: {}",
                self.addr,
                KafkaCode(resp.error_code)
            );
        }
        self.versions = resp
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        Ok(())
    }

    /// The version to use for `R`, or a clear error if the broker and this client share none.
    fn version<R: Request>(&self) -> anyhow::Result<i16> {
        let key = ApiKey::try_from(R::KEY).map_err(|()| anyhow!("api key {}", R::KEY))?;
        let (min, max) = self
            .versions
            .get(&R::KEY)
            .copied()
            .ok_or_else(|| anyhow!("broker {} does not support {key:?}", self.addr))?;
        let ours = version_cap(key).min(R::VERSIONS.max);
        let v = ours.min(max);
        if v < min.max(R::VERSIONS.min) {
            bail!(
                "broker {} supports {key:?} versions {min}-{max}; this client speaks up to {ours}",
                self.addr
            );
        }
        Ok(v)
    }

    /// Sends `req` at the negotiated version and decodes the response.
    pub async fn call<R: Request>(&mut self, req: &R) -> anyhow::Result<(R::Response, i16)> {
        let version = self.version::<R>()?;
        let key = ApiKey::try_from(R::KEY).map_err(|()| anyhow!("api key {}", R::KEY))?;
        let mut body = self
            .round_trip(R::KEY, version, req)
            .await
            .with_context(|| format!("{key:?} to {}", self.addr))?;
        let header_version = <R::Response as HeaderVersion>::header_version(version);
        ResponseHeader::decode(&mut body, header_version)
            .with_context(|| format!("decoding {key:?} response header from {}", self.addr))?;
        let resp = R::Response::decode(&mut body, version)
            .with_context(|| format!("decoding {key:?} v{version} response from {}", self.addr))?;
        Ok((resp, version))
    }

    /// Writes one request frame and reads one response frame (correlation id checked, the
    /// header left in the returned bytes).
    async fn round_trip<E: Encodable>(
        &mut self,
        api_key: i16,
        version: i16,
        req: &E,
    ) -> anyhow::Result<Bytes> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let correlation_id = self.correlation_id;
        let key = ApiKey::try_from(api_key).map_err(|()| anyhow!("api key {api_key}"))?;
        let header = RequestHeader::default()
            .with_request_api_key(api_key)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
        let mut out = BytesMut::with_capacity(256);
        out.put_i32(0);
        header.encode(&mut out, key.request_header_version(version))?;
        req.encode(&mut out, version)?;
        let len = i32::try_from(out.len() - FRAME_PREFIX_BYTES).context("request too large")?;
        out[..FRAME_PREFIX_BYTES].copy_from_slice(&len.to_be_bytes());
        let timeout = self.timeout;
        let io = async {
            self.stream.write_all(&out).await?;
            let mut prefix = [0u8; FRAME_PREFIX_BYTES];
            self.stream.read_exact(&mut prefix).await?;
            let size = i32::from_be_bytes(prefix);
            let size = usize::try_from(size)
                .ok()
                .filter(|s| (4..=RESPONSE_BYTES_MAX).contains(s))
                .ok_or_else(|| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("response size {size} out of range (is this a Kafka listener?)"),
                    )
                })?;
            let mut buf = vec![0u8; size];
            self.stream.read_exact(&mut buf).await?;
            Ok::<_, std::io::Error>(Bytes::from(buf))
        };
        let body = tokio::time::timeout(timeout, io)
            .await
            .map_err(|_| {
                anyhow!(
                    "no answer within {} ms (--request-timeout-ms)",
                    timeout.as_millis()
                )
            })?
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => {
                    anyhow!(
                        "the broker closed the connection (it may not support {key:?} v{version})"
                    )
                }
                _ => anyhow!(e),
            })?;
        let got = body.clone().try_get_i32().unwrap_or(-1);
        if got != correlation_id {
            bail!("response correlation id {got}, expected {correlation_id}");
        }
        Ok(body)
    }
}

/// Exponential backoff with a bounded number of attempts.
pub(crate) struct Retry {
    attempt: u32,
    delay: Duration,
}

impl Retry {
    pub(crate) fn new() -> Self {
        Self {
            attempt: 0,
            delay: RETRY_BACKOFF_INITIAL,
        }
    }

    /// Sleeps before the next attempt, or fails with `last` when attempts are used up.
    pub(crate) async fn wait(&mut self, what: &str, last: anyhow::Error) -> anyhow::Result<()> {
        self.attempt += 1;
        if self.attempt >= RETRY_ATTEMPTS_MAX {
            return Err(last.context(format!(
                "{what}: gave up after {RETRY_ATTEMPTS_MAX} attempts"
            )));
        }
        tokio::time::sleep(self.delay).await;
        self.delay = (self.delay * 2).min(RETRY_BACKOFF_MAX);
        Ok(())
    }
}

/// A partition's topic and index.
pub type Tp = (String, i32);

/// What Metadata says about one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMeta {
    pub error: i16,
    /// Partition index → leader broker id (-1: none).
    pub leaders: BTreeMap<i32, i32>,
}

/// The group coordinator as FindCoordinator answered.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Coordinator {
    pub id: i32,
    pub host: String,
    pub port: i32,
}

impl Coordinator {
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// A cluster reached through its bootstrap servers.
#[derive(Debug)]
pub struct Cluster {
    bootstrap: Vec<String>,
    timeout: Duration,
    /// Broker id → `host:port`, from the latest Metadata.
    brokers: BTreeMap<i32, String>,
    /// Open connections by address.
    conns: HashMap<String, Conn>,
    coordinators: HashMap<String, Coordinator>,
}

impl Cluster {
    /// Connects to the first bootstrap server that answers and learns the brokers.
    pub async fn connect(opts: &ClientOpts) -> anyhow::Result<Cluster> {
        check_plaintext(opts)?;
        let bootstrap: Vec<String> = opts
            .bootstrap
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if bootstrap.is_empty() {
            bail!("--bootstrap-server is empty");
        }
        let mut cluster = Cluster {
            bootstrap,
            timeout: opts.request_timeout,
            brokers: BTreeMap::new(),
            conns: HashMap::new(),
            coordinators: HashMap::new(),
        };
        cluster.metadata(Some(&[])).await?;
        Ok(cluster)
    }

    async fn conn(&mut self, addr: &str) -> anyhow::Result<&mut Conn> {
        if !self.conns.contains_key(addr) {
            let conn = Conn::open(addr, self.timeout).await?;
            self.conns.insert(addr.to_owned(), conn);
        }
        Ok(self.conns.get_mut(addr).expect("connection just inserted"))
    }

    /// The live brokers by id (`host:port`), from the latest Metadata.
    pub fn brokers(&self) -> &BTreeMap<i32, String> {
        &self.brokers
    }

    /// Calls `addr`; a failed connection is dropped so the next call reconnects.
    pub async fn call_on<R: Request>(
        &mut self,
        addr: &str,
        req: &R,
    ) -> anyhow::Result<(R::Response, i16)> {
        let result = match self.conn(addr).await {
            Ok(conn) => conn.call(req).await,
            Err(e) => Err(e),
        };
        if result.is_err() {
            self.conns.remove(addr);
        }
        result
    }

    /// Calls any reachable broker: an open connection first, then the known brokers,
    /// then the bootstrap list.
    pub async fn call_any<R: Request>(&mut self, req: &R) -> anyhow::Result<(R::Response, i16)> {
        self.call_any_from(req, 0).await
    }

    /// Like [`Cluster::call_any`], but only brokers that speak `R` at `min_version` or
    /// above: for requests whose meaning an older version would lose.
    pub async fn call_any_from<R: Request>(
        &mut self,
        req: &R,
        min_version: i16,
    ) -> anyhow::Result<(R::Response, i16)> {
        let mut candidates: Vec<String> = self.conns.keys().cloned().collect();
        candidates.extend(self.brokers.values().cloned());
        candidates.extend(self.bootstrap.iter().cloned());
        let mut seen = std::collections::HashSet::new();
        let mut errors = Vec::new();
        for addr in candidates {
            if !seen.insert(addr.clone()) {
                continue;
            }
            if min_version > 0 {
                let version = match self.conn(&addr).await {
                    Ok(conn) => conn.version::<R>(),
                    Err(e) => Err(e),
                };
                match version {
                    Ok(v) if v >= min_version => {}
                    Ok(v) => {
                        let key = ApiKey::try_from(R::KEY)
                            .map_or(R::KEY.to_string(), |k| format!("{k:?}"));
                        errors.push(format!(
                            "{addr} speaks {key} up to v{v}, v{min_version} is needed"
                        ));
                        continue;
                    }
                    Err(e) => {
                        self.conns.remove(&addr);
                        errors.push(format!("{e:#}"));
                        continue;
                    }
                }
            }
            match self.call_on(&addr, req).await {
                Ok(r) => return Ok(r),
                Err(e) => errors.push(format!("{e:#}")),
            }
        }
        bail!(
            "no broker answered (bootstrap: {}): {}",
            self.bootstrap.join(","),
            errors.join("; ")
        )
    }

    /// Metadata for `topics` (`None`: all topics; `Some(&[])`: brokers only). Never
    /// creates topics. Updates the broker list.
    pub async fn metadata(
        &mut self,
        topics: Option<&[String]>,
    ) -> anyhow::Result<BTreeMap<String, TopicMeta>> {
        let req = MetadataRequest::default()
            .with_topics(topics.map(|ts| {
                ts.iter()
                    .map(|t| {
                        MetadataRequestTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string(t.clone()))))
                    })
                    .collect()
            }))
            .with_allow_auto_topic_creation(false);
        let (resp, _) = self.call_any(&req).await?;
        if !resp.brokers.is_empty() {
            self.brokers = resp
                .brokers
                .iter()
                .map(|b| (b.node_id.0, format!("{}:{}", b.host, b.port)))
                .collect();
        }
        Ok(resp
            .topics
            .iter()
            .filter_map(|t| {
                let name = t.name.as_ref()?.0.to_string();
                let leaders = t
                    .partitions
                    .iter()
                    .map(|p| (p.partition_index, p.leader_id.0))
                    .collect();
                Some((
                    name,
                    TopicMeta {
                        error: t.error_code,
                        leaders,
                    },
                ))
            })
            .collect())
    }

    /// The coordinator of `group` (cached until a request says it moved).
    pub async fn coordinator(&mut self, group: &str) -> anyhow::Result<Coordinator> {
        if let Some(c) = self.coordinators.get(group) {
            return Ok(c.clone());
        }
        let req = FindCoordinatorRequest::default()
            .with_key(StrBytes::from_string(group.to_owned()))
            .with_key_type(0)
            .with_coordinator_keys(vec![StrBytes::from_string(group.to_owned())]);
        let mut retry = Retry::new();
        loop {
            let (resp, version) = self.call_any(&req).await?;
            let (code, coordinator) = if version >= 4 {
                let c = resp
                    .coordinators
                    .first()
                    .ok_or_else(|| anyhow!("FindCoordinator answered no coordinator"))?;
                (
                    c.error_code,
                    Coordinator {
                        id: c.node_id.0,
                        host: c.host.to_string(),
                        port: c.port,
                    },
                )
            } else {
                (
                    resp.error_code,
                    Coordinator {
                        id: resp.node_id.0,
                        host: resp.host.to_string(),
                        port: resp.port,
                    },
                )
            };
            match KafkaCode(code).error() {
                None => {
                    self.coordinators
                        .insert(group.to_owned(), coordinator.clone());
                    return Ok(coordinator);
                }
                Some(
                    ResponseError::CoordinatorNotAvailable
                    | ResponseError::CoordinatorLoadInProgress
                    | ResponseError::NotCoordinator,
                ) => {
                    let e = anyhow!(
                        "finding the coordinator of group '{group}': {}",
                        KafkaCode(code)
                    );
                    retry.wait("FindCoordinator", e).await?;
                }
                Some(_) => bail!(
                    "finding the coordinator of group '{group}': {}",
                    KafkaCode(code)
                ),
            }
        }
    }

    /// Sends `req` to the coordinator of `group`, looking it up again on NOT_COORDINATOR,
    /// COORDINATOR_NOT_AVAILABLE or a connection failure, and waiting on
    /// COORDINATOR_LOAD_IN_PROGRESS; `error_of` picks the response's group-level error.
    async fn coordinator_call<R: Request>(
        &mut self,
        group: &str,
        req: &R,
        error_of: impl Fn(&R::Response, i16) -> i16,
    ) -> anyhow::Result<(R::Response, i16)> {
        let key = ApiKey::try_from(R::KEY).map_err(|()| anyhow!("api key {}", R::KEY))?;
        let what = format!("{key:?} for group '{group}'");
        let mut retry = Retry::new();
        loop {
            let coordinator = self.coordinator(group).await?;
            let last = match self.call_on(&coordinator.addr(), req).await {
                Ok((resp, version)) => {
                    let code = error_of(&resp, version);
                    match KafkaCode(code).error() {
                        Some(
                            ResponseError::NotCoordinator | ResponseError::CoordinatorNotAvailable,
                        ) => {
                            self.coordinators.remove(group);
                            anyhow!("{what}: {}", KafkaCode(code))
                        }
                        Some(ResponseError::CoordinatorLoadInProgress) => {
                            anyhow!("{what}: {}", KafkaCode(code))
                        }
                        _ => return Ok((resp, version)),
                    }
                }
                Err(e) => {
                    self.coordinators.remove(group);
                    e.context(format!(
                        "{what} (coordinator {} at {})",
                        coordinator.id,
                        coordinator.addr()
                    ))
                }
            };
            retry.wait(&what, last).await?;
        }
    }

    /// ListGroups on every broker, merged and sorted by group id. `states` filters by
    /// state (needs ListGroups v4, Kafka 2.6+).
    pub async fn list_groups(&mut self, states: &[String]) -> anyhow::Result<Vec<ListedGroup>> {
        let req = ListGroupsRequest::default().with_states_filter(
            states
                .iter()
                .map(|s| StrBytes::from_string(s.clone()))
                .collect(),
        );
        let mut all = Vec::new();
        let brokers: Vec<(i32, String)> = self.brokers.clone().into_iter().collect();
        for (id, addr) in brokers {
            let mut retry = Retry::new();
            loop {
                let (resp, version) = self
                    .call_on(&addr, &req)
                    .await
                    .with_context(|| format!("listing groups on broker {id}"))?;
                if !states.is_empty() && version < 4 {
                    bail!("broker {id} ({addr}) cannot filter groups by state (ListGroups v{version} < 4)");
                }
                match KafkaCode(resp.error_code).error() {
                    None => {
                        all.extend(resp.groups);
                        break;
                    }
                    Some(
                        ResponseError::CoordinatorLoadInProgress
                        | ResponseError::CoordinatorNotAvailable,
                    ) => {
                        let e =
                            anyhow!("ListGroups on broker {id}: {}", KafkaCode(resp.error_code));
                        retry.wait("ListGroups", e).await?;
                    }
                    Some(_) => bail!("ListGroups on broker {id}: {}", KafkaCode(resp.error_code)),
                }
            }
        }
        all.sort_by(|a, b| a.group_id.0.as_str().cmp(b.group_id.0.as_str()));
        all.dedup_by(|a, b| a.group_id == b.group_id);
        Ok(all)
    }

    /// DescribeGroups for one group. An unknown group comes back with state `Dead` (before
    /// v6) or GROUP_ID_NOT_FOUND (v6+); the caller decides what that means.
    pub async fn describe_group(&mut self, group: &str) -> anyhow::Result<DescribedGroup> {
        let req = DescribeGroupsRequest::default()
            .with_groups(vec![GroupId(StrBytes::from_string(group.to_owned()))]);
        let (resp, _) = self
            .coordinator_call(group, &req, |r, _| {
                r.groups.first().map_or(0, |g| g.error_code)
            })
            .await?;
        resp.groups
            .into_iter()
            .find(|g| g.group_id.0.as_str() == group)
            .ok_or_else(|| anyhow!("DescribeGroups answered without group '{group}'"))
    }

    /// ConsumerGroupDescribe (KIP-848) for one group, or `None` when the group is not a
    /// consumer-protocol group (GROUP_ID_NOT_FOUND) or the broker lacks the API.
    pub async fn consumer_group_describe(
        &mut self,
        group: &str,
    ) -> anyhow::Result<Option<ConsumerDescribedGroup>> {
        let req = ConsumerGroupDescribeRequest::default()
            .with_group_ids(vec![GroupId(StrBytes::from_string(group.to_owned()))]);
        let coordinator = self.coordinator(group).await?;
        if !self
            .conn(&coordinator.addr())
            .await?
            .versions
            .contains_key(&ConsumerGroupDescribeRequest::KEY)
        {
            return Ok(None);
        }
        let (resp, _) = self
            .coordinator_call(group, &req, |r, _| {
                r.groups.first().map_or(0, |g| g.error_code)
            })
            .await?;
        let Some(g) = resp
            .groups
            .into_iter()
            .find(|g| g.group_id.0.as_str() == group)
        else {
            bail!("ConsumerGroupDescribe answered without group '{group}'");
        };
        match g.error_code {
            0 => Ok(Some(g)),
            code if code == ResponseError::GroupIdNotFound.code() => Ok(None),
            code => bail!("describing group '{group}': {}", KafkaCode(code)),
        }
    }

    /// The group's committed offsets (partitions without one are left out).
    pub async fn committed_offsets(&mut self, group: &str) -> anyhow::Result<BTreeMap<Tp, i64>> {
        let req = OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
            .with_topics(None);
        let (resp, version) = self
            .coordinator_call(group, &req, |r, v| {
                // v1 has no top-level error; a coordinator error is in every partition.
                if v >= 2 {
                    r.error_code
                } else {
                    r.topics
                        .first()
                        .and_then(|t| t.partitions.first())
                        .map_or(0, |p| p.error_code)
                }
            })
            .await?;
        if version >= 2 && resp.error_code != 0 {
            bail!(
                "fetching committed offsets of group '{group}': {}",
                KafkaCode(resp.error_code)
            );
        }
        let mut out = BTreeMap::new();
        for t in &resp.topics {
            for p in &t.partitions {
                if p.error_code != 0 {
                    bail!(
                        "fetching the committed offset of {}:{} for group '{group}': {}",
                        t.name.0,
                        p.partition_index,
                        KafkaCode(p.error_code)
                    );
                }
                if p.committed_offset >= 0 {
                    out.insert(
                        (t.name.0.to_string(), p.partition_index),
                        p.committed_offset,
                    );
                }
            }
        }
        Ok(out)
    }

    /// Commits `offsets` for `group` as an admin does (generation -1, no member id): the
    /// broker accepts this only while the group has no members.
    pub async fn commit_offsets(
        &mut self,
        group: &str,
        offsets: &BTreeMap<Tp, i64>,
    ) -> anyhow::Result<()> {
        let mut by_topic: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
        for ((topic, partition), offset) in offsets {
            by_topic.entry(topic).or_default().push(
                OffsetCommitRequestPartition::default()
                    .with_partition_index(*partition)
                    .with_committed_offset(*offset)
                    .with_committed_leader_epoch(-1)
                    .with_committed_metadata(Some(StrBytes::from_static_str(""))),
            );
        }
        let req = OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
            .with_generation_id_or_member_epoch(-1)
            .with_member_id(StrBytes::from_static_str(""))
            .with_retention_time_ms(-1)
            .with_topics(
                by_topic
                    .into_iter()
                    .map(|(topic, partitions)| {
                        OffsetCommitRequestTopic::default()
                            .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                            .with_partitions(partitions)
                    })
                    .collect(),
            );
        let (resp, _) = self
            .coordinator_call(group, &req, |r, _| {
                r.topics
                    .iter()
                    .flat_map(|t| &t.partitions)
                    .map(|p| p.error_code)
                    .find(|&c| {
                        matches!(
                            KafkaCode(c).error(),
                            Some(
                                ResponseError::NotCoordinator
                                    | ResponseError::CoordinatorNotAvailable
                                    | ResponseError::CoordinatorLoadInProgress
                            )
                        )
                    })
                    .unwrap_or(0)
            })
            .await?;
        let failed: Vec<String> = resp
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .filter(|p| p.error_code != 0)
                    .map(move |p| {
                        format!(
                            "{}:{}: {}",
                            t.name.0,
                            p.partition_index,
                            KafkaCode(p.error_code)
                        )
                    })
            })
            .collect();
        if !failed.is_empty() {
            let hint = if resp
                .topics
                .iter()
                .flat_map(|t| &t.partitions)
                .any(|p| p.error_code == ResponseError::UnknownMemberId.code())
            {
                " (the group has active members again: stop its consumers and retry)"
            } else {
                ""
            };
            bail!(
                "committing offsets for group '{group}' failed{hint}: {}",
                failed.join(", ")
            );
        }
        Ok(())
    }

    /// ListOffsets for each partition at `timestamp` (or [`EARLIEST_TIMESTAMP`] /
    /// [`LATEST_TIMESTAMP`]), asked of each partition's leader. The inner result is the
    /// offset (-1 when no record is that recent) or the partition's error.
    pub async fn list_offsets(
        &mut self,
        partitions: &[Tp],
        timestamp: i64,
    ) -> anyhow::Result<BTreeMap<Tp, Result<i64, KafkaCode>>> {
        let mut out = BTreeMap::new();
        let mut pending: Vec<Tp> = partitions.to_vec();
        let mut retry = Retry::new();
        while !pending.is_empty() {
            let mut topics: Vec<String> = pending.iter().map(|(t, _)| t.clone()).collect();
            topics.sort();
            topics.dedup();
            let meta = self.metadata(Some(&topics)).await?;
            let mut by_leader: BTreeMap<i32, Vec<Tp>> = BTreeMap::new();
            let mut retriable = Vec::new();
            for tp in pending.drain(..) {
                let topic = meta.get(&tp.0);
                match topic.map(|t| (t.error, t.leaders.get(&tp.1).copied())) {
                    Some((0, Some(leader)))
                        if leader >= 0 && self.brokers.contains_key(&leader) =>
                    {
                        by_leader.entry(leader).or_default().push(tp);
                    }
                    Some((0, Some(_))) => retriable.push(tp),
                    Some((0, None)) => {
                        out.insert(
                            tp,
                            Err(KafkaCode(ResponseError::UnknownTopicOrPartition.code())),
                        );
                    }
                    Some((code, _)) if is_leader_error(code) => retriable.push(tp),
                    Some((code, _)) => {
                        out.insert(tp, Err(KafkaCode(code)));
                    }
                    None => {
                        out.insert(
                            tp,
                            Err(KafkaCode(ResponseError::UnknownTopicOrPartition.code())),
                        );
                    }
                }
            }
            for (leader, tps) in by_leader {
                let addr = self.brokers[&leader].clone();
                let mut by_topic: BTreeMap<&str, Vec<ListOffsetsPartition>> = BTreeMap::new();
                for (t, p) in &tps {
                    by_topic.entry(t).or_default().push(
                        ListOffsetsPartition::default()
                            .with_partition_index(*p)
                            .with_current_leader_epoch(-1)
                            .with_timestamp(timestamp),
                    );
                }
                let req = ListOffsetsRequest::default()
                    .with_replica_id(BrokerId(-1))
                    .with_isolation_level(0)
                    .with_topics(
                        by_topic
                            .into_iter()
                            .map(|(t, ps)| {
                                ListOffsetsTopic::default()
                                    .with_name(TopicName(StrBytes::from_string(t.to_owned())))
                                    .with_partitions(ps)
                            })
                            .collect(),
                    );
                let resp = match self.call_on(&addr, &req).await {
                    Ok((resp, _)) => resp,
                    Err(e) => {
                        // The leader may have gone away: retry after new metadata.
                        retry.wait("ListOffsets", e).await?;
                        pending.extend(tps);
                        continue;
                    }
                };
                let mut answered = std::collections::HashSet::new();
                for t in &resp.topics {
                    for p in &t.partitions {
                        let tp = (t.name.0.to_string(), p.partition_index);
                        answered.insert(tp.clone());
                        if is_leader_error(p.error_code) {
                            retriable.push(tp);
                        } else if p.error_code != 0 {
                            out.insert(tp, Err(KafkaCode(p.error_code)));
                        } else {
                            out.insert(tp, Ok(p.offset));
                        }
                    }
                }
                for tp in tps {
                    if !answered.contains(&tp) {
                        bail!(
                            "ListOffsets from {addr} did not answer for {}:{}",
                            tp.0,
                            tp.1
                        );
                    }
                }
            }
            if !retriable.is_empty() {
                let first = &retriable[0];
                retry
                    .wait(
                        "ListOffsets",
                        anyhow!(
                            "no leader for {}:{} (and {} more)",
                            first.0,
                            first.1,
                            retriable.len() - 1
                        ),
                    )
                    .await?;
                pending.extend(retriable);
            }
        }
        Ok(out)
    }

    /// DeleteGroups, one request per group (each to its own coordinator). `None` = deleted.
    pub async fn delete_group(&mut self, group: &str) -> anyhow::Result<Option<KafkaCode>> {
        let req = DeleteGroupsRequest::default()
            .with_groups_names(vec![GroupId(StrBytes::from_string(group.to_owned()))]);
        let (resp, _) = self
            .coordinator_call(group, &req, |r, _| {
                r.results.first().map_or(0, |g| g.error_code)
            })
            .await?;
        let result = resp
            .results
            .iter()
            .find(|r| r.group_id.0.as_str() == group)
            .ok_or_else(|| anyhow!("DeleteGroups answered without group '{group}'"))?;
        Ok((result.error_code != 0).then_some(KafkaCode(result.error_code)))
    }
}

/// Errors after which a partition's leader should be looked up again.
fn is_leader_error(code: i16) -> bool {
    matches!(
        KafkaCode(code).error(),
        Some(
            ResponseError::NotLeaderOrFollower
                | ResponseError::LeaderNotAvailable
                | ResponseError::UnknownLeaderEpoch
                | ResponseError::FencedLeaderEpoch
                | ResponseError::ReplicaNotAvailable
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_print_as_kafka_names() {
        assert_eq!(KafkaCode(68).to_string(), "NON_EMPTY_GROUP (68)");
        assert_eq!(KafkaCode(69).to_string(), "GROUP_ID_NOT_FOUND (69)");
        assert_eq!(KafkaCode(16).to_string(), "NOT_COORDINATOR (16)");
        assert_eq!(KafkaCode(0).to_string(), "NONE (0)");
        assert_eq!(KafkaCode(9999).to_string(), "error code 9999");
    }

    #[test]
    fn tls_and_sasl_are_refused_clearly() {
        let mut opts = ClientOpts {
            bootstrap: "b:1".into(),
            command_config: vec![("security.protocol".into(), "SASL_SSL".into())],
            request_timeout: Duration::from_secs(1),
        };
        let err = check_plaintext(&opts).unwrap_err().to_string();
        assert!(err.contains("PLAINTEXT only"), "{err}");
        opts.command_config = vec![("security.protocol".into(), "plaintext".into())];
        assert!(check_plaintext(&opts).is_ok());
    }

    #[tokio::test]
    async fn unreachable_broker_is_a_clear_error() {
        // A port nothing listens on: bind, take the port, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let opts = ClientOpts {
            bootstrap: format!("127.0.0.1:{port}"),
            command_config: vec![],
            request_timeout: Duration::from_secs(2),
        };
        let err = format!("{:#}", Cluster::connect(&opts).await.unwrap_err());
        assert!(err.contains("no broker answered"), "{err}");
        assert!(err.contains("is the broker up"), "{err}");
    }
}
