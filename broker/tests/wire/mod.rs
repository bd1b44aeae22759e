//! A minimal blocking Kafka wire client for tests that must send exactly the bytes they
//! choose: malformed frames, bad batches, skipped sequences. Real clients cover the rest.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use indexmap::IndexMap;
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

pub struct Wire {
    pub stream: TcpStream,
    correlation_id: i32,
}

impl Wire {
    pub fn connect(bootstrap: &str) -> Wire {
        let stream = TcpStream::connect(bootstrap).expect("connect to broker");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        Wire {
            stream,
            correlation_id: 0,
        }
    }

    /// Sends a typed request at `version` and decodes the typed response.
    pub fn call<R: Request>(&mut self, version: i16, request: &R) -> R::Response {
        self.send(version, request);
        self.receive::<R>(version)
    }

    pub fn send<R: Request>(&mut self, version: i16, request: &R) {
        self.correlation_id += 1;
        let api_key = ApiKey::try_from(R::KEY).unwrap();
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("wire-test")));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, api_key.request_header_version(version))
            .unwrap();
        request.encode(&mut body, version).unwrap();
        self.send_frame(&body);
    }

    pub fn receive<R: Request>(&mut self, version: i16) -> R::Response {
        let mut frame = self
            .read_frame()
            .expect("broker closed the connection instead of answering");
        let api_key = ApiKey::try_from(R::KEY).unwrap();
        let header_version = api_key.response_header_version(version);
        let header =
            kafka_protocol::messages::ResponseHeader::decode(&mut frame, header_version).unwrap();
        assert_eq!(
            header.correlation_id, self.correlation_id,
            "responses out of order"
        );
        R::Response::decode(&mut frame, version).unwrap()
    }

    /// Sends a well-formed request header for `api_key` at `version` followed by `body`
    /// as given (e.g. a request body cut short), in one correctly sized frame.
    pub fn send_truncated(&mut self, api_key: ApiKey, version: i16, body: &[u8]) {
        self.correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("wire-test")));
        let mut frame = BytesMut::new();
        header
            .encode(&mut frame, api_key.request_header_version(version))
            .unwrap();
        frame.put_slice(body);
        self.send_frame(&frame);
    }

    pub fn send_frame(&mut self, body: &[u8]) {
        let mut out = BytesMut::with_capacity(body.len() + 4);
        out.put_i32(body.len() as i32);
        out.put_slice(body);
        self.stream.write_all(&out).unwrap();
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    /// The next response frame, or None when the broker closed the connection.
    pub fn read_frame(&mut self) -> Option<Bytes> {
        let mut prefix = [0u8; 4];
        self.stream.read_exact(&mut prefix).ok()?;
        let len = i32::from_be_bytes(prefix) as usize;
        let mut body = vec![0u8; len];
        self.stream.read_exact(&mut body).ok()?;
        Some(Bytes::from(body))
    }

    /// True when the broker has closed the connection (EOF or reset).
    pub fn is_closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.stream.read(&mut byte), Ok(0) | Err(_))
    }
}

/// Produces `records` to one partition (Produce v9) and returns that partition's answer.
pub fn produce(
    w: &mut Wire,
    topic: &str,
    partition: i32,
    records: Bytes,
    acks: i16,
) -> kafka_protocol::messages::produce_response::PartitionProduceResponse {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ProduceRequest, TopicName};
    let r = w.call(
        9,
        &ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(records))])]),
    );
    r.responses[0].partition_responses[0].clone()
}

/// A v2 batch of `count` records with keys `k{i}`, idempotence fields as given.
pub fn batch(
    count: usize,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    compression: Compression,
) -> Bytes {
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: if producer_id >= 0 {
                base_sequence + i as i32
            } else {
                -1
            },
            timestamp: 1_700_000_000_000 + i as i64,
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(format!("value-{i}"))),
            headers: IndexMap::new(),
            delete_horizon: false,
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .unwrap();
    buf.freeze()
}

/// Reads the base offset out of a batch header.
pub fn base_offset(batch: &[u8]) -> i64 {
    (&batch[..8]).get_i64()
}
