//! DescribeCluster: the cluster id, the active controller (the quorum's leader) and the
//! unfenced brokers of the metadata image.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterResponse, RequestKind, ResponseKind};

use super::metadata::{controller_id, live_brokers, AUTHORIZED_OPERATIONS_OMITTED};
use super::{mismatched, text};
use crate::broker::Broker;
use crate::dispatch::{Reply, RequestContext};

/// DescribeCluster v1+ `endpoint_type`: 1 = brokers, 2 = controllers.
const ENDPOINT_TYPE_BROKERS: i8 = 1;

pub fn handle(broker: &Arc<Broker>, _header: &RequestContext, body: RequestKind) -> Reply {
    let RequestKind::DescribeCluster(req) = body else {
        return mismatched("DescribeCluster");
    };
    if req.endpoint_type != ENDPOINT_TYPE_BROKERS && req.endpoint_type != 0 {
        let response = DescribeClusterResponse::default()
            .with_error_code(ResponseError::UnsupportedEndpointType.code())
            .with_error_message(Some(text("only broker endpoints can be described")))
            .with_endpoint_type(req.endpoint_type);
        return Reply::Now(ResponseKind::DescribeCluster(response));
    }
    let brokers = live_brokers(broker, &broker.metadata.image())
        .into_iter()
        .map(|b| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(b.id))
                .with_host(text(b.host))
                .with_port(b.port as i32)
                .with_rack(b.rack.map(text))
        })
        .collect();
    let response = DescribeClusterResponse::default()
        .with_endpoint_type(ENDPOINT_TYPE_BROKERS)
        .with_cluster_id(text(broker.cluster_id.clone()))
        .with_controller_id(BrokerId(controller_id(broker)))
        .with_brokers(brokers)
        .with_cluster_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED);
    Reply::Now(ResponseKind::DescribeCluster(response))
}
