//! DescribeCluster: the cluster id, the active controller (the quorum's leader) and the
//! unfenced brokers of the metadata image; with v2's `include_fenced_brokers` also the
//! fenced registered ones, marked `is_fenced`, so operators see a broker that is down or
//! lost its session instead of it silently disappearing.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterResponse, RequestKind, ResponseKind};

use super::metadata::{
    client_endpoint, controller_id, live_brokers, LiveBroker, AUTHORIZED_OPERATIONS_OMITTED,
};
use super::{mismatched, text};
use crate::broker::Broker;
use crate::dispatch::{Reply, RequestContext};
use crate::metadata::Image;

/// DescribeCluster v1+ `endpoint_type`: 1 = brokers, 2 = controllers.
const ENDPOINT_TYPE_BROKERS: i8 = 1;
/// The first version with `include_fenced_brokers` and `is_fenced`.
const FENCED_BROKERS_MIN_VERSION: i16 = 2;

pub fn handle(broker: &Arc<Broker>, header: &RequestContext, body: RequestKind) -> Reply {
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
    let include_fenced =
        header.request_api_version >= FENCED_BROKERS_MIN_VERSION && req.include_fenced_brokers;
    let image = broker.metadata.image();
    let brokers = listed_brokers(
        live_brokers(broker, &image),
        &image,
        broker.node_id(),
        broker.listener_name(),
        include_fenced,
    )
    .into_iter()
    .map(|(b, fenced)| {
        DescribeClusterBroker::default()
            .with_broker_id(BrokerId(b.id))
            .with_host(text(b.host))
            .with_port(i32::from(b.port))
            .with_rack(b.rack.map(text))
            .with_is_fenced(fenced)
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

/// The brokers to report, by id, each with whether it is fenced: the `live` ones, plus with
/// `include_fenced` every fenced registration of `image`. This node is always listed (it is
/// answering); with `include_fenced` it is marked fenced when its registration is, as Kafka
/// reports it.
fn listed_brokers(
    live: Vec<LiveBroker>,
    image: &Image,
    me: i32,
    listener_name: &str,
    include_fenced: bool,
) -> Vec<(LiveBroker, bool)> {
    let fenced_in_image = |id: i32| image.brokers.get(&id).is_some_and(|b| b.fenced);
    let mut out: Vec<(LiveBroker, bool)> = live
        .into_iter()
        .map(|b| {
            let fenced = include_fenced && b.id == me && fenced_in_image(me);
            (b, fenced)
        })
        .collect();
    if include_fenced {
        for b in image.brokers.values() {
            if b.fenced && b.broker_id != me && !out.iter().any(|(l, _)| l.id == b.broker_id) {
                out.extend(client_endpoint(b, listener_name).map(|l| (l, true)));
            }
        }
    }
    out.sort_by_key(|(b, _)| b.id);
    out
}

#[cfg(test)]
mod tests {
    use isthmus_controller::image::BrokerRegistration;
    use isthmus_controller::records::BrokerEndpoint;
    use uuid::Uuid;

    use super::*;

    fn registration(id: i32, fenced: bool) -> BrokerRegistration {
        BrokerRegistration {
            broker_id: id,
            incarnation_id: Uuid::nil(),
            broker_epoch: 1,
            rack: Some(format!("rack-{id}")),
            endpoints: vec![
                BrokerEndpoint {
                    name: "INTERNAL".into(),
                    host: "10.0.0.1".into(),
                    port: 9094,
                    security_protocol: "PLAINTEXT".into(),
                },
                BrokerEndpoint {
                    name: "PLAINTEXT".into(),
                    host: format!("broker-{id}"),
                    port: 9092,
                    security_protocol: "PLAINTEXT".into(),
                },
            ],
            fenced,
            in_controlled_shutdown: false,
        }
    }

    fn live(id: i32) -> LiveBroker {
        LiveBroker {
            id,
            host: format!("broker-{id}"),
            port: 9092,
            rack: None,
        }
    }

    #[test]
    fn fenced_brokers_only_when_asked() {
        let mut image = Image::default();
        for (id, fenced) in [(1, true), (2, false), (3, true)] {
            image.brokers.insert(id, registration(id, fenced));
        }
        let summary = |include_fenced| {
            listed_brokers(
                vec![live(1), live(2)],
                &image,
                1,
                "PLAINTEXT",
                include_fenced,
            )
            .into_iter()
            .map(|(b, fenced)| (b.id, b.host, fenced))
            .collect::<Vec<_>>()
        };
        assert_eq!(
            summary(false),
            vec![(1, "broker-1".into(), false), (2, "broker-2".into(), false)]
        );
        assert_eq!(
            summary(true),
            vec![
                (1, "broker-1".into(), true),
                (2, "broker-2".into(), false),
                (3, "broker-3".into(), true),
            ],
            "fenced brokers at their client listener, this node marked as its registration says"
        );
    }
}
