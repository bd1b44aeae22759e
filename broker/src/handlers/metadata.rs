//! Metadata: brokers, controller and topics (with ids, replicas, ISR, leaders and leader
//! epochs from the partition records) from the local view of the metadata image; creates
//! topics that do not exist when auto-create is on and the client allows it. A partition
//! without a reachable leader answers LEADER_NOT_AVAILABLE with leader -1, and replicas on
//! brokers that are not live (fenced or unregistered) are listed offline, as in Kafka.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use isthmus_controller::image::BrokerRegistration;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataResponse, RequestKind, ResponseKind, TopicName};
use uuid::Uuid;

use super::{mismatched, text};
use crate::broker::Broker;
use crate::dispatch::{Reply, RequestContext};
use crate::metadata::names::validate_topic_name;
use crate::metadata::{Image, TopicRecord};
use crate::topics::{self, NewTopic};

/// Kafka's own internal topics; clients hide them from topic listings.
pub const INTERNAL_TOPICS: &[&str] = &["__consumer_offsets", "__transaction_state"];

/// Kafka's "authorized operations not requested" marker.
pub const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

pub fn handle(broker: &Arc<Broker>, header: &RequestContext, body: RequestKind) -> Reply {
    let RequestKind::Metadata(req) = body else {
        return mismatched("Metadata");
    };
    let version = header.request_api_version;
    let allow_create =
        broker.node.auto_create_topics && (version < 4 || req.allow_auto_topic_creation);
    let image = broker.metadata.image();
    let live = live_brokers(broker, &image);
    let live_ids: BTreeSet<i32> = live.iter().map(|b| b.id).collect();
    let describe = |t: &TopicRecord| describe(&image, &live_ids, t);
    let topics: Vec<MetadataResponseTopic> = match req.topics {
        // v0: an empty list means every topic; v1+: null means every topic.
        None => image.topics.values().map(|t| describe(t)).collect(),
        Some(list) if list.is_empty() && version == 0 => {
            image.topics.values().map(|t| describe(t)).collect()
        }
        Some(list) => list
            .into_iter()
            // Clients that ask by id send a null name; treat an empty one the same way.
            .map(|wanted| {
                match (
                    wanted
                        .name
                        .filter(|n| !n.0.is_empty() || wanted.topic_id.is_nil()),
                    wanted.topic_id,
                ) {
                    (Some(name), _) => by_name(broker, &name.0, allow_create, &describe),
                    (None, id) if !id.is_nil() => match image.topic_by_id(id) {
                        Some(t) => describe(t),
                        None => error_topic(None, id, ResponseError::UnknownTopicId),
                    },
                    (None, id) => error_topic(None, id, ResponseError::InvalidRequest),
                }
            })
            .collect(),
    };
    let brokers = live
        .into_iter()
        .map(|b| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.id))
                .with_host(text(b.host))
                .with_port(b.port as i32)
                .with_rack(b.rack.map(text))
        })
        .collect();
    let response = MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(text(broker.cluster_id.clone())))
        // As a KRaft broker does: clients send admin requests to the "controller" they
        // are told, and any live broker forwards them to the quorum, so name this one (the
        // quorum's leader may be a controller-only node, or dead a moment ago).
        .with_controller_id(BrokerId(broker.node_id()))
        .with_topics(topics)
        .with_cluster_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED);
    Reply::Now(ResponseKind::Metadata(response))
}

fn by_name(
    broker: &Arc<Broker>,
    name: &str,
    allow_create: bool,
    describe: &dyn Fn(&TopicRecord) -> MetadataResponseTopic,
) -> MetadataResponseTopic {
    if let Some(t) = broker.metadata.image().topic(name) {
        return describe(t);
    }
    if validate_topic_name(name).is_err() {
        return error_topic(
            Some(name),
            Uuid::nil(),
            ResponseError::InvalidTopicException,
        );
    }
    if !allow_create {
        return error_topic(
            Some(name),
            Uuid::nil(),
            ResponseError::UnknownTopicOrPartition,
        );
    }
    let new = NewTopic {
        name: name.to_string(),
        partitions: -1,
        replication_factor: -1,
        assignments: Vec::new(),
        configs: BTreeMap::new(),
    };
    match topics::create(broker, new, false) {
        Ok(record) => describe(&record),
        Err(e) => match broker.metadata.image().topic(name) {
            // Created concurrently by another request: describe what is there.
            Some(t) => describe(t),
            None => error_topic(Some(name), Uuid::nil(), e.response_error()),
        },
    }
}

/// A broker as Metadata and DescribeCluster report it.
pub struct LiveBroker {
    pub id: i32,
    pub host: String,
    pub port: u16,
    pub rack: Option<String>,
}

/// The unfenced brokers of `image` at their endpoint of the listener clients use here (this
/// node always, at its advertised address).
pub fn live_brokers(broker: &Broker, image: &Image) -> Vec<LiveBroker> {
    let me = broker.node_id();
    let (host, port) = broker.endpoint();
    let mut out = vec![LiveBroker {
        id: me,
        host,
        port,
        rack: broker.rack().map(String::from),
    }];
    for b in image.brokers.values() {
        if b.broker_id == me || b.fenced {
            continue;
        }
        out.extend(client_endpoint(b, broker.listener_name()));
    }
    out.sort_by_key(|b| b.id);
    out
}

/// `b` at its endpoint of the listener clients use here (else its first one); `None` for a
/// registration without endpoints.
pub fn client_endpoint(b: &BrokerRegistration, listener_name: &str) -> Option<LiveBroker> {
    let e = b
        .endpoints
        .iter()
        .find(|e| e.name == listener_name)
        .or_else(|| b.endpoints.first())?;
    Some(LiveBroker {
        id: b.broker_id,
        host: e.host.clone(),
        port: e.port,
        rack: b.rack.clone(),
    })
}

/// The active controller as clients are told (-1 while there is none).
pub fn controller_id(broker: &Broker) -> i32 {
    broker.metadata.active_controller()
}

/// One topic as clients see it; `live` are the brokers listed in the response.
fn describe(image: &Image, live: &BTreeSet<i32>, topic: &TopicRecord) -> MetadataResponseTopic {
    let partitions = topic
        .partition_states
        .iter()
        .enumerate()
        .map(|(index, p)| {
            let offline: Vec<BrokerId> = p
                .replicas
                .iter()
                .filter(|r| image.brokers.get(r).is_none_or(|b| b.fenced))
                .copied()
                .map(BrokerId)
                .collect();
            // A leader the client cannot reach (none, or not live) is no leader: it gets
            // LEADER_NOT_AVAILABLE and asks again, instead of a broker id it has no address for.
            let leader = if live.contains(&p.leader) {
                p.leader
            } else {
                -1
            };
            let base = MetadataResponsePartition::default()
                .with_partition_index(index as i32)
                .with_leader_id(BrokerId(leader))
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(p.replicas.iter().copied().map(BrokerId).collect())
                .with_isr_nodes(p.isr.iter().copied().map(BrokerId).collect())
                .with_offline_replicas(offline);
            if leader < 0 {
                base.with_error_code(ResponseError::LeaderNotAvailable.code())
            } else {
                base
            }
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(text(topic.name.clone()))))
        .with_topic_id(topic.id)
        .with_is_internal(INTERNAL_TOPICS.contains(&topic.name.as_str()))
        .with_partitions(partitions)
        .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
}

fn error_topic(name: Option<&str>, id: Uuid, error: ResponseError) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(error.code())
        .with_name(name.map(|n| TopicName(text(n.to_string()))))
        .with_topic_id(id)
        .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
}
