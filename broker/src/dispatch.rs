//! The one table of implemented APIs. Requests are routed by it and the ApiVersions answer
//! is generated from it, so the broker advertises exactly what it handles.

use std::sync::Arc;

use futures::future::BoxFuture;
use std::net::SocketAddr;
use std::ops::Deref;

use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseKind};
use kafka_protocol::protocol::VersionRange;

use crate::broker::Broker;
use crate::handlers;

/// What a handler gives back. Work whose order matters (appends) is done before the handler
/// returns; what may take time (fsync, replication, long polls) is left in the future, so
/// later requests on the same connection can start while earlier ones wait.
// One Reply is built and moved once per request; boxing the common case would only add an
// allocation.
#[allow(clippy::large_enum_variant)]
pub enum Reply {
    Now(ResponseKind),
    Later(BoxFuture<'static, ResponseKind>),
    /// acks=0 produce: Kafka sends no response at all.
    Nothing,
    /// The request cannot be answered; close the connection (as Kafka does for malformed input).
    Close(String),
}

/// A request's header plus where it came from (DescribeGroups reports a member's host).
pub struct RequestContext {
    pub header: RequestHeader,
    pub peer: SocketAddr,
}

impl RequestContext {
    /// The client id, "" when the client sent none.
    pub fn client_id_text(&self) -> String {
        self.header
            .client_id
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default()
    }

    /// The client's address as Kafka reports group members' hosts ("/1.2.3.4").
    pub fn client_host(&self) -> String {
        format!("/{}", self.peer.ip())
    }
}

impl Deref for RequestContext {
    type Target = RequestHeader;
    fn deref(&self) -> &RequestHeader {
        &self.header
    }
}

pub type Handler = fn(&Arc<Broker>, &RequestContext, RequestKind) -> Reply;

pub struct Api {
    pub key: ApiKey,
    pub versions: VersionRange,
    pub handler: Handler,
}

/// Kafka 4.0 dropped Produce v0-v2 but still advertises v0 as the minimum, because older
/// librdkafka releases refuse a broker whose Produce minimum is above 0 (KAFKA-18659).
/// Requests below the real minimum are still refused.
pub const PRODUCE_ADVERTISED_MIN_VERSION: i16 = 0;

/// The crate's version range for `key` (Kafka 4.x floors), optionally capped where a newer
/// version's semantics are not implemented.
const fn versions(min: i16, max: i16) -> VersionRange {
    VersionRange { min, max }
}

pub static APIS: &[Api] = &[
    Api {
        key: ApiKey::Produce,
        versions: versions(3, 13),
        handler: handlers::produce::handle,
    },
    Api {
        key: ApiKey::Fetch,
        versions: versions(4, 18),
        handler: handlers::fetch::handle,
    },
    Api {
        key: ApiKey::ListOffsets,
        versions: versions(1, 10),
        handler: handlers::list_offsets::handle,
    },
    Api {
        key: ApiKey::Metadata,
        versions: versions(0, 13),
        handler: handlers::metadata::handle,
    },
    Api {
        key: ApiKey::ApiVersions,
        versions: versions(0, 4),
        handler: handlers::api_versions::handle,
    },
    Api {
        key: ApiKey::CreateTopics,
        versions: versions(2, 7),
        handler: handlers::create_topics::handle,
    },
    Api {
        key: ApiKey::DeleteTopics,
        versions: versions(1, 6),
        handler: handlers::delete_topics::handle,
    },
    Api {
        key: ApiKey::DeleteRecords,
        versions: versions(0, 2),
        handler: handlers::delete_records::handle,
    },
    Api {
        key: ApiKey::InitProducerId,
        versions: versions(0, 5),
        handler: handlers::init_producer_id::handle,
    },
    Api {
        key: ApiKey::OffsetForLeaderEpoch,
        versions: versions(2, 4),
        handler: handlers::offset_for_leader_epoch::handle,
    },
    Api {
        key: ApiKey::DescribeConfigs,
        versions: versions(1, 4),
        handler: handlers::configs::describe,
    },
    Api {
        key: ApiKey::AlterConfigs,
        versions: versions(0, 2),
        handler: handlers::configs::alter,
    },
    Api {
        key: ApiKey::IncrementalAlterConfigs,
        versions: versions(0, 1),
        handler: handlers::configs::incremental_alter,
    },
    Api {
        key: ApiKey::DescribeLogDirs,
        versions: versions(1, 4),
        handler: handlers::describe_log_dirs::handle,
    },
    Api {
        key: ApiKey::CreatePartitions,
        versions: versions(0, 3),
        handler: handlers::create_partitions::handle,
    },
    Api {
        key: ApiKey::DescribeCluster,
        versions: versions(0, 2),
        handler: handlers::describe_cluster::handle,
    },
    Api {
        key: ApiKey::ElectLeaders,
        versions: versions(0, 2),
        handler: handlers::forwarded::elect_leaders,
    },
    Api {
        key: ApiKey::AlterPartitionReassignments,
        versions: versions(0, 1),
        handler: handlers::forwarded::alter_partition_reassignments,
    },
    Api {
        key: ApiKey::ListPartitionReassignments,
        versions: versions(0, 0),
        handler: handlers::forwarded::list_partition_reassignments,
    },
    Api {
        key: ApiKey::DescribeQuorum,
        versions: versions(0, 2),
        handler: handlers::describe_quorum::handle,
    },
    Api {
        key: ApiKey::FindCoordinator,
        versions: versions(0, 6),
        handler: handlers::find_coordinator::handle,
    },
    Api {
        key: ApiKey::JoinGroup,
        versions: versions(0, 9),
        handler: handlers::join_group::handle,
    },
    Api {
        key: ApiKey::SyncGroup,
        versions: versions(0, 5),
        handler: handlers::sync_group::handle,
    },
    Api {
        key: ApiKey::Heartbeat,
        versions: versions(0, 4),
        handler: handlers::heartbeat::handle,
    },
    Api {
        key: ApiKey::LeaveGroup,
        versions: versions(0, 5),
        handler: handlers::leave_group::handle,
    },
    Api {
        key: ApiKey::OffsetCommit,
        versions: versions(2, 9),
        handler: handlers::offset_commit::handle,
    },
    Api {
        key: ApiKey::OffsetFetch,
        versions: versions(1, 9),
        handler: handlers::offset_fetch::handle,
    },
    Api {
        key: ApiKey::DescribeGroups,
        versions: versions(0, 6),
        handler: handlers::describe_groups::handle,
    },
    Api {
        key: ApiKey::ListGroups,
        versions: versions(0, 5),
        handler: handlers::list_groups::handle,
    },
    Api {
        key: ApiKey::DeleteGroups,
        versions: versions(0, 2),
        handler: handlers::delete_groups::handle,
    },
    Api {
        key: ApiKey::OffsetDelete,
        versions: versions(0, 0),
        handler: handlers::offset_delete::handle,
    },
    Api {
        key: ApiKey::ConsumerGroupHeartbeat,
        versions: versions(0, 1),
        handler: handlers::consumer_group_heartbeat::handle,
    },
    Api {
        key: ApiKey::ConsumerGroupDescribe,
        versions: versions(0, 1),
        handler: handlers::consumer_group_describe::handle,
    },
];

pub fn find(api_key: i16) -> Option<&'static Api> {
    APIS.iter().find(|a| a.key as i16 == api_key)
}

impl Api {
    /// The range ApiVersions announces.
    pub fn advertised(&self) -> VersionRange {
        match self.key {
            ApiKey::Produce => VersionRange {
                min: PRODUCE_ADVERTISED_MIN_VERSION,
                max: self.versions.max,
            },
            _ => self.versions,
        }
    }

    pub fn supports(&self, version: i16) -> bool {
        version >= self.versions.min && version <= self.versions.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_implemented_api_has_a_name_for_logs() {
        for api in APIS {
            assert_ne!(
                isthmus_protocol::codec::api_name(api.key),
                "request",
                "{:?} needs a name in protocol::codec::api_name",
                api.key
            );
        }
    }

    #[test]
    fn table_stays_inside_what_the_codec_can_decode() {
        for api in APIS {
            let codec = api.key.valid_versions();
            assert!(
                api.versions.min >= codec.min && api.versions.max <= codec.max,
                "{:?}: table {:?} outside codec {:?}",
                api.key,
                api.versions,
                codec
            );
            assert_eq!(
                APIS.iter().filter(|a| a.key == api.key).count(),
                1,
                "{:?} listed twice",
                api.key
            );
        }
    }
}
