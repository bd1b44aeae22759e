//! Request decoding and response encoding.
//!
//! Decoding happens in two steps so the broker can refuse an unknown api key or an
//! unsupported version (which decides the header layout) before it parses anything else.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::error::ProtocolError;
use crate::frame::{FRAME_PREFIX_BYTES, MIN_REQUEST_BYTES};
use crate::shared_buf::{SharingBuf, SHARE_MIN_BYTES};
use kafka_protocol::protocol::buf::ByteBufMut;

/// The fixed first fields of every request header, readable in any version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preamble {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
}

/// Reads api key, version and correlation id without decoding the rest.
pub fn peek_preamble(body: &[u8]) -> Result<Preamble, ProtocolError> {
    if body.len() < MIN_REQUEST_BYTES {
        return Err(ProtocolError::Malformed {
            what: "request header",
            reason: format!("{} bytes, need at least {MIN_REQUEST_BYTES}", body.len()),
        });
    }
    Ok(Preamble {
        api_key: i16::from_be_bytes([body[0], body[1]]),
        api_version: i16::from_be_bytes([body[2], body[3]]),
        correlation_id: i32::from_be_bytes([body[4], body[5], body[6], body[7]]),
    })
}

/// A fully decoded request.
#[derive(Debug)]
pub struct Request {
    pub header: RequestHeader,
    pub api_key: ApiKey,
    pub body: RequestKind,
}

/// Decodes header and body of a request whose api key and version the caller has already
/// accepted. Record data inside the body stays a slice of `body`: no copy.
pub fn decode_request(
    mut body: Bytes,
    api_key: ApiKey,
    version: i16,
) -> Result<Request, ProtocolError> {
    let header_version = api_key.request_header_version(version);
    let header =
        RequestHeader::decode(&mut body, header_version).map_err(|e| ProtocolError::Malformed {
            what: "request header",
            reason: e.to_string(),
        })?;
    let request =
        RequestKind::decode(api_key, &mut body, version).map_err(|e| ProtocolError::Malformed {
            what: api_name(api_key),
            reason: e.to_string(),
        })?;
    Ok(Request {
        header,
        api_key,
        body: request,
    })
}

/// Decodes a frame body from an untrusted source exactly as the broker does, for whatever api
/// key and version it names (the fuzz targets' entry point). `None` when it is refused.
pub fn decode_untrusted(body: &[u8]) -> Option<Request> {
    let preamble = peek_preamble(body).ok()?;
    let api_key = ApiKey::try_from(preamble.api_key).ok()?;
    let range = api_key.valid_versions();
    if preamble.api_version < range.min || preamble.api_version > range.max {
        return None;
    }
    decode_request(Bytes::copy_from_slice(body), api_key, preamble.api_version).ok()
}

/// Encodes a response, size prefix included, ready to write to the socket.
pub fn encode_response(
    correlation_id: i32,
    api_key: ApiKey,
    version: i16,
    body: &ResponseKind,
) -> Result<Bytes, ProtocolError> {
    let encode_err = encode_error(api_key);
    let (header, header_version, header_size) = response_header(correlation_id, api_key, version)?;
    let size = header_size + response_size(body, version).map_err(encode_err)?;
    let mut out = BytesMut::with_capacity(FRAME_PREFIX_BYTES + size);
    out.put_i32(0);
    header
        .encode(&mut out, header_version)
        .map_err(encode_err)?;
    body.encode(&mut out, version).map_err(encode_err)?;
    let len = (out.len() - FRAME_PREFIX_BYTES) as i32;
    out[..FRAME_PREFIX_BYTES].copy_from_slice(&len.to_be_bytes());
    Ok(out.freeze())
}

/// Like [`encode_response`], as chunks to send in order with one vectored write: the record
/// data of a Fetch response stays in the `Bytes` the log handed out (slices of segment maps)
/// instead of being copied into the response buffer.
pub fn encode_response_chunks(
    correlation_id: i32,
    api_key: ApiKey,
    version: i16,
    body: &ResponseKind,
) -> Result<Vec<Bytes>, ProtocolError> {
    let ResponseKind::Fetch(fetch) = body else {
        return encode_response(correlation_id, api_key, version, body).map(|b| vec![b]);
    };
    let encode_err = encode_error(api_key);
    let (header, header_version, header_size) = response_header(correlation_id, api_key, version)?;
    let size = header_size + fetch.compute_size(version).map_err(encode_err)?;
    let records = || {
        fetch
            .responses
            .iter()
            .flat_map(|t| &t.partitions)
            .filter_map(|p| p.records.as_ref())
    };
    let record_bytes: usize = records()
        .map(Bytes::len)
        .filter(|&len| len >= SHARE_MIN_BYTES)
        .sum();
    let mut out = SharingBuf::with_capacity(FRAME_PREFIX_BYTES + size.saturating_sub(record_bytes));
    records().for_each(|r| out.share(r));
    let frame_len = i32::try_from(size).map_err(|_| ProtocolError::Encode {
        what: api_name(api_key),
        reason: format!("{size} bytes do not fit a frame"),
    })?;
    out.put_i32(frame_len);
    header
        .encode(&mut out, header_version)
        .map_err(encode_err)?;
    fetch.encode(&mut out, version).map_err(encode_err)?;
    // The length went out first, so the encoder must have written exactly what it
    // computed; if it ever did not, the contiguous encoding (length written last) is safe.
    if out.offset() - FRAME_PREFIX_BYTES != size {
        return encode_response(correlation_id, api_key, version, body).map(|b| vec![b]);
    }
    Ok(out.into_chunks())
}

/// The response header for `correlation_id`, its version for `api_key` v`version`, and its
/// encoded size.
fn response_header(
    correlation_id: i32,
    api_key: ApiKey,
    version: i16,
) -> Result<(ResponseHeader, i16, usize), ProtocolError> {
    let header_version = api_key.response_header_version(version);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let size = header
        .compute_size(header_version)
        .map_err(encode_error(api_key))?;
    Ok((header, header_version, size))
}

fn encode_error(api_key: ApiKey) -> impl Fn(anyhow::Error) -> ProtocolError + Copy {
    move |e| ProtocolError::Encode {
        what: api_name(api_key),
        reason: e.to_string(),
    }
}

/// Size hint for the output buffer; a wrong hint only costs a reallocation.
fn response_size(body: &ResponseKind, version: i16) -> anyhow::Result<usize> {
    match body {
        ResponseKind::Fetch(r) => r.compute_size(version),
        ResponseKind::Produce(r) => r.compute_size(version),
        _ => Ok(256),
    }
}

/// Kafka's name for an api, for logs and error messages.
pub fn api_name(api_key: ApiKey) -> &'static str {
    match api_key {
        ApiKey::Produce => "Produce",
        ApiKey::Fetch => "Fetch",
        ApiKey::ListOffsets => "ListOffsets",
        ApiKey::Metadata => "Metadata",
        ApiKey::ApiVersions => "ApiVersions",
        ApiKey::CreateTopics => "CreateTopics",
        ApiKey::DeleteTopics => "DeleteTopics",
        ApiKey::CreatePartitions => "CreatePartitions",
        ApiKey::DescribeConfigs => "DescribeConfigs",
        ApiKey::AlterConfigs => "AlterConfigs",
        ApiKey::IncrementalAlterConfigs => "IncrementalAlterConfigs",
        ApiKey::DescribeCluster => "DescribeCluster",
        ApiKey::InitProducerId => "InitProducerId",
        ApiKey::DeleteRecords => "DeleteRecords",
        ApiKey::OffsetForLeaderEpoch => "OffsetForLeaderEpoch",
        ApiKey::DescribeLogDirs => "DescribeLogDirs",
        ApiKey::FindCoordinator => "FindCoordinator",
        ApiKey::JoinGroup => "JoinGroup",
        ApiKey::SyncGroup => "SyncGroup",
        ApiKey::Heartbeat => "Heartbeat",
        ApiKey::LeaveGroup => "LeaveGroup",
        ApiKey::OffsetCommit => "OffsetCommit",
        ApiKey::OffsetFetch => "OffsetFetch",
        ApiKey::DescribeGroups => "DescribeGroups",
        ApiKey::ListGroups => "ListGroups",
        ApiKey::DeleteGroups => "DeleteGroups",
        ApiKey::OffsetDelete => "OffsetDelete",
        ApiKey::ConsumerGroupHeartbeat => "ConsumerGroupHeartbeat",
        ApiKey::ConsumerGroupDescribe => "ConsumerGroupDescribe",
        ApiKey::DescribeQuorum => "DescribeQuorum",
        ApiKey::ElectLeaders => "ElectLeaders",
        ApiKey::AlterPartitionReassignments => "AlterPartitionReassignments",
        ApiKey::ListPartitionReassignments => "ListPartitionReassignments",
        ApiKey::BrokerRegistration => "BrokerRegistration",
        ApiKey::BrokerHeartbeat => "BrokerHeartbeat",
        ApiKey::AlterPartition => "AlterPartition",
        _ => "request",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiVersionsRequest, MetadataRequest};
    use kafka_protocol::protocol::StrBytes;

    fn encode_request(header: &RequestHeader, body: &RequestKind, api_key: ApiKey) -> Bytes {
        let mut buf = BytesMut::new();
        header
            .encode(
                &mut buf,
                api_key.request_header_version(header.request_api_version),
            )
            .unwrap();
        body.encode(&mut buf, header.request_api_version).unwrap();
        buf.freeze()
    }

    #[test]
    fn decodes_flexible_and_non_flexible_headers() {
        for version in [1i16, 9, 12] {
            let header = RequestHeader::default()
                .with_request_api_key(ApiKey::Metadata as i16)
                .with_request_api_version(version)
                .with_correlation_id(42)
                .with_client_id(Some(StrBytes::from_static_str("test")));
            let body = RequestKind::Metadata(MetadataRequest::default().with_topics(None));
            let bytes = encode_request(&header, &body, ApiKey::Metadata);
            let pre = peek_preamble(&bytes).unwrap();
            assert_eq!(
                pre,
                Preamble {
                    api_key: 3,
                    api_version: version,
                    correlation_id: 42
                }
            );
            let req = decode_request(bytes, ApiKey::Metadata, version).unwrap();
            assert_eq!(req.header.client_id.as_deref(), Some("test"));
            assert!(matches!(req.body, RequestKind::Metadata(_)));
        }
    }

    #[test]
    fn truncated_body_is_an_error_not_a_panic() {
        let header = RequestHeader::default()
            .with_request_api_key(ApiKey::ApiVersions as i16)
            .with_request_api_version(3)
            .with_correlation_id(7);
        let body = RequestKind::ApiVersions(
            ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("name"))
                .with_client_software_version(StrBytes::from_static_str("1.0")),
        );
        let bytes = encode_request(&header, &body, ApiKey::ApiVersions);
        for cut in 0..bytes.len() {
            let _ = decode_request(bytes.slice(..cut), ApiKey::ApiVersions, 3);
        }
        assert!(decode_request(bytes.slice(..bytes.len() - 2), ApiKey::ApiVersions, 3).is_err());
    }

    #[test]
    fn huge_array_length_does_not_allocate_what_it_claims() {
        // Metadata v1: header v1 then topics array with a claimed length of i32::MAX.
        let mut buf = BytesMut::new();
        buf.put_i16(ApiKey::Metadata as i16);
        buf.put_i16(1);
        buf.put_i32(1);
        buf.put_i16(-1); // null client id
        buf.put_i32(i32::MAX);
        assert!(decode_request(buf.freeze(), ApiKey::Metadata, 1).is_err());
    }

    #[test]
    fn response_carries_size_prefix_and_correlation_id() {
        let body = ResponseKind::ApiVersions(Default::default());
        let bytes = encode_response(99, ApiKey::ApiVersions, 3, &body).unwrap();
        let len = i32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
        assert_eq!(len, bytes.len() - 4);
        assert_eq!(i32::from_be_bytes(bytes[4..8].try_into().unwrap()), 99);
    }

    fn fetch_response(records: &[Bytes]) -> ResponseKind {
        use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
        use kafka_protocol::messages::{FetchResponse, TopicName};
        let partitions = records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                PartitionData::default()
                    .with_partition_index(i as i32)
                    .with_high_watermark(1000 + i as i64)
                    .with_records(Some(r.clone()))
            })
            .collect();
        ResponseKind::Fetch(FetchResponse::default().with_responses(
            vec![FetchableTopicResponse::default()
                .with_topic(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(partitions)],
        ))
    }

    #[test]
    fn chunked_fetch_response_equals_the_contiguous_one_without_copying_records() {
        let big: Vec<Bytes> = (0..3u8)
            .map(|i| Bytes::from(vec![i; 10_000 + i as usize]))
            .collect();
        let mut records = big.clone();
        records.push(Bytes::from_static(b"small"));
        let body = fetch_response(&records);
        for version in 4..=ApiKey::Fetch.valid_versions().max {
            let whole = encode_response(5, ApiKey::Fetch, version, &body).unwrap();
            let chunks = encode_response_chunks(5, ApiKey::Fetch, version, &body).unwrap();
            let joined: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
            assert_eq!(joined, whole.as_ref(), "version {version}");
            for b in &big {
                assert!(
                    chunks.iter().any(|c| c.as_ptr() == b.as_ptr()),
                    "version {version}: a record buffer was copied"
                );
            }
        }
    }

    #[test]
    fn chunked_encoding_of_other_responses_is_one_chunk() {
        let body = ResponseKind::ApiVersions(Default::default());
        let chunks = encode_response_chunks(1, ApiKey::ApiVersions, 3, &body).unwrap();
        assert_eq!(chunks.len(), 1);
        assert_eq!(
            chunks[0],
            encode_response(1, ApiKey::ApiVersions, 3, &body).unwrap()
        );
    }
}
