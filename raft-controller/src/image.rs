//! [`MetadataImage`]: the cluster metadata built by applying committed records in log
//! order. Its revision is the Raft log index of the last entry applied.
//!
//! Applying is a pure function of (image, revision, proposal): [`MetadataImage::apply`]
//! returns the next image or a [`Rejection`] and never panics, so every controller that
//! applies the same committed entries gets the same image. The leader runs the same
//! code as [`MetadataImage::validate`] before it proposes, so a bad record is refused
//! before it reaches the log; a record that still fails at apply time (two proposals
//! that raced) leaves the image unchanged on every node, and its proposer gets the
//! rejection.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{ControllerError, RejectCode, Rejection};
use crate::records::{
    BrokerEndpoint, BrokerRegistrationRecord, ConfigResource, MetadataProposal, MetadataRecord,
    PartitionChangeRecord, PartitionRecord, ProducerIdsRecord, TopicRecord, NO_LEADER,
    RECORD_FORMAT_VERSION,
};

/// Kafka's limit on a topic name's length.
pub const TOPIC_NAME_LEN_MAX: usize = 249;
/// Bound on a config key, a rack name and a listener name.
pub const NAME_LEN_MAX: usize = 255;
/// Bound on one config value.
pub const CONFIG_VALUE_BYTES_MAX: usize = 64 * 1024;
/// Bound on one producer-id block.
pub const PRODUCER_ID_BLOCK_SIZE_MAX: i64 = 1_000_000;
/// Bound on the records in one proposal.
pub const RECORDS_PER_PROPOSAL_MAX: usize = 100_000;
/// Snapshot encoding version of the image.
const IMAGE_SNAPSHOT_VERSION: u16 = 1;

/// A registered broker as the image knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistration {
    pub broker_id: i32,
    pub incarnation_id: Uuid,
    /// The log index of the registration record.
    pub broker_epoch: i64,
    pub rack: Option<String>,
    pub endpoints: Vec<BrokerEndpoint>,
    pub fenced: bool,
    pub in_controlled_shutdown: bool,
}

impl BrokerRegistration {
    /// Unfenced and not shutting down: may lead, may be placed on.
    pub fn is_active(&self) -> bool {
        !self.fenced && !self.in_controlled_shutdown
    }
}

/// One partition's replica state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionImage {
    /// During a reassignment: the target first, then the replicas being removed.
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    /// Replicas an ongoing reassignment adds (empty when none is in progress).
    #[serde(default)]
    pub adding_replicas: Vec<i32>,
    /// Replicas an ongoing reassignment removes once the target is in the ISR.
    #[serde(default)]
    pub removing_replicas: Vec<i32>,
}

impl PartitionImage {
    /// Whether a reassignment is in progress.
    pub fn is_reassigning(&self) -> bool {
        !self.adding_replicas.is_empty() || !self.removing_replicas.is_empty()
    }

    /// The replica set a reassignment moves to: the replicas without those being removed.
    pub fn target_replicas(&self) -> Vec<i32> {
        self.replicas
            .iter()
            .copied()
            .filter(|r| !self.removing_replicas.contains(r))
            .collect()
    }
}

/// One topic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicImage {
    pub name: String,
    pub topic_id: Uuid,
    pub configs: BTreeMap<String, String>,
    pub partitions: BTreeMap<i32, PartitionImage>,
}

/// The cluster metadata at one revision.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataImage {
    revision: u64,
    brokers: BTreeMap<i32, BrokerRegistration>,
    topics: BTreeMap<Uuid, Arc<TopicImage>>,
    broker_configs: BTreeMap<i32, BTreeMap<String, String>>,
    cluster_configs: BTreeMap<String, String>,
    next_producer_id: i64,
    /// Derived: name → id. Rebuilt when a snapshot is loaded.
    #[serde(skip)]
    topic_ids: BTreeMap<String, Uuid>,
    /// Derived: name with '.' replaced by '_' → id (Kafka refuses names that collide so).
    #[serde(skip)]
    topic_collision_names: BTreeMap<String, Uuid>,
}

#[derive(Serialize, Deserialize)]
struct ImageSnapshot {
    version: u16,
    image: MetadataImage,
}

impl MetadataImage {
    /// The log index of the last entry applied (0 before any).
    pub fn revision(&self) -> u64 {
        self.revision
    }

    pub fn brokers(&self) -> &BTreeMap<i32, BrokerRegistration> {
        &self.brokers
    }

    pub fn broker(&self, broker_id: i32) -> Option<&BrokerRegistration> {
        self.brokers.get(&broker_id)
    }

    /// Topics by id.
    pub fn topics(&self) -> impl Iterator<Item = &TopicImage> {
        self.topics.values().map(|t| t.as_ref())
    }

    pub fn topic_count(&self) -> usize {
        self.topics.len()
    }

    pub fn topic(&self, topic_id: &Uuid) -> Option<&TopicImage> {
        self.topics.get(topic_id).map(|t| t.as_ref())
    }

    pub fn topic_by_name(&self, name: &str) -> Option<&TopicImage> {
        self.topic_ids.get(name).and_then(|id| self.topic(id))
    }

    pub fn partition(&self, topic_id: &Uuid, partition: i32) -> Option<&PartitionImage> {
        self.topic(topic_id)?.partitions.get(&partition)
    }

    pub fn broker_configs(&self, broker_id: i32) -> Option<&BTreeMap<String, String>> {
        self.broker_configs.get(&broker_id)
    }

    pub fn cluster_configs(&self) -> &BTreeMap<String, String> {
        &self.cluster_configs
    }

    /// The first producer id of the next block to grant.
    pub fn next_producer_id(&self) -> i64 {
        self.next_producer_id
    }

    /// Checks that `proposal` would apply to this image, without changing it.
    pub fn validate(&self, proposal: &MetadataProposal) -> Result<(), Rejection> {
        self.apply(self.revision + 1, proposal).map(|_| ())
    }

    /// The image after applying `proposal` as the log entry at `revision`, or why it
    /// cannot apply (then nothing of it applies). Never panics.
    pub fn apply(
        &self,
        revision: u64,
        proposal: &MetadataProposal,
    ) -> Result<MetadataImage, Rejection> {
        if proposal.version == 0 || proposal.version > RECORD_FORMAT_VERSION {
            return Err(Rejection::new(
                RejectCode::UnsupportedVersion,
                format!(
                    "record format version {} (this node applies 1..={RECORD_FORMAT_VERSION})",
                    proposal.version
                ),
            ));
        }
        if proposal.records.is_empty() {
            return Err(invalid("a proposal needs at least one record"));
        }
        if proposal.records.len() > RECORDS_PER_PROPOSAL_MAX {
            return Err(invalid(format!(
                "{} records in one proposal; at most {RECORDS_PER_PROPOSAL_MAX}",
                proposal.records.len()
            )));
        }
        let mut next = self.clone();
        next.revision = revision;
        let mut created = Vec::new();
        for (i, record) in proposal.records.iter().enumerate() {
            next.apply_record(revision, record, &mut created)
                .map_err(|r| Rejection::new(r.code, format!("record {i}: {}", r.message)))?;
        }
        for topic_id in created {
            if let Some(t) = next.topics.get(&topic_id) {
                if t.partitions.is_empty() {
                    return Err(Rejection::new(
                        RejectCode::InvalidPartitions,
                        format!("topic `{}` created without partitions", t.name),
                    ));
                }
            }
        }
        Ok(next)
    }

    /// The image after a log entry that carries no records (blank or membership).
    pub fn advanced_to(&self, revision: u64) -> MetadataImage {
        let mut next = self.clone();
        next.revision = revision;
        next
    }

    /// Encodes the image for a snapshot.
    pub fn to_snapshot_bytes(&self) -> Result<Vec<u8>, ControllerError> {
        #[derive(Serialize)]
        struct Ref<'a> {
            version: u16,
            image: &'a MetadataImage,
        }
        serde_json::to_vec(&Ref {
            version: IMAGE_SNAPSHOT_VERSION,
            image: self,
        })
        .map_err(|e| ControllerError::Raft(format!("encoding the metadata image: {e}")))
    }

    /// Decodes and checks an image from [`MetadataImage::to_snapshot_bytes`].
    pub fn from_snapshot_bytes(bytes: &[u8]) -> Result<MetadataImage, String> {
        let snap: ImageSnapshot = serde_json::from_slice(bytes)
            .map_err(|e| format!("decoding the metadata image: {e}"))?;
        if snap.version != IMAGE_SNAPSHOT_VERSION {
            return Err(format!(
                "image snapshot version {} (this node reads {IMAGE_SNAPSHOT_VERSION})",
                snap.version
            ));
        }
        let mut image = snap.image;
        for (id, t) in &image.topics {
            if *id != t.topic_id {
                return Err(format!("topic {} stored under id {id}", t.topic_id));
            }
            if image.topic_ids.insert(t.name.clone(), *id).is_some() {
                return Err(format!("topic name `{}` appears twice", t.name));
            }
            image
                .topic_collision_names
                .insert(collision_name(&t.name), *id);
        }
        Ok(image)
    }

    fn apply_record(
        &mut self,
        revision: u64,
        record: &MetadataRecord,
        created: &mut Vec<Uuid>,
    ) -> Result<(), Rejection> {
        match record {
            MetadataRecord::RegisterBroker(r) => self.register_broker(revision, r),
            MetadataRecord::UnregisterBroker {
                broker_id,
                broker_epoch,
            } => {
                self.broker_with_epoch(*broker_id, *broker_epoch)?;
                self.brokers.remove(broker_id);
                Ok(())
            }
            MetadataRecord::FenceBroker {
                broker_id,
                broker_epoch,
            } => {
                let b = self.broker_with_epoch(*broker_id, *broker_epoch)?;
                b.fenced = true;
                Ok(())
            }
            MetadataRecord::UnfenceBroker {
                broker_id,
                broker_epoch,
            } => {
                let b = self.broker_with_epoch(*broker_id, *broker_epoch)?;
                if b.in_controlled_shutdown {
                    return Err(invalid(format!(
                        "broker {broker_id} is in controlled shutdown and cannot be unfenced; it must register again"
                    )));
                }
                b.fenced = false;
                Ok(())
            }
            MetadataRecord::BeginControlledShutdown {
                broker_id,
                broker_epoch,
            } => {
                let b = self.broker_with_epoch(*broker_id, *broker_epoch)?;
                b.in_controlled_shutdown = true;
                Ok(())
            }
            MetadataRecord::CreateTopic(t) => {
                self.create_topic(t)?;
                created.push(t.topic_id);
                Ok(())
            }
            MetadataRecord::Partition(p) => self.create_partition(p),
            MetadataRecord::PartitionChange(c) => self.change_partition(c),
            MetadataRecord::SetConfig {
                resource,
                key,
                value,
            } => {
                check_config_entry(key, value)?;
                self.config_map(resource)?
                    .insert(key.clone(), value.clone());
                Ok(())
            }
            MetadataRecord::DeleteConfig { resource, key } => {
                check_config_entry(key, "")?;
                let map = self.config_map(resource)?;
                map.remove(key);
                if let ConfigResource::Broker { broker_id } = resource {
                    if self
                        .broker_configs
                        .get(broker_id)
                        .is_some_and(|m| m.is_empty())
                    {
                        self.broker_configs.remove(broker_id);
                    }
                }
                Ok(())
            }
            MetadataRecord::ProducerIds(p) => self.grant_producer_ids(p),
            MetadataRecord::RemoveTopic { topic_id } => {
                let Some(t) = self.topics.remove(topic_id) else {
                    return Err(Rejection::new(
                        RejectCode::UnknownTopicId,
                        format!("no topic with id {topic_id}"),
                    ));
                };
                self.topic_ids.remove(&t.name);
                self.topic_collision_names.remove(&collision_name(&t.name));
                Ok(())
            }
        }
    }

    fn register_broker(
        &mut self,
        revision: u64,
        r: &BrokerRegistrationRecord,
    ) -> Result<(), Rejection> {
        if r.broker_id < 0 {
            return Err(invalid(format!("broker id {} is negative", r.broker_id)));
        }
        if let Some(rack) = &r.rack {
            check_name("rack", rack)?;
        }
        if r.endpoints.is_empty() {
            return Err(invalid(format!(
                "broker {} registers no endpoint",
                r.broker_id
            )));
        }
        let mut names = BTreeSet::new();
        for e in &r.endpoints {
            check_name("listener name", &e.name)?;
            check_name("security protocol", &e.security_protocol)?;
            if e.host.is_empty() || e.host.len() > NAME_LEN_MAX {
                return Err(invalid(format!(
                    "listener {} has a bad host `{}`",
                    e.name, e.host
                )));
            }
            if !names.insert(e.name.as_str()) {
                return Err(invalid(format!("listener {} registered twice", e.name)));
            }
        }
        if let Some(old) = self.brokers.get(&r.broker_id) {
            if !old.fenced && old.incarnation_id != r.incarnation_id {
                return Err(Rejection::new(
                    RejectCode::DuplicateBrokerRegistration,
                    format!(
                        "broker {} is registered and unfenced with incarnation {}; a new incarnation {} may register once the old one is fenced",
                        r.broker_id, old.incarnation_id, r.incarnation_id
                    ),
                ));
            }
        }
        let broker_epoch = i64::try_from(revision).map_err(|_| invalid("revision beyond i64"))?;
        self.brokers.insert(
            r.broker_id,
            BrokerRegistration {
                broker_id: r.broker_id,
                incarnation_id: r.incarnation_id,
                broker_epoch,
                rack: r.rack.clone(),
                endpoints: r.endpoints.clone(),
                fenced: true,
                in_controlled_shutdown: false,
            },
        );
        Ok(())
    }

    fn broker_with_epoch(
        &mut self,
        broker_id: i32,
        broker_epoch: i64,
    ) -> Result<&mut BrokerRegistration, Rejection> {
        let Some(b) = self.brokers.get_mut(&broker_id) else {
            return Err(Rejection::new(
                RejectCode::BrokerIdNotRegistered,
                format!("broker {broker_id} is not registered"),
            ));
        };
        if b.broker_epoch != broker_epoch {
            return Err(Rejection::new(
                RejectCode::StaleBrokerEpoch,
                format!(
                    "broker {broker_id} has epoch {}, the record names epoch {broker_epoch}",
                    b.broker_epoch
                ),
            ));
        }
        Ok(b)
    }

    fn create_topic(&mut self, t: &TopicRecord) -> Result<(), Rejection> {
        check_topic_name(&t.name)?;
        if t.topic_id.is_nil() {
            return Err(invalid(format!("topic `{}` has the nil topic id", t.name)));
        }
        if self.topic_ids.contains_key(&t.name) {
            return Err(Rejection::new(
                RejectCode::TopicAlreadyExists,
                format!("topic `{}` already exists", t.name),
            ));
        }
        if self.topics.contains_key(&t.topic_id) {
            return Err(Rejection::new(
                RejectCode::TopicAlreadyExists,
                format!("topic id {} is already used", t.topic_id),
            ));
        }
        let collision = collision_name(&t.name);
        if let Some(other) = self
            .topic_collision_names
            .get(&collision)
            .and_then(|id| self.topics.get(id))
        {
            return Err(Rejection::new(
                RejectCode::InvalidTopicName,
                format!(
                    "topic `{}` collides with existing topic `{}` ('.' and '_' collide in metric names)",
                    t.name, other.name
                ),
            ));
        }
        for (k, v) in &t.configs {
            check_config_entry(k, v)?;
        }
        self.topic_ids.insert(t.name.clone(), t.topic_id);
        self.topic_collision_names.insert(collision, t.topic_id);
        self.topics.insert(
            t.topic_id,
            Arc::new(TopicImage {
                name: t.name.clone(),
                topic_id: t.topic_id,
                configs: t.configs.clone(),
                partitions: BTreeMap::new(),
            }),
        );
        Ok(())
    }

    fn create_partition(&mut self, p: &PartitionRecord) -> Result<(), Rejection> {
        let count = self.topic_or_reject(&p.topic_id)?.partitions.len();
        if p.partition < 0 || usize::try_from(p.partition).ok() != Some(count) {
            return Err(Rejection::new(
                RejectCode::InvalidPartitions,
                format!(
                    "topic {} has {count} partitions; the next new one must be partition {count}, not {}",
                    p.topic_id, p.partition
                ),
            ));
        }
        if p.leader_epoch < 0 || p.partition_epoch < 0 {
            return Err(invalid("negative leader or partition epoch"));
        }
        self.check_replicas(&p.replicas, &[])?;
        self.check_isr_and_leader(&p.replicas, &p.isr, p.leader, true)?;
        let topic = self.topic_mut(&p.topic_id)?;
        topic.partitions.insert(
            p.partition,
            PartitionImage {
                replicas: p.replicas.clone(),
                isr: p.isr.clone(),
                leader: p.leader,
                leader_epoch: p.leader_epoch,
                partition_epoch: p.partition_epoch,
                adding_replicas: Vec::new(),
                removing_replicas: Vec::new(),
            },
        );
        Ok(())
    }

    fn change_partition(&mut self, c: &PartitionChangeRecord) -> Result<(), Rejection> {
        let topic = self.topic_or_reject(&c.topic_id)?;
        let Some(old) = topic.partitions.get(&c.partition).cloned() else {
            return Err(Rejection::new(
                RejectCode::UnknownTopicOrPartition,
                format!("topic `{}` has no partition {}", topic.name, c.partition),
            ));
        };
        if let Some(expected) = c.expected_partition_epoch {
            if expected != old.partition_epoch {
                return Err(Rejection::new(
                    RejectCode::InvalidUpdateVersion,
                    format!(
                        "partition {}-{} is at partition epoch {}, the change expected {expected}",
                        topic.name, c.partition, old.partition_epoch
                    ),
                ));
            }
        }
        let replicas = c.replicas.clone().unwrap_or_else(|| old.replicas.clone());
        let isr = c.isr.clone().unwrap_or_else(|| old.isr.clone());
        let leader = c.leader.unwrap_or(old.leader);
        let adding = c
            .adding_replicas
            .clone()
            .unwrap_or_else(|| old.adding_replicas.clone());
        let removing = c
            .removing_replicas
            .clone()
            .unwrap_or_else(|| old.removing_replicas.clone());
        if replicas == old.replicas
            && isr == old.isr
            && leader == old.leader
            && adding == old.adding_replicas
            && removing == old.removing_replicas
        {
            return Err(invalid(format!(
                "partition change of {}-{} changes nothing",
                topic.name, c.partition
            )));
        }
        if c.replicas.is_some() {
            self.check_replicas(&replicas, &old.replicas)?;
        }
        self.check_isr_and_leader(&replicas, &isr, leader, leader != old.leader)?;
        check_reassignment(&replicas, &adding, &removing)?;
        let leader_epoch = if leader != old.leader {
            old.leader_epoch
                .checked_add(1)
                .ok_or_else(|| invalid("leader epoch overflow"))?
        } else {
            old.leader_epoch
        };
        let partition_epoch = old
            .partition_epoch
            .checked_add(1)
            .ok_or_else(|| invalid("partition epoch overflow"))?;
        let topic = self.topic_mut(&c.topic_id)?;
        topic.partitions.insert(
            c.partition,
            PartitionImage {
                replicas,
                isr,
                leader,
                leader_epoch,
                partition_epoch,
                adding_replicas: adding,
                removing_replicas: removing,
            },
        );
        Ok(())
    }

    /// Replica list: non-empty, no duplicates, every broker not already a replica must be
    /// registered.
    fn check_replicas(&self, replicas: &[i32], already: &[i32]) -> Result<(), Rejection> {
        if replicas.is_empty() {
            return Err(Rejection::new(
                RejectCode::InvalidReplicationFactor,
                "a partition needs at least one replica",
            ));
        }
        if replicas.len() > i16::MAX as usize {
            return Err(Rejection::new(
                RejectCode::InvalidReplicationFactor,
                format!(
                    "{} replicas; Kafka's replication factor is at most {}",
                    replicas.len(),
                    i16::MAX
                ),
            ));
        }
        let mut seen = BTreeSet::new();
        for r in replicas {
            if !seen.insert(*r) {
                return Err(Rejection::new(
                    RejectCode::InvalidReplicaAssignment,
                    format!("broker {r} appears twice in replicas {replicas:?}"),
                ));
            }
            if !already.contains(r) && !self.brokers.contains_key(r) {
                return Err(Rejection::new(
                    RejectCode::InvalidReplicaAssignment,
                    format!("replica {r} is not a registered broker"),
                ));
            }
        }
        Ok(())
    }

    /// ISR within the replicas without duplicates; a leader is in the ISR, and a new
    /// leader is a registered, active broker.
    fn check_isr_and_leader(
        &self,
        replicas: &[i32],
        isr: &[i32],
        leader: i32,
        new_leader: bool,
    ) -> Result<(), Rejection> {
        let mut seen = BTreeSet::new();
        for r in isr {
            if !seen.insert(*r) {
                return Err(invalid(format!("broker {r} appears twice in ISR {isr:?}")));
            }
            if !replicas.contains(r) {
                return Err(invalid(format!(
                    "ISR member {r} is not a replica ({replicas:?})"
                )));
            }
        }
        if leader == NO_LEADER {
            return Ok(());
        }
        if !isr.contains(&leader) {
            return Err(Rejection::new(
                RejectCode::IneligibleReplica,
                format!("leader {leader} is not in the ISR {isr:?}"),
            ));
        }
        if new_leader {
            match self.brokers.get(&leader) {
                Some(b) if b.is_active() => {}
                Some(_) => {
                    return Err(Rejection::new(
                        RejectCode::IneligibleReplica,
                        format!(
                            "broker {leader} is fenced or shutting down and cannot become leader"
                        ),
                    ))
                }
                None => {
                    return Err(Rejection::new(
                        RejectCode::BrokerIdNotRegistered,
                        format!("leader {leader} is not a registered broker"),
                    ))
                }
            }
        }
        Ok(())
    }

    fn topic_or_reject(&self, topic_id: &Uuid) -> Result<&TopicImage, Rejection> {
        self.topic(topic_id).ok_or_else(|| {
            Rejection::new(
                RejectCode::UnknownTopicId,
                format!("no topic with id {topic_id}"),
            )
        })
    }

    fn topic_mut(&mut self, topic_id: &Uuid) -> Result<&mut TopicImage, Rejection> {
        match self.topics.get_mut(topic_id) {
            Some(t) => Ok(Arc::make_mut(t)),
            None => Err(Rejection::new(
                RejectCode::UnknownTopicId,
                format!("no topic with id {topic_id}"),
            )),
        }
    }

    fn config_map(
        &mut self,
        resource: &ConfigResource,
    ) -> Result<&mut BTreeMap<String, String>, Rejection> {
        match resource {
            ConfigResource::Topic { name } => {
                let Some(id) = self.topic_ids.get(name).copied() else {
                    return Err(Rejection::new(
                        RejectCode::UnknownTopicOrPartition,
                        format!("no topic `{name}`"),
                    ));
                };
                Ok(&mut self.topic_mut(&id)?.configs)
            }
            ConfigResource::Broker { broker_id } => {
                if *broker_id < 0 {
                    return Err(Rejection::new(
                        RejectCode::InvalidConfig,
                        format!("broker id {broker_id} is negative"),
                    ));
                }
                Ok(self.broker_configs.entry(*broker_id).or_default())
            }
            ConfigResource::ClusterDefault => Ok(&mut self.cluster_configs),
        }
    }

    fn grant_producer_ids(&mut self, p: &ProducerIdsRecord) -> Result<(), Rejection> {
        self.broker_with_epoch(p.broker_id, p.broker_epoch)?;
        if p.first_producer_id != self.next_producer_id {
            return Err(invalid(format!(
                "producer id block starts at {}, the next free id is {}",
                p.first_producer_id, self.next_producer_id
            )));
        }
        if p.block_size <= 0 || p.block_size > PRODUCER_ID_BLOCK_SIZE_MAX {
            return Err(invalid(format!(
                "producer id block size {} (1..={PRODUCER_ID_BLOCK_SIZE_MAX})",
                p.block_size
            )));
        }
        self.next_producer_id = p
            .first_producer_id
            .checked_add(p.block_size)
            .ok_or_else(|| invalid("producer ids exhausted"))?;
        Ok(())
    }
}

/// Adding and removing replicas: replicas, disjoint, no repeats, and some replica left
/// once the removing ones go.
fn check_reassignment(replicas: &[i32], adding: &[i32], removing: &[i32]) -> Result<(), Rejection> {
    let reject = |m: String| Rejection::new(RejectCode::InvalidReplicaAssignment, m);
    for (what, list) in [("adding", adding), ("removing", removing)] {
        for (i, r) in list.iter().enumerate() {
            if !replicas.contains(r) {
                return Err(reject(format!(
                    "{what} replica {r} is not a replica ({replicas:?})"
                )));
            }
            if list[..i].contains(r) {
                return Err(reject(format!("{what} replica {r} is named twice")));
            }
        }
    }
    if let Some(r) = adding.iter().find(|r| removing.contains(r)) {
        return Err(reject(format!("replica {r} is both added and removed")));
    }
    if replicas.iter().all(|r| removing.contains(r)) {
        return Err(reject("a reassignment may not remove every replica".into()));
    }
    Ok(())
}

fn invalid(message: impl Into<String>) -> Rejection {
    Rejection::new(RejectCode::InvalidRequest, message)
}

fn collision_name(name: &str) -> String {
    name.replace('.', "_")
}

/// Kafka's topic name rules: 1..=249 of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn check_topic_name(name: &str) -> Result<(), Rejection> {
    let bad = |why: &str| {
        Err(Rejection::new(
            RejectCode::InvalidTopicName,
            format!("topic name `{name}` {why}"),
        ))
    };
    if name.is_empty() {
        return bad("is empty");
    }
    if name == "." || name == ".." {
        return bad("is not allowed");
    }
    if name.len() > TOPIC_NAME_LEN_MAX {
        return bad(&format!("is longer than {TOPIC_NAME_LEN_MAX} characters"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return bad("may contain only ASCII letters, digits, '.', '_' and '-'");
    }
    Ok(())
}

fn check_name(what: &str, value: &str) -> Result<(), Rejection> {
    if value.is_empty() || value.len() > NAME_LEN_MAX || value.chars().any(|c| c.is_control()) {
        return Err(invalid(format!(
            "bad {what} `{value}` (1..={NAME_LEN_MAX} printable characters)"
        )));
    }
    Ok(())
}

fn check_config_entry(key: &str, value: &str) -> Result<(), Rejection> {
    if key.is_empty()
        || key.len() > NAME_LEN_MAX
        || !key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Err(Rejection::new(
            RejectCode::InvalidConfig,
            format!("bad config key `{key}`"),
        ));
    }
    if value.len() > CONFIG_VALUE_BYTES_MAX {
        return Err(Rejection::new(
            RejectCode::InvalidConfig,
            format!("config `{key}` value is longer than {CONFIG_VALUE_BYTES_MAX} bytes"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
