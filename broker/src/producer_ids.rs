//! Producer ids for InitProducerId: handed out from blocks the metadata quorum grants this
//! broker (`ProducerIds` records). A block is committed before its first id is used and the
//! quorum never grants an id twice, so ids are unique cluster-wide, also across crashes
//! (ids of a block not used up before a restart are skipped, as in Kafka).

use isthmus_controller::records::{MetadataRecord, ProducerIdsRecord};
use isthmus_controller::{ControllerError, RejectCode};
use parking_lot::Mutex;

use crate::error::BrokerError;
use crate::metadata::MetadataStore;

/// Ids granted per metadata record.
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;
/// Attempts at a block when other brokers' grants race with ours.
const BLOCK_ATTEMPTS: usize = 5;

#[derive(Default)]
pub struct ProducerIdAllocator {
    /// (next id to hand out, end of the granted block)
    state: Mutex<(i64, i64)>,
}

impl ProducerIdAllocator {
    pub fn new() -> ProducerIdAllocator {
        ProducerIdAllocator::default()
    }

    pub fn next_id(&self, metadata: &MetadataStore) -> Result<i64, BrokerError> {
        let mut state = self.state.lock();
        if state.0 >= state.1 {
            *state = grant_block(metadata)?;
        }
        let id = state.0;
        state.0 += 1;
        Ok(id)
    }
}

/// Asks the quorum for the next block: (first id, end).
fn grant_block(metadata: &MetadataStore) -> Result<(i64, i64), BrokerError> {
    let broker_epoch = metadata.broker_epoch();
    if broker_epoch < 0 {
        return Err(BrokerError::Fatal(
            "this broker is not registered with the metadata quorum yet".into(),
        ));
    }
    let broker_id = metadata.node_id();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let first = metadata.controller_image().next_producer_id();
        let record = MetadataRecord::ProducerIds(ProducerIdsRecord {
            broker_id,
            broker_epoch,
            first_producer_id: first,
            block_size: PRODUCER_ID_BLOCK_SIZE,
        });
        match metadata.block_on(metadata.commit(vec![record]))? {
            Ok(_) => return Ok((first, first + PRODUCER_ID_BLOCK_SIZE)),
            // Another broker's block was granted first: ask again once the new counter
            // has been pulled.
            Err(BrokerError::Controller(ControllerError::Rejected(r)))
                if r.code == RejectCode::InvalidRequest && attempt < BLOCK_ATTEMPTS =>
            {
                tracing::debug!(reason = %r, "producer-id block raced; retrying");
                // Off the async worker, like the commit itself.
                metadata.block_on(tokio::time::sleep(std::time::Duration::from_millis(
                    20 * attempt as u64,
                )))?;
            }
            Err(e) => return Err(e),
        }
    }
}
