//! A short, seeded fuzz run in the normal test suite: valid requests and record batches,
//! mutated many ways (bit flips, truncation, splices, huge length fields), fed through the
//! same entry points as the cargo-fuzz targets in `fuzz/`. Any panic fails the test.

use bytes::{BufMut, Bytes, BytesMut};
use indexmap::IndexMap;
use isthmus_protocol::batch::check_untrusted;
use isthmus_protocol::codec::decode_untrusted;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, Request, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

const MUTATIONS_PER_SEED: usize = 4_000;

/// xorshift64*: deterministic, so a failure reproduces from the seed in the message.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn encode<R: Request>(request: &R, version: i16) -> Vec<u8> {
    let api_key = ApiKey::try_from(R::KEY).unwrap();
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("fuzz")));
    let mut buf = BytesMut::new();
    header
        .encode(&mut buf, api_key.request_header_version(version))
        .unwrap();
    request.encode(&mut buf, version).unwrap();
    buf.to_vec()
}

fn batch(compression: Compression, count: usize) -> Bytes {
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id: 7,
            producer_epoch: 0,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32,
            timestamp: 1_700_000_000_000 + i as i64,
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::from(vec![b'v'; 20 + i])),
            headers: IndexMap::from([(
                StrBytes::from_static_str("h"),
                Some(Bytes::from_static(b"x")),
            )]),
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

fn seeds() -> Vec<Vec<u8>> {
    let topic = |s: &'static str| TopicName(StrBytes::from_static_str(s));
    let records = batch(Compression::None, 5);
    let mut out = vec![
        encode(&ApiVersionsRequest::default(), 3),
        encode(
            &MetadataRequest::default().with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(topic("t")))
            ])),
            12,
        ),
        encode(&MetadataRequest::default().with_topics(None), 4),
        encode(
            &ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(1000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(topic("t"))
                    .with_partition_data(vec![PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(records.clone()))])]),
            9,
        ),
        encode(
            &ProduceRequest::default()
                .with_acks(1)
                .with_timeout_ms(1000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(topic("t"))
                    .with_partition_data(vec![PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(records))])]),
            3,
        ),
        encode(
            &FetchRequest::default()
                .with_max_wait_ms(100)
                .with_topics(vec![FetchTopic::default()
                    .with_topic(topic("t"))
                    .with_partitions(vec![FetchPartition::default()
                        .with_fetch_offset(3)
                        .with_partition_max_bytes(1 << 20)])]),
            12,
        ),
        encode(
            &CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
                .with_name(topic("t"))
                .with_num_partitions(3)
                .with_replication_factor(1)
                .with_configs(vec![CreatableTopicConfig::default()
                    .with_name(StrBytes::from_static_str("retention.ms"))
                    .with_value(Some(StrBytes::from_static_str("1000")))])]),
            7,
        ),
    ];
    for c in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        out.push(batch(c, 3).to_vec());
    }
    out
}

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(6) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 => v.truncate(rng.below(v.len() + 1)),
            2 if v.len() >= 4 => {
                // A length-like field claiming a huge size.
                let i = rng.below(v.len() - 3);
                let huge: [i32; 4] = [i32::MAX, -2, 0x7fff_fff0, 1 << 24];
                v[i..i + 4].copy_from_slice(&huge[rng.below(4)].to_be_bytes());
            }
            3 => {
                let i = rng.below(v.len() + 1);
                let extra: Vec<u8> = (0..rng.below(16)).map(|_| rng.next() as u8).collect();
                v.splice(i..i, extra);
            }
            4 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = 0xff;
            }
            _ => {
                let i = rng.below(v.len() + 1);
                v.truncate(i);
                let mut tail = BytesMut::new();
                tail.put_u32(rng.next() as u32);
                v.extend_from_slice(&tail);
            }
        }
    }
    v
}

#[test]
fn mutated_requests_and_batches_never_panic() {
    let mut decoded = 0usize;
    let mut refused = 0usize;
    for (n, seed) in seeds().iter().enumerate() {
        assert!(
            decode_untrusted(seed).is_some() || check_untrusted(seed),
            "seed {n} must be valid"
        );
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ n as u64);
        for round in 0..MUTATIONS_PER_SEED {
            let input = mutate(&mut rng, seed);
            let result = std::panic::catch_unwind(|| {
                (decode_untrusted(&input).is_some(), check_untrusted(&input))
            });
            match result {
                Ok((true, _)) | Ok((_, true)) => decoded += 1,
                Ok(_) => refused += 1,
                Err(_) => panic!("seed {n} mutation {round} panicked; input: {input:?}"),
            }
        }
    }
    // The run must exercise both outcomes, or it is not testing anything.
    assert!(
        decoded > 100 && refused > 100,
        "decoded {decoded}, refused {refused}"
    );
}
