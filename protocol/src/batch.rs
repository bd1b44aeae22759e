//! Kafka v2 record batches viewed in place over raw bytes.
//!
//! A Produce request's `records` field and a segment file are both a run of batches laid
//! end to end. This module reads and checks them without copying:
//!
//! - [`BatchHeader`]: the 61-byte header, big-endian, parsed from a slice.
//! - [`batches`]: an iterator over a buffer of batches that stops with a precise
//!   [`ProtocolError`] on the first bad one ([`Validation`] picks how strict).
//! - [`ValidPrefix`]: the crash-recovery scan, which stops silently at the first torn,
//!   corrupt or zero-length batch and tells how many bytes were good.
//! - [`records`] / [`validate_records`]: walk the records of an uncompressed batch;
//!   [`check_untrusted`] runs every check (the fuzzing entry point).
//! - [`set_base_offset`], [`set_partition_leader_epoch`], [`set_max_timestamp`],
//!   [`set_log_append_time`]: in-place rewrites that keep the CRC valid.
//! - [`BatchBuilder`]: builds uncompressed batches (tests, control records, tools).
//!
//! The layout (`DefaultRecordBatch` in Kafka):
//!
//! ```text
//! 0  baseOffset i64        8  batchLength i32      12 partitionLeaderEpoch i32
//! 16 magic i8              17 crc u32              21 attributes i16
//! 23 lastOffsetDelta i32   27 baseTimestamp i64    35 maxTimestamp i64
//! 43 producerId i64        51 producerEpoch i16    53 baseSequence i32
//! 57 recordsCount i32      61 records...
//! ```
//!
//! The CRC (CRC32C) covers bytes `[21..end)`, so the base offset and the partition leader
//! epoch, which the broker assigns, can be rewritten without recomputing it.

use std::ops::Range;

use crate::error::ProtocolError;

/// Size of the v2 batch header, records excluded.
pub const HEADER_SIZE: usize = 61;
/// Bytes before `batchLength` counts: baseOffset and batchLength itself.
pub const LOG_OVERHEAD: usize = 12;
/// The only message format accepted.
pub const MAGIC_V2: i8 = 2;
/// `producerId` of a batch written without idempotence.
pub const NO_PRODUCER_ID: i64 = -1;
/// `producerEpoch` of a batch written without idempotence.
pub const NO_PRODUCER_EPOCH: i16 = -1;
/// `baseSequence` of a batch written without idempotence.
pub const NO_SEQUENCE: i32 = -1;
/// A missing timestamp.
pub const NO_TIMESTAMP: i64 = -1;
/// `partitionLeaderEpoch` before the broker stamps one.
pub const NO_PARTITION_LEADER_EPOCH: i32 = -1;

const BASE_OFFSET_AT: usize = 0;
const BATCH_LENGTH_AT: usize = 8;
const LEADER_EPOCH_AT: usize = 12;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;
const LAST_OFFSET_DELTA_AT: usize = 23;
const BASE_TIMESTAMP_AT: usize = 27;
const MAX_TIMESTAMP_AT: usize = 35;
const PRODUCER_ID_AT: usize = 43;
const PRODUCER_EPOCH_AT: usize = 51;
const BASE_SEQUENCE_AT: usize = 53;
const RECORDS_COUNT_AT: usize = 57;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 0x08;
const TRANSACTIONAL_BIT: i16 = 0x10;
const CONTROL_BIT: i16 = 0x20;

/// Compression codec named by the low three attribute bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// The codec for an attribute id, `None` for ids Kafka never defined (5..=7).
    pub fn from_id(id: u8) -> Option<Self> {
        match id {
            0 => Some(Self::None),
            1 => Some(Self::Gzip),
            2 => Some(Self::Snappy),
            3 => Some(Self::Lz4),
            4 => Some(Self::Zstd),
            _ => None,
        }
    }

    /// The attribute id of this codec.
    pub fn id(self) -> u8 {
        match self {
            Self::None => 0,
            Self::Gzip => 1,
            Self::Snappy => 2,
            Self::Lz4 => 3,
            Self::Zstd => 4,
        }
    }
}

/// What a batch's timestamps mean (attribute bit 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimestampType {
    /// Set by the producer.
    #[default]
    CreateTime,
    /// Set by the broker on append; every record's timestamp is the batch `maxTimestamp`.
    LogAppendTime,
}

/// The fixed header of a v2 record batch. Parsing does not validate; see [`batches`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

fn i16_at(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn i64_at(b: &[u8], at: usize) -> i64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(x)
}

impl BatchHeader {
    /// Reads the header at the start of `buf` without checking any field.
    pub fn parse(buf: &[u8]) -> Result<Self, ProtocolError> {
        if buf.len() < HEADER_SIZE {
            return Err(ProtocolError::BatchTruncated {
                position: 0,
                needed: HEADER_SIZE,
                available: buf.len(),
            });
        }
        Ok(Self {
            base_offset: i64_at(buf, BASE_OFFSET_AT),
            batch_length: i32_at(buf, BATCH_LENGTH_AT),
            partition_leader_epoch: i32_at(buf, LEADER_EPOCH_AT),
            magic: buf[MAGIC_AT] as i8,
            crc: u32_at(buf, CRC_AT),
            attributes: i16_at(buf, ATTRIBUTES_AT),
            last_offset_delta: i32_at(buf, LAST_OFFSET_DELTA_AT),
            base_timestamp: i64_at(buf, BASE_TIMESTAMP_AT),
            max_timestamp: i64_at(buf, MAX_TIMESTAMP_AT),
            producer_id: i64_at(buf, PRODUCER_ID_AT),
            producer_epoch: i16_at(buf, PRODUCER_EPOCH_AT),
            base_sequence: i32_at(buf, BASE_SEQUENCE_AT),
            records_count: i32_at(buf, RECORDS_COUNT_AT),
        })
    }

    /// The codec, or `None` for an undefined id.
    pub fn compression(&self) -> Option<Compression> {
        Compression::from_id((self.attributes & COMPRESSION_MASK) as u8)
    }

    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & TIMESTAMP_TYPE_BIT != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }

    /// Whether the batch came from an idempotent or transactional producer.
    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }

    /// Bytes the whole batch takes: `12 + batchLength` (0 length counts as 12).
    pub fn size(&self) -> usize {
        LOG_OVERHEAD + self.batch_length.max(0) as usize
    }

    /// Offset of the last record; saturates rather than overflow on a hostile header.
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(i64::from(self.last_offset_delta))
    }

    /// Offset one past the last record.
    pub fn next_offset(&self) -> i64 {
        self.last_offset().saturating_add(1)
    }

    /// Sequence of the last record. Sequences wrap from `i32::MAX` to 0, as in Kafka.
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence == NO_SEQUENCE {
            return NO_SEQUENCE;
        }
        let last = i64::from(self.base_sequence) + i64::from(self.last_offset_delta);
        if last > i64::from(i32::MAX) {
            (last - i64::from(i32::MAX) - 1) as i32
        } else {
            last as i32
        }
    }
}

/// CRC32C of a batch as stored in its header: over `[21..size)`.
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(batch.get(ATTRIBUTES_AT..).unwrap_or_default())
}

/// How much of a batch [`batches`] checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validation {
    /// Producer input: structure, magic, CRC, codec, and `recordsCount >= 1` with
    /// `lastOffsetDelta == recordsCount - 1`.
    Produce,
    /// Data that passed [`Validation::Produce`] once (replication, segment files):
    /// structure, magic, CRC and codec only, because compaction leaves batches whose
    /// record count is below their offset span (even empty ones).
    Stored,
}

/// One batch found in a buffer: its header and where it lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchInfo {
    pub header: BatchHeader,
    /// Byte position of the batch in the scanned buffer.
    pub position: usize,
}

impl BatchInfo {
    /// The batch's bytes in the scanned buffer.
    pub fn range(&self) -> Range<usize> {
        self.position..self.position + self.header.size()
    }
}

/// Checks the batch at the start of `buf` (which lies at `position` of the whole buffer).
fn check_batch(
    buf: &[u8],
    position: usize,
    validation: Validation,
    verify_crc: bool,
) -> Result<BatchHeader, ProtocolError> {
    // Magic sits at byte 16; reading it first lets old formats, whose headers are
    // shorter than v2's, get their own error rather than "truncated".
    if buf.len() <= MAGIC_AT {
        return Err(ProtocolError::BatchTruncated {
            position,
            needed: MAGIC_AT + 1,
            available: buf.len(),
        });
    }
    let magic = buf[MAGIC_AT] as i8;
    match magic {
        MAGIC_V2 => {}
        0 | 1 => return Err(ProtocolError::UnsupportedMagic { position, magic }),
        _ => return Err(ProtocolError::InvalidMagic { position, magic }),
    }
    let length = i32_at(buf, BATCH_LENGTH_AT);
    if length < (HEADER_SIZE - LOG_OVERHEAD) as i32 {
        return Err(ProtocolError::InvalidBatchLength { position, length });
    }
    let size = LOG_OVERHEAD + length as usize;
    if size > buf.len() {
        return Err(ProtocolError::BatchTruncated {
            position,
            needed: size,
            available: buf.len(),
        });
    }
    let bytes = &buf[..size];
    let header = BatchHeader::parse(bytes).map_err(|_| ProtocolError::BatchTruncated {
        position,
        needed: HEADER_SIZE,
        available: buf.len(),
    })?;
    if verify_crc {
        let computed = compute_crc(bytes);
        if computed != header.crc {
            return Err(ProtocolError::CrcMismatch {
                position,
                stored: header.crc,
                computed,
            });
        }
    }
    if header.compression().is_none() {
        return Err(ProtocolError::UnknownCompression {
            position,
            codec: (header.attributes & COMPRESSION_MASK) as u8,
        });
    }
    if header.last_offset_delta < 0 {
        return Err(ProtocolError::InvalidBatch {
            position,
            reason: format!("negative lastOffsetDelta {}", header.last_offset_delta),
        });
    }
    if validation == Validation::Produce {
        if header.records_count < 1 {
            return Err(ProtocolError::InvalidBatch {
                position,
                reason: format!("recordsCount {} is below 1", header.records_count),
            });
        }
        if header.last_offset_delta != header.records_count - 1 {
            return Err(ProtocolError::InvalidBatch {
                position,
                reason: format!(
                    "lastOffsetDelta {} does not match recordsCount {}",
                    header.last_offset_delta, header.records_count
                ),
            });
        }
    }
    Ok(header)
}

/// Iterates the batches of `buf`, yielding an error for the first invalid one and then
/// stopping. A buffer must end exactly at a batch boundary.
pub fn batches(buf: &[u8], validation: Validation) -> Batches<'_> {
    Batches {
        buf,
        position: 0,
        validation,
        done: false,
    }
}

/// See [`batches`].
#[derive(Debug, Clone)]
pub struct Batches<'a> {
    buf: &'a [u8],
    position: usize,
    validation: Validation,
    done: bool,
}

impl Iterator for Batches<'_> {
    type Item = Result<BatchInfo, ProtocolError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.position >= self.buf.len() {
            return None;
        }
        let position = self.position;
        match check_batch(&self.buf[position..], position, self.validation, true) {
            Ok(header) => {
                self.position += header.size();
                Some(Ok(BatchInfo { header, position }))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

impl std::iter::FusedIterator for Batches<'_> {}

/// Crash-recovery scan: yields batches while they are whole and valid
/// ([`Validation::Stored`]) and stops silently at the first one that is not. A batch
/// length of zero means preallocated, never-written space: the clean end of data.
#[derive(Debug)]
pub struct ValidPrefix<'a> {
    buf: &'a [u8],
    position: usize,
    verify_crc: bool,
    stop: Option<ProtocolError>,
    done: bool,
}

impl<'a> ValidPrefix<'a> {
    /// `verify_crc` false reads headers only (for data already verified once).
    pub fn new(buf: &'a [u8], verify_crc: bool) -> Self {
        Self {
            buf,
            position: 0,
            verify_crc,
            stop: None,
            done: false,
        }
    }

    /// Bytes of whole, valid batches yielded so far.
    pub fn valid_len(&self) -> usize {
        self.position
    }

    /// Why the scan stopped, if it stopped on damaged data rather than a clean end.
    pub fn stop_reason(&self) -> Option<&ProtocolError> {
        self.stop.as_ref()
    }
}

impl Iterator for ValidPrefix<'_> {
    type Item = BatchInfo;

    fn next(&mut self) -> Option<BatchInfo> {
        if self.done || self.position >= self.buf.len() {
            return None;
        }
        let rest = &self.buf[self.position..];
        if rest.len() >= LOG_OVERHEAD && i32_at(rest, BATCH_LENGTH_AT) == 0 {
            self.done = true;
            return None;
        }
        match check_batch(rest, self.position, Validation::Stored, self.verify_crc) {
            Ok(header) => {
                let info = BatchInfo {
                    header,
                    position: self.position,
                };
                self.position += header.size();
                Some(info)
            }
            Err(e) => {
                self.done = true;
                self.stop = Some(e);
                None
            }
        }
    }
}

impl std::iter::FusedIterator for ValidPrefix<'_> {}

fn header_mut(batch: &mut [u8]) -> Result<&mut [u8], ProtocolError> {
    let available = batch.len();
    batch
        .get_mut(..HEADER_SIZE)
        .ok_or(ProtocolError::BatchTruncated {
            position: 0,
            needed: HEADER_SIZE,
            available,
        })
}

/// Rewrites `baseOffset` (outside the CRC) of the batch at the start of `batch`.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) -> Result<(), ProtocolError> {
    header_mut(batch)?[BASE_OFFSET_AT..BASE_OFFSET_AT + 8]
        .copy_from_slice(&base_offset.to_be_bytes());
    Ok(())
}

/// Rewrites `partitionLeaderEpoch` (outside the CRC).
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) -> Result<(), ProtocolError> {
    header_mut(batch)?[LEADER_EPOCH_AT..LEADER_EPOCH_AT + 4].copy_from_slice(&epoch.to_be_bytes());
    Ok(())
}

/// Sets the timestamp type bit and `maxTimestamp`, then recomputes the CRC. `batch` must
/// hold the whole batch (its `batchLength` is trusted, so validate first).
pub fn set_max_timestamp(
    batch: &mut [u8],
    timestamp_type: TimestampType,
    max_timestamp: i64,
) -> Result<(), ProtocolError> {
    let header = BatchHeader::parse(batch)?;
    let size = header.size();
    if size < HEADER_SIZE || size > batch.len() {
        return Err(ProtocolError::BatchTruncated {
            position: 0,
            needed: size.max(HEADER_SIZE),
            available: batch.len(),
        });
    }
    let (head, rest) = batch[..size].split_at_mut(HEADER_SIZE);
    set_max_timestamp_split(head, rest, timestamp_type, max_timestamp)
}

/// [`set_max_timestamp`] on a header held apart from the rest of its batch, so a leader
/// can rewrite a copy of the 61 header bytes and write the untouched body as it arrived.
/// `rest` is the batch after its header.
pub fn set_max_timestamp_split(
    head: &mut [u8],
    rest: &[u8],
    timestamp_type: TimestampType,
    max_timestamp: i64,
) -> Result<(), ProtocolError> {
    let header = BatchHeader::parse(head)?;
    if header.size() != HEADER_SIZE + rest.len() {
        return Err(ProtocolError::BatchTruncated {
            position: 0,
            needed: header.size(),
            available: HEADER_SIZE + rest.len(),
        });
    }
    let attributes = match timestamp_type {
        TimestampType::CreateTime => header.attributes & !TIMESTAMP_TYPE_BIT,
        TimestampType::LogAppendTime => header.attributes | TIMESTAMP_TYPE_BIT,
    };
    head[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    head[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&max_timestamp.to_be_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&head[CRC_AT + 4..HEADER_SIZE]), rest);
    head[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(())
}

/// Stamps broker time (`message.timestamp.type=LogAppendTime`): sets the type bit and
/// `maxTimestamp` to `now_ms`, then recomputes the CRC.
pub fn set_log_append_time(batch: &mut [u8], now_ms: i64) -> Result<(), ProtocolError> {
    set_max_timestamp(batch, TimestampType::LogAppendTime, now_ms)
}

/// Reads a zigzag varint of at most `max_bytes` bytes (5 for i32, 10 for i64).
fn read_zigzag(buf: &[u8], pos: &mut usize, max_bytes: usize) -> Option<i64> {
    let mut raw: u64 = 0;
    for i in 0..max_bytes {
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
    read_zigzag(buf, pos, 5).and_then(|v| i32::try_from(v).ok())
}

fn read_varlong(buf: &[u8], pos: &mut usize) -> Option<i64> {
    read_zigzag(buf, pos, 10)
}

fn write_varlong(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// One record of an uncompressed batch, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordView<'a> {
    pub attributes: i8,
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub header_count: usize,
}

/// Iterates the records of an uncompressed batch; see [`records`].
#[derive(Debug, Clone)]
pub struct Records<'a> {
    data: &'a [u8],
    pos: usize,
    index: usize,
    count: usize,
    done: bool,
}

/// The records of the whole, validated, uncompressed batch `batch`. Fails for a
/// compressed batch: its records are only readable after decompression.
pub fn records(batch: &[u8]) -> Result<Records<'_>, ProtocolError> {
    let header = BatchHeader::parse(batch)?;
    let size = header.size();
    if size < HEADER_SIZE || size > batch.len() {
        return Err(ProtocolError::BatchTruncated {
            position: 0,
            needed: size.max(HEADER_SIZE),
            available: batch.len(),
        });
    }
    if header.compression() != Some(Compression::None) {
        return Err(ProtocolError::InvalidBatch {
            position: 0,
            reason: "records of a compressed batch cannot be walked in place".into(),
        });
    }
    Ok(Records {
        data: &batch[HEADER_SIZE..size],
        pos: 0,
        index: 0,
        count: header.records_count.max(0) as usize,
        done: false,
    })
}

impl<'a> Records<'a> {
    fn bad(&mut self, reason: &str) -> Option<Result<RecordView<'a>, ProtocolError>> {
        self.done = true;
        Some(Err(ProtocolError::InvalidRecord {
            index: self.index,
            reason: reason.to_string(),
        }))
    }

    /// A length-prefixed byte field; -1 is null when `nullable`.
    fn bytes_field(
        rec: &'a [u8],
        pos: &mut usize,
        nullable: bool,
    ) -> Result<Option<&'a [u8]>, &'static str> {
        let len = read_varint(rec, pos).ok_or("bad length varint")?;
        if len == -1 && nullable {
            return Ok(None);
        }
        let len = usize::try_from(len).map_err(|_| "negative length")?;
        let end = pos.checked_add(len).ok_or("length overflow")?;
        let bytes = rec.get(*pos..end).ok_or("field runs past the record")?;
        *pos = end;
        Ok(Some(bytes))
    }

    fn parse_record(rec: &'a [u8]) -> Result<RecordView<'a>, &'static str> {
        let mut pos = 0;
        let attributes = *rec.first().ok_or("empty record")? as i8;
        pos += 1;
        let timestamp_delta = read_varlong(rec, &mut pos).ok_or("bad timestampDelta")?;
        let offset_delta = read_varint(rec, &mut pos).ok_or("bad offsetDelta")?;
        let key = Self::bytes_field(rec, &mut pos, true)?;
        let value = Self::bytes_field(rec, &mut pos, true)?;
        let header_count = read_varint(rec, &mut pos).ok_or("bad header count")?;
        let header_count = usize::try_from(header_count).map_err(|_| "negative header count")?;
        if header_count > rec.len() {
            return Err("header count exceeds the record size");
        }
        for _ in 0..header_count {
            Self::bytes_field(rec, &mut pos, false)?;
            Self::bytes_field(rec, &mut pos, true)?;
        }
        if pos != rec.len() {
            return Err("record length does not match its fields");
        }
        Ok(RecordView {
            attributes,
            timestamp_delta,
            offset_delta,
            key,
            value,
            header_count,
        })
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<RecordView<'a>, ProtocolError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.index == self.count {
            if self.pos != self.data.len() {
                return self.bad("bytes left after recordsCount records");
            }
            self.done = true;
            return None;
        }
        let mut pos = self.pos;
        let Some(len) = read_varint(self.data, &mut pos) else {
            return self.bad("bad record length varint");
        };
        let Ok(len) = usize::try_from(len) else {
            return self.bad("negative record length");
        };
        let Some(rec) = pos.checked_add(len).and_then(|end| self.data.get(pos..end)) else {
            return self.bad("record runs past the batch");
        };
        match Self::parse_record(rec) {
            Ok(view) => {
                self.pos = pos + len;
                self.index += 1;
                Some(Ok(view))
            }
            Err(reason) => self.bad(reason),
        }
    }
}

/// What [`validate_records`] learned about an uncompressed batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordsSummary {
    pub count: usize,
    /// Largest `baseTimestamp + timestampDelta`; what `maxTimestamp` must say for CreateTime.
    pub max_timestamp: i64,
    /// Every record has a non-null key (required on compacted topics).
    pub all_keys_present: bool,
}

/// Walks every record of a whole, validated batch: lengths fit, offset deltas run
/// 0, 1, 2…, and the count matches `recordsCount`. Returns `None` for compressed batches,
/// which are not decompressed here (their CRC still covers them).
pub fn validate_records(batch: &[u8]) -> Result<Option<RecordsSummary>, ProtocolError> {
    let header = BatchHeader::parse(batch)?;
    if header.compression() != Some(Compression::None) {
        return Ok(None);
    }
    let mut summary = RecordsSummary {
        count: 0,
        max_timestamp: NO_TIMESTAMP,
        all_keys_present: true,
    };
    for (i, record) in records(batch)?.enumerate() {
        let record = record?;
        if i64::from(record.offset_delta) != i as i64 {
            return Err(ProtocolError::InvalidRecord {
                index: i,
                reason: format!("offsetDelta {} where {i} was expected", record.offset_delta),
            });
        }
        let ts = header.base_timestamp.saturating_add(record.timestamp_delta);
        summary.max_timestamp = if i == 0 {
            ts
        } else {
            summary.max_timestamp.max(ts)
        };
        summary.all_keys_present &= record.key.is_some();
        summary.count += 1;
    }
    if summary.count != header.records_count.max(0) as usize {
        return Err(ProtocolError::InvalidRecord {
            index: summary.count,
            reason: format!(
                "found {} records, header says {}",
                summary.count, header.records_count
            ),
        });
    }
    Ok(Some(summary))
}

/// Every check this module has, on untrusted bytes (a Produce request's `records`):
/// batch structure, magic, CRC, counts, and the records of uncompressed batches. The
/// fuzzing entry point; never panics.
pub fn check_untrusted(buf: &[u8]) -> bool {
    !buf.is_empty()
        && batches(buf, Validation::Produce)
            .all(|b| b.is_ok_and(|info| validate_records(&buf[info.range()]).is_ok()))
}

/// One record for [`BatchBuilder`].
#[derive(Debug, Clone, PartialEq, Eq)]
struct OwnedRecord {
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// Builds one uncompressed v2 batch. Offsets start at the base offset given to
/// [`BatchBuilder::new`]; the first record's timestamp becomes `baseTimestamp`.
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    base_offset: i64,
    partition_leader_epoch: i32,
    attributes: i16,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    records: Vec<OwnedRecord>,
}

impl BatchBuilder {
    pub fn new(base_offset: i64) -> Self {
        Self {
            base_offset,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            attributes: 0,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            base_sequence: NO_SEQUENCE,
            records: Vec::new(),
        }
    }

    /// Marks the batch as written by an idempotent producer.
    pub fn producer(mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Self {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }

    pub fn partition_leader_epoch(mut self, epoch: i32) -> Self {
        self.partition_leader_epoch = epoch;
        self
    }

    pub fn transactional(mut self, on: bool) -> Self {
        self.set_bit(TRANSACTIONAL_BIT, on);
        self
    }

    pub fn control(mut self, on: bool) -> Self {
        self.set_bit(CONTROL_BIT, on);
        self
    }

    pub fn timestamp_type(mut self, t: TimestampType) -> Self {
        self.set_bit(TIMESTAMP_TYPE_BIT, t == TimestampType::LogAppendTime);
        self
    }

    fn set_bit(&mut self, bit: i16, on: bool) {
        if on {
            self.attributes |= bit;
        } else {
            self.attributes &= !bit;
        }
    }

    /// Adds a record at the next offset.
    pub fn record(
        mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&[u8], Option<&[u8]>)],
    ) -> Self {
        self.records.push(OwnedRecord {
            timestamp,
            key: key.map(<[u8]>::to_vec),
            value: value.map(<[u8]>::to_vec),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
                .collect(),
        });
        self
    }

    /// Encodes the batch. An empty builder gives a batch with zero records (only valid
    /// as [`Validation::Stored`]).
    pub fn build(&self) -> Vec<u8> {
        let base_ts = self.records.first().map_or(NO_TIMESTAMP, |r| r.timestamp);
        let max_ts = self
            .records
            .iter()
            .map(|r| r.timestamp)
            .max()
            .unwrap_or(NO_TIMESTAMP);
        let mut body = Vec::new();
        let mut rec = Vec::new();
        for (i, r) in self.records.iter().enumerate() {
            rec.clear();
            rec.push(0);
            write_varlong(&mut rec, r.timestamp.wrapping_sub(base_ts));
            write_varlong(&mut rec, i as i64);
            let put = |rec: &mut Vec<u8>, b: &Option<Vec<u8>>| match b {
                None => write_varlong(rec, -1),
                Some(b) => {
                    write_varlong(rec, b.len() as i64);
                    rec.extend_from_slice(b);
                }
            };
            put(&mut rec, &r.key);
            put(&mut rec, &r.value);
            write_varlong(&mut rec, r.headers.len() as i64);
            for (k, v) in &r.headers {
                put(&mut rec, &Some(k.clone()));
                put(&mut rec, v);
            }
            write_varlong(&mut body, rec.len() as i64);
            body.extend_from_slice(&rec);
        }
        let count = self.records.len() as i32;
        let mut out = Vec::with_capacity(HEADER_SIZE + body.len());
        out.extend_from_slice(&self.base_offset.to_be_bytes());
        out.extend_from_slice(&((HEADER_SIZE - LOG_OVERHEAD + body.len()) as i32).to_be_bytes());
        out.extend_from_slice(&self.partition_leader_epoch.to_be_bytes());
        out.push(MAGIC_V2 as u8);
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&self.attributes.to_be_bytes());
        out.extend_from_slice(&(count - 1).max(0).to_be_bytes());
        out.extend_from_slice(&base_ts.to_be_bytes());
        out.extend_from_slice(&max_ts.to_be_bytes());
        out.extend_from_slice(&self.producer_id.to_be_bytes());
        out.extend_from_slice(&self.producer_epoch.to_be_bytes());
        out.extend_from_slice(&self.base_sequence.to_be_bytes());
        out.extend_from_slice(&count.to_be_bytes());
        out.extend_from_slice(&body);
        let crc = compute_crc(&out);
        out[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::{
        Compression as KCompression, Record, RecordBatchEncoder, RecordEncodeOptions,
        TimestampType as KTimestampType,
    };

    fn sample(base: i64, n: usize) -> Vec<u8> {
        let mut b = BatchBuilder::new(base).producer(7, 1, 100);
        for i in 0..n {
            let v = format!("value-{i}");
            b = b.record(
                1_000 + i as i64,
                Some(b"k"),
                Some(v.as_bytes()),
                &[(b"h", Some(b"x"))],
            );
        }
        b.build()
    }

    fn kafka_encoded(compression: KCompression, n: i64) -> Vec<u8> {
        let recs: Vec<Record> = (0..n)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: 42,
                producer_epoch: 3,
                timestamp_type: KTimestampType::Creation,
                offset: i,
                sequence: i as i32,
                timestamp: 5_000 + i,
                key: Some(bytes::Bytes::from(format!("key-{i}"))),
                value: Some(bytes::Bytes::from(vec![b'v'; 300])),
                headers: Default::default(),
            })
            .collect();
        let mut buf = bytes::BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &recs,
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .unwrap();
        buf.to_vec()
    }

    #[test]
    fn header_fields_and_accessors() {
        let b = sample(10, 3);
        let h = BatchHeader::parse(&b).unwrap();
        assert_eq!(h.base_offset, 10);
        assert_eq!(h.size(), b.len());
        assert_eq!(h.magic, 2);
        assert_eq!(h.records_count, 3);
        assert_eq!(h.last_offset(), 12);
        assert_eq!(h.last_sequence(), 102);
        assert_eq!(h.max_timestamp, 1_002);
        assert_eq!(h.base_timestamp, 1_000);
        assert_eq!(h.compression(), Some(Compression::None));
        assert_eq!(h.timestamp_type(), TimestampType::CreateTime);
        assert!(!h.is_transactional() && !h.is_control());
        assert_eq!(h.crc, compute_crc(&b));
        let t = BatchBuilder::new(0)
            .transactional(true)
            .control(true)
            .record(1, None, None, &[])
            .build();
        let h = BatchHeader::parse(&t).unwrap();
        assert!(h.is_transactional() && h.is_control());
        assert!(!h.has_producer_id());
    }

    #[test]
    fn last_sequence_wraps() {
        let b = BatchBuilder::new(0)
            .producer(1, 0, i32::MAX - 1)
            .record(1, None, Some(b"a"), &[])
            .record(1, None, Some(b"b"), &[])
            .record(1, None, Some(b"c"), &[])
            .build();
        assert_eq!(BatchHeader::parse(&b).unwrap().last_sequence(), 0);
    }

    #[test]
    fn iterates_concatenated_batches() {
        let mut buf = sample(0, 2);
        let second = sample(2, 5);
        buf.extend_from_slice(&second);
        let got: Vec<_> = batches(&buf, Validation::Produce)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].range(), buf.len() - second.len()..buf.len());
        assert_eq!(got[1].header.records_count, 5);
    }

    #[test]
    fn detects_crc_mismatch() {
        let mut buf = sample(0, 2);
        let last = buf.len() - 1;
        buf[last] ^= 0xff;
        match batches(&buf, Validation::Produce).next() {
            Some(Err(ProtocolError::CrcMismatch { position: 0, .. })) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn detects_truncation_and_bad_lengths() {
        let buf = sample(0, 2);
        for cut in [5, 20, HEADER_SIZE, buf.len() - 1] {
            let r = batches(&buf[..cut], Validation::Produce).next();
            assert!(
                matches!(r, Some(Err(ProtocolError::BatchTruncated { .. }))),
                "cut {cut}: {r:?}"
            );
        }
        let mut short = buf.clone();
        short[8..12].copy_from_slice(&10i32.to_be_bytes());
        assert!(matches!(
            batches(&short, Validation::Stored).next(),
            Some(Err(ProtocolError::InvalidBatchLength { length: 10, .. }))
        ));
        // Second batch torn: first is yielded, then the error, then nothing.
        let mut two = buf.clone();
        two.extend_from_slice(&buf[..buf.len() - 3]);
        let mut it = batches(&two, Validation::Produce);
        assert!(it.next().unwrap().is_ok());
        assert!(
            matches!(it.next(), Some(Err(ProtocolError::BatchTruncated { position, .. })) if position == buf.len())
        );
        assert!(it.next().is_none());
    }

    #[test]
    fn refuses_old_magic() {
        let mut buf = sample(0, 1);
        buf[MAGIC_AT] = 1;
        assert!(matches!(
            batches(&buf, Validation::Produce).next(),
            Some(Err(ProtocolError::UnsupportedMagic { magic: 1, .. }))
        ));
        // A v0 message set is shorter than a v2 header; it still gets the magic error.
        let mut v0 = vec![0u8; 26];
        v0[8..12].copy_from_slice(&14i32.to_be_bytes());
        assert!(matches!(
            batches(&v0, Validation::Produce).next(),
            Some(Err(ProtocolError::UnsupportedMagic { magic: 0, .. }))
        ));
        buf[MAGIC_AT] = 9;
        assert!(matches!(
            batches(&buf, Validation::Produce).next(),
            Some(Err(ProtocolError::InvalidMagic { magic: 9, .. }))
        ));
    }

    fn with_header_field(mut b: Vec<u8>, at: usize, v: &[u8]) -> Vec<u8> {
        b[at..at + v.len()].copy_from_slice(v);
        let crc = compute_crc(&b);
        b[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        b
    }

    #[test]
    fn produce_validation_checks_counts() {
        let b = with_header_field(sample(0, 3), RECORDS_COUNT_AT, &0i32.to_be_bytes());
        assert!(matches!(
            batches(&b, Validation::Produce).next(),
            Some(Err(ProtocolError::InvalidBatch { .. }))
        ));
        // Stored data may have fewer records than its offset span (compaction).
        assert!(batches(&b, Validation::Stored).next().unwrap().is_ok());
        let b = with_header_field(sample(0, 3), LAST_OFFSET_DELTA_AT, &5i32.to_be_bytes());
        assert!(matches!(
            batches(&b, Validation::Produce).next(),
            Some(Err(ProtocolError::InvalidBatch { .. }))
        ));
        let b = with_header_field(sample(0, 3), ATTRIBUTES_AT, &6i16.to_be_bytes());
        assert!(matches!(
            batches(&b, Validation::Stored).next(),
            Some(Err(ProtocolError::UnknownCompression { codec: 6, .. }))
        ));
    }

    #[test]
    fn validates_records() {
        let b = sample(0, 4);
        let s = validate_records(&b).unwrap().unwrap();
        assert_eq!(
            s,
            RecordsSummary {
                count: 4,
                max_timestamp: 1_003,
                all_keys_present: true
            }
        );
        let recs: Vec<_> = records(&b).unwrap().collect::<Result<_, _>>().unwrap();
        assert_eq!(recs[2].value, Some(&b"value-2"[..]));
        assert_eq!(recs[2].offset_delta, 2);
        assert_eq!(recs[2].header_count, 1);

        let nokey = BatchBuilder::new(0)
            .record(1, Some(b"a"), None, &[])
            .record(2, None, Some(b"b"), &[])
            .build();
        assert!(!validate_records(&nokey).unwrap().unwrap().all_keys_present);

        // Count says 5 but 4 records are present (lastOffsetDelta kept consistent).
        let mut wrong = with_header_field(sample(0, 4), RECORDS_COUNT_AT, &5i32.to_be_bytes());
        wrong = with_header_field(wrong, LAST_OFFSET_DELTA_AT, &4i32.to_be_bytes());
        assert!(matches!(
            validate_records(&wrong),
            Err(ProtocolError::InvalidRecord { .. })
        ));
        let fewer = with_header_field(sample(0, 4), RECORDS_COUNT_AT, &3i32.to_be_bytes());
        assert!(matches!(
            validate_records(&fewer),
            Err(ProtocolError::InvalidRecord { index: 3, .. })
        ));
    }

    #[test]
    fn rejects_bad_offset_delta_and_overlong_fields() {
        // Second record with offsetDelta 5: rebuild by editing the record bytes.
        let b = sample(0, 2);
        let mut pos = HEADER_SIZE;
        let len = read_varint(&b, &mut pos).unwrap() as usize;
        let second = pos + len;
        let mut p2 = second;
        read_varint(&b, &mut p2).unwrap();
        // attributes, then timestampDelta (1 byte: delta 1 => zigzag 2), then offsetDelta.
        let off_at = p2 + 2;
        assert_eq!(b[off_at], 2); // zigzag(1)
        let mut bad = b.clone();
        bad[off_at] = 10; // zigzag(5)
        assert!(matches!(
            validate_records(&bad),
            Err(ProtocolError::InvalidRecord { index: 1, .. })
        ));
        // Record length that runs past the batch.
        let mut bad = b.clone();
        bad[HEADER_SIZE] = 0x7e; // zigzag(63)
        assert!(validate_records(&bad).is_err());
        // Garbage everywhere in the records never panics.
        for i in HEADER_SIZE..b.len() {
            for v in [0x00, 0x7f, 0x80, 0xff] {
                let mut g = b.clone();
                g[i] = v;
                let _ = validate_records(&g);
            }
        }
    }

    #[test]
    fn rewrites_keep_crc_valid() {
        let mut b = sample(0, 3);
        set_base_offset(&mut b, 1_000).unwrap();
        set_partition_leader_epoch(&mut b, 17).unwrap();
        set_log_append_time(&mut b, 99_999).unwrap();
        let info = batches(&b, Validation::Produce).next().unwrap().unwrap();
        assert_eq!(info.header.base_offset, 1_000);
        assert_eq!(info.header.partition_leader_epoch, 17);
        assert_eq!(info.header.max_timestamp, 99_999);
        assert_eq!(info.header.timestamp_type(), TimestampType::LogAppendTime);
        assert!(set_base_offset(&mut b[..10], 1).is_err());
        assert!(set_log_append_time(&mut b[..70], 1).is_err());
    }

    #[test]
    fn kafka_encoded_batches_including_compressed() {
        for c in [
            KCompression::None,
            KCompression::Gzip,
            KCompression::Snappy,
            KCompression::Lz4,
            KCompression::Zstd,
        ] {
            let mut b = kafka_encoded(c, 20);
            let info = batches(&b, Validation::Produce).next().unwrap().unwrap();
            assert_eq!(
                info.header.compression().map(Compression::id),
                Some(c as u8)
            );
            assert_eq!(info.header.records_count, 20);
            assert_eq!(info.header.producer_id, 42);
            assert_eq!(info.header.last_sequence(), 19);
            let summary = validate_records(&b).unwrap();
            if c == KCompression::None {
                let s = summary.unwrap();
                assert_eq!(
                    (s.count, s.max_timestamp, s.all_keys_present),
                    (20, 5_019, true)
                );
            } else {
                assert!(summary.is_none());
            }
            set_log_append_time(&mut b, 7).unwrap();
            assert!(batches(&b, Validation::Produce).next().unwrap().is_ok());
            let mut dec = bytes::Bytes::from(b);
            let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut dec).unwrap();
            assert_eq!(set.records.len(), 20);
            assert_eq!(set.records[0].timestamp_type, KTimestampType::LogAppend);
        }
    }

    #[test]
    fn check_untrusted_runs_every_check() {
        let good = [sample(0, 2), sample(2, 3)].concat();
        assert!(check_untrusted(&good));
        assert!(!check_untrusted(&[]));
        assert!(!check_untrusted(&good[..good.len() - 1]));
        let mut bad = good.clone();
        bad[HEADER_SIZE + 2] ^= 0x55; // record bytes: CRC catches it
        assert!(!check_untrusted(&bad));
    }

    #[test]
    fn valid_prefix_stops_at_torn_or_zero_tail() {
        let a = sample(0, 2);
        let b = sample(2, 2);
        let mut seg = [a.clone(), b.clone()].concat();
        let good = seg.len();
        // Preallocated zeros: clean end, no reason.
        seg.extend_from_slice(&[0u8; 200]);
        let mut scan = ValidPrefix::new(&seg, true);
        assert_eq!(scan.by_ref().count(), 2);
        assert_eq!(scan.valid_len(), good);
        assert!(scan.stop_reason().is_none());
        // Half a batch.
        let mut torn = [a.clone(), b.clone(), a[..30].to_vec()].concat();
        let mut scan = ValidPrefix::new(&torn, true);
        assert_eq!(scan.by_ref().count(), 2);
        assert_eq!(scan.valid_len(), good);
        assert!(matches!(
            scan.stop_reason(),
            Some(ProtocolError::BatchTruncated { .. })
        ));
        // Corrupt second batch: the first survives.
        torn = [a.clone(), b.clone()].concat();
        let n = torn.len();
        torn[n - 2] ^= 1;
        let mut scan = ValidPrefix::new(&torn, true);
        assert_eq!(scan.by_ref().count(), 1);
        assert_eq!(scan.valid_len(), a.len());
        assert!(matches!(
            scan.stop_reason(),
            Some(ProtocolError::CrcMismatch { .. })
        ));
        // Without CRC checking the header-only scan accepts it.
        assert_eq!(ValidPrefix::new(&torn, false).count(), 2);
        // Random garbage never panics.
        let garbage: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let _ = ValidPrefix::new(&garbage, true).count();
        let _ = batches(&garbage, Validation::Produce).count();
    }
}
