//! The records inside v2 batches, for compaction and the compacted-topic key check.
//!
//! Compressed bodies are inflated and deflated with the codecs `kafka-protocol` bundles
//! (gzip, snappy in Kafka's xerial framing, lz4 frames, zstd). Records are split without
//! copying; a batch is rebuilt from a subset of its records by copying each record's key,
//! value and headers verbatim, so nothing a producer wrote is re-interpreted.
//!
//! Everything here runs on bytes that may be damaged: every length is checked and errors
//! are returned as messages, never panics.

use std::borrow::Cow;

use bytes::{Bytes, BytesMut};
use isthmus_protocol::batch::{
    self, BatchHeader, Compression, RecordsSummary, TimestampType, HEADER_SIZE, LOG_OVERHEAD,
    MAGIC_V2, NO_TIMESTAMP,
};
use isthmus_protocol::kafka_protocol::compression::{
    Compressor, Decompressor, Gzip, Lz4, Snappy, Zstd,
};

use crate::error::StorageError;

/// Attribute bit 6 (KIP-534): the batch's `baseTimestamp` is its delete horizon.
pub(crate) const DELETE_HORIZON_BIT: i16 = 0x40;
const COMPRESSION_MASK: i16 = 0x07;
const CRC_AT: usize = 17;

/// One record of an uncompressed body, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawRecord<'a> {
    pub(crate) attributes: u8,
    pub(crate) timestamp_delta: i64,
    pub(crate) offset_delta: i32,
    pub(crate) key: Option<&'a [u8]>,
    pub(crate) is_tombstone: bool,
    /// Key, value and headers exactly as stored.
    tail: &'a [u8],
}

/// The uncompressed records body of a whole batch `batch` (borrowed when not compressed).
pub(crate) fn body<'a>(batch: &'a [u8], h: &BatchHeader) -> Result<Cow<'a, [u8]>, String> {
    let raw = batch
        .get(HEADER_SIZE..h.size())
        .ok_or("batch shorter than its length")?;
    let inflated = match h.compression().ok_or("unknown compression codec")? {
        Compression::None => return Ok(Cow::Borrowed(raw)),
        Compression::Gzip => inflate::<Gzip>(raw),
        Compression::Snappy => inflate::<Snappy>(raw),
        Compression::Lz4 => inflate::<Lz4>(raw),
        Compression::Zstd => inflate::<Zstd>(raw),
    }?;
    Ok(Cow::Owned(Vec::from(inflated)))
}

fn inflate<D: Decompressor<Bytes, Buf = Bytes>>(raw: &[u8]) -> Result<Bytes, String> {
    let mut input = Bytes::copy_from_slice(raw);
    D::decompress(&mut input, |out| Ok(std::mem::take(out)))
        .map_err(|e| format!("cannot decompress records: {e:#}"))
}

fn deflate<C: Compressor<Vec<u8>, BufMut = BytesMut>>(
    body: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), String> {
    C::compress(out, |tmp| {
        tmp.extend_from_slice(body);
        Ok(())
    })
    .map_err(|e| format!("cannot compress records: {e:#}"))
}

fn read_varlong(buf: &[u8], pos: &mut usize) -> Option<i64> {
    let mut raw: u64 = 0;
    for i in 0..10 {
        let b = *buf.get(*pos)?;
        *pos += 1;
        raw |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some(((raw >> 1) as i64) ^ -((raw & 1) as i64));
        }
    }
    None
}

fn read_varint(buf: &[u8], pos: &mut usize) -> Option<i32> {
    read_varlong(buf, pos).and_then(|v| i32::try_from(v).ok())
}

fn write_varlong(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// A length-prefixed field; length -1 is null when `nullable`.
fn bytes_field<'a>(
    rec: &'a [u8],
    pos: &mut usize,
    nullable: bool,
) -> Result<Option<&'a [u8]>, String> {
    let len = read_varint(rec, pos).ok_or("bad length varint")?;
    if len == -1 && nullable {
        return Ok(None);
    }
    let len = usize::try_from(len).map_err(|_| format!("negative length {len}"))?;
    let end = pos.checked_add(len).ok_or("length overflow")?;
    let bytes = rec.get(*pos..end).ok_or("field runs past the record")?;
    *pos = end;
    Ok(Some(bytes))
}

fn parse_record(rec: &[u8]) -> Result<RawRecord<'_>, String> {
    let attributes = *rec.first().ok_or("empty record")?;
    let mut pos = 1;
    let timestamp_delta = read_varlong(rec, &mut pos).ok_or("bad timestampDelta")?;
    let offset_delta = read_varint(rec, &mut pos).ok_or("bad offsetDelta")?;
    let tail_start = pos;
    let key = bytes_field(rec, &mut pos, true)?;
    let value = bytes_field(rec, &mut pos, true)?;
    let headers = read_varint(rec, &mut pos).ok_or("bad header count")?;
    let headers = usize::try_from(headers).map_err(|_| "negative header count")?;
    if headers > rec.len() {
        return Err("header count exceeds the record size".into());
    }
    for _ in 0..headers {
        bytes_field(rec, &mut pos, false)?;
        bytes_field(rec, &mut pos, true)?;
    }
    if pos != rec.len() {
        return Err("record length does not match its fields".into());
    }
    Ok(RawRecord {
        attributes,
        timestamp_delta,
        offset_delta,
        key,
        is_tombstone: value.is_none(),
        tail: &rec[tail_start..],
    })
}

/// Splits an uncompressed body into its `count` records. Offset deltas must strictly
/// increase (compaction relies on it to keep batches valid).
pub(crate) fn parse_records(body: &[u8], count: i32) -> Result<Vec<RawRecord<'_>>, String> {
    let count = usize::try_from(count).map_err(|_| format!("negative record count {count}"))?;
    if count > body.len() {
        return Err(format!(
            "{count} records cannot fit in {} bytes",
            body.len()
        ));
    }
    let mut out = Vec::with_capacity(count);
    let mut pos = 0;
    for i in 0..count {
        let len = read_varint(body, &mut pos).ok_or("bad record length")?;
        let len = usize::try_from(len).map_err(|_| "negative record length")?;
        let rec = pos
            .checked_add(len)
            .and_then(|end| body.get(pos..end))
            .ok_or("record runs past the batch")?;
        pos += len;
        let r = parse_record(rec).map_err(|e| format!("record {i}: {e}"))?;
        if out
            .last()
            .is_some_and(|p: &RawRecord<'_>| p.offset_delta >= r.offset_delta)
            || r.offset_delta < 0
        {
            return Err(format!("record {i}: offset deltas do not increase"));
        }
        out.push(r);
    }
    if pos != body.len() {
        return Err("bytes left after the last record".into());
    }
    Ok(out)
}

/// Compacted topics take only keyed records (Kafka answers INVALID_RECORD otherwise).
/// `summary` is what [`batch::validate_records`] found for an uncompressed batch;
/// compressed ones are inflated here.
pub(crate) fn require_keys(
    batch: &[u8],
    h: &BatchHeader,
    summary: Option<&RecordsSummary>,
) -> Result<(), StorageError> {
    let all_keyed = match summary {
        Some(s) => s.all_keys_present,
        None => {
            let body = body(batch, h).map_err(StorageError::CorruptMessage)?;
            parse_records(&body, h.records_count)
                .map_err(StorageError::InvalidRecord)?
                .iter()
                .all(|r| r.key.is_some())
        }
    };
    if all_keyed {
        Ok(())
    } else {
        Err(StorageError::InvalidRecord(
            "compacted topic cannot accept a record without a key".into(),
        ))
    }
}

/// Appends to `out` a copy of batch `h` holding only `kept` (its records, in order),
/// the way Kafka's cleaner rewrites a batch: base offset, `lastOffsetDelta`, producer
/// id/epoch, base sequence, leader epoch and codec are the original ones, so the
/// producer's last sequence and the batch's offset span survive; each record keeps its
/// offset delta. `base_timestamp` becomes the batch's (record timestamp deltas are
/// re-based on it); with `delete_horizon` it is the KIP-534 delete horizon. An empty
/// `kept` gives Kafka's empty batch: uncompressed, `baseTimestamp` -1, original
/// `maxTimestamp`.
pub(crate) fn rebuild_batch(
    h: &BatchHeader,
    kept: &[&RawRecord<'_>],
    base_timestamp: i64,
    delete_horizon: bool,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let empty = kept.is_empty();
    let codec = if empty {
        Compression::None
    } else {
        h.compression().ok_or("unknown compression codec")?
    };
    let base_timestamp = if empty { NO_TIMESTAMP } else { base_timestamp };
    let mut body = Vec::new();
    let mut max_ts: Option<i64> = None;
    let mut head = Vec::with_capacity(16);
    for r in kept {
        let ts = h.base_timestamp.wrapping_add(r.timestamp_delta);
        max_ts = Some(max_ts.map_or(ts, |m| m.max(ts)));
        head.clear();
        head.push(r.attributes);
        write_varlong(&mut head, ts.wrapping_sub(base_timestamp));
        write_varlong(&mut head, i64::from(r.offset_delta));
        write_varlong(&mut body, (head.len() + r.tail.len()) as i64);
        body.extend_from_slice(&head);
        body.extend_from_slice(r.tail);
    }
    let max_timestamp = match max_ts {
        Some(ts) if h.timestamp_type() == TimestampType::CreateTime => ts,
        _ => h.max_timestamp,
    };
    let mut attributes =
        (h.attributes & !COMPRESSION_MASK & !DELETE_HORIZON_BIT) | i16::from(codec.id());
    if delete_horizon && !empty {
        attributes |= DELETE_HORIZON_BIT;
    }
    let start = out.len();
    out.extend_from_slice(&h.base_offset.to_be_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&h.partition_leader_epoch.to_be_bytes());
    out.push(MAGIC_V2 as u8);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&attributes.to_be_bytes());
    out.extend_from_slice(&h.last_offset_delta.to_be_bytes());
    out.extend_from_slice(&base_timestamp.to_be_bytes());
    out.extend_from_slice(&max_timestamp.to_be_bytes());
    out.extend_from_slice(&h.producer_id.to_be_bytes());
    out.extend_from_slice(&h.producer_epoch.to_be_bytes());
    out.extend_from_slice(&h.base_sequence.to_be_bytes());
    out.extend_from_slice(&(kept.len() as i32).to_be_bytes());
    let written = match codec {
        Compression::None => {
            out.extend_from_slice(&body);
            Ok(())
        }
        Compression::Gzip => deflate::<Gzip>(&body, out),
        Compression::Snappy => deflate::<Snappy>(&body, out),
        Compression::Lz4 => deflate::<Lz4>(&body, out),
        Compression::Zstd => deflate::<Zstd>(&body, out),
    };
    if let Err(e) = written {
        out.truncate(start);
        return Err(e);
    }
    let Ok(length) = i32::try_from(out.len() - start - LOG_OVERHEAD) else {
        out.truncate(start);
        return Err("rebuilt batch is larger than 2 GiB".into());
    };
    out[start + 8..start + 12].copy_from_slice(&length.to_be_bytes());
    let crc = batch::compute_crc(&out[start..]);
    out[start + CRC_AT..start + CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use isthmus_protocol::batch::{BatchBuilder, Validation};

    fn sample() -> Vec<u8> {
        BatchBuilder::new(100)
            .producer(7, 2, 40)
            .record(1_000, Some(b"a"), Some(b"1"), &[(b"h", Some(b"x"))])
            .record(1_005, None, Some(b"2"), &[])
            .record(990, Some(b"c"), None, &[])
            .build()
    }

    #[test]
    fn parse_and_rebuild_keeps_offsets_and_producer_fields() {
        let b = sample();
        let h = BatchHeader::parse(&b).unwrap();
        let body = body(&b, &h).unwrap();
        let recs = parse_records(&body, h.records_count).unwrap();
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[1].key, None);
        assert!(recs[2].is_tombstone);
        let kept = [&recs[2]];
        let mut out = Vec::new();
        rebuild_batch(&h, &kept, 50_000, true, &mut out).unwrap();
        let info = batch::batches(&out, Validation::Stored)
            .next()
            .unwrap()
            .unwrap();
        let nh = info.header;
        assert_eq!(nh.base_offset, 100);
        assert_eq!(nh.last_offset(), 102);
        assert_eq!(nh.base_sequence, 40);
        assert_eq!((nh.producer_id, nh.producer_epoch), (7, 2));
        assert_eq!(nh.records_count, 1);
        assert_eq!(nh.base_timestamp, 50_000);
        assert_eq!(nh.max_timestamp, 990);
        assert_ne!(nh.attributes & DELETE_HORIZON_BIT, 0);
        let r: Vec<_> = batch::records(&out).unwrap().map(Result::unwrap).collect();
        assert_eq!(r[0].offset_delta, 2);
        assert_eq!(nh.base_timestamp + r[0].timestamp_delta, 990);
        assert_eq!(r[0].key, Some(&b"c"[..]));
        assert_eq!(r[0].value, None);
        // Empty: Kafka's empty batch keeps the span and the producer fields.
        out.clear();
        rebuild_batch(&h, &[], 0, true, &mut out).unwrap();
        let nh = BatchHeader::parse(&out).unwrap();
        assert_eq!(
            (nh.records_count, nh.last_offset(), nh.base_sequence),
            (0, 102, 40)
        );
        assert_eq!((nh.base_timestamp, nh.max_timestamp), (-1, 1_005));
        assert_eq!(nh.attributes & DELETE_HORIZON_BIT, 0);
        assert_eq!(batch::compute_crc(&out), nh.crc);
    }

    #[test]
    fn damaged_bodies_are_errors_not_panics() {
        let b = sample();
        let h = BatchHeader::parse(&b).unwrap();
        let body = body(&b, &h).unwrap().into_owned();
        for cut in 0..body.len() {
            assert!(parse_records(&body[..cut], 3).is_err());
        }
        for i in 0..body.len() {
            for bit in [0x01, 0x40, 0x80] {
                let mut bad = body.clone();
                bad[i] ^= bit;
                let _ = parse_records(&bad, 3);
            }
        }
        assert!(parse_records(&body, -1).is_err());
        assert!(parse_records(&body, i32::MAX).is_err());
        let mut gz = b.clone();
        gz[22] |= 1; // claims gzip: the body is not gzip data
        let gh = BatchHeader::parse(&gz).unwrap();
        assert!(super::body(&gz, &gh).is_err());
    }

    /// A batch `sample()`'s header with codec `codec` and body `body`.
    fn with_body(codec: i16, body: &[u8]) -> Vec<u8> {
        let mut b = sample()[..HEADER_SIZE].to_vec();
        b[22] = (b[22] & !7) | codec as u8;
        b.extend_from_slice(body);
        let len = (b.len() - 12) as i32;
        b[8..12].copy_from_slice(&len.to_be_bytes());
        b
    }

    #[test]
    fn decompression_is_bounded() {
        // Raw snappy whose header claims 1 GiB: refused before anything is allocated.
        let bomb = with_body(2, &[0x80, 0x80, 0x80, 0x80, 0x04, 0, 0, 0]);
        let h = BatchHeader::parse(&bomb).unwrap();
        let err = body(&bomb, &h).unwrap_err();
        assert!(err.contains("claims"), "{err}");
        // zstd that really inflates past the bound stops there.
        use isthmus_protocol::kafka_protocol::compression::{
            Compressor, Zstd, MAX_DECOMPRESSED_BYTES,
        };
        let mut compressed = Vec::new();
        Zstd::compress(&mut compressed, |tmp: &mut bytes::BytesMut| {
            tmp.resize(MAX_DECOMPRESSED_BYTES + 1, 0);
            Ok(())
        })
        .unwrap();
        assert!(compressed.len() < 64 << 10, "{}", compressed.len());
        let bomb = with_body(4, &compressed);
        let h = BatchHeader::parse(&bomb).unwrap();
        let err = body(&bomb, &h).unwrap_err();
        assert!(err.contains("larger than"), "{err}");
    }

    #[test]
    fn keyless_records_are_refused() {
        let b = sample();
        let h = BatchHeader::parse(&b).unwrap();
        assert!(matches!(
            require_keys(&b, &h, None),
            Err(StorageError::InvalidRecord(_))
        ));
        let ok = BatchBuilder::new(0)
            .record(1, Some(b"k"), Some(b"v"), &[])
            .build();
        let oh = BatchHeader::parse(&ok).unwrap();
        require_keys(&ok, &oh, None).unwrap();
    }
}
