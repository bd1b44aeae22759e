//! Producer ids for InitProducerId: handed out from blocks whose end is made durable before
//! the first id of the block is used, so no id is ever handed out twice, even after a crash.

use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use crate::error::BrokerError;
use crate::metadata::store::write_atomically;

/// Ids reserved per durable write.
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;
const FILE: &str = "producer-id-block";

pub struct ProducerIdAllocator {
    dir: PathBuf,
    /// (next id to hand out, first id not yet reserved on disk)
    state: Mutex<(i64, i64)>,
}

impl ProducerIdAllocator {
    pub fn open(dir: &Path) -> Result<ProducerIdAllocator, BrokerError> {
        let path = dir.join(FILE);
        let reserved_end = match std::fs::read_to_string(&path) {
            Ok(text) => text.trim().parse::<i64>().map_err(|_| {
                BrokerError::Fatal(format!(
                    "{} is damaged: expected a number, found {text:?}",
                    path.display()
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(BrokerError::io(&path, e)),
        };
        Ok(ProducerIdAllocator {
            dir: dir.to_path_buf(),
            state: Mutex::new((reserved_end, reserved_end)),
        })
    }

    pub fn next_id(&self) -> Result<i64, BrokerError> {
        let mut state = self.state.lock();
        if state.0 == state.1 {
            let end = state.1 + PRODUCER_ID_BLOCK_SIZE;
            write_atomically(&self.dir, FILE, end.to_string().as_bytes())?;
            state.1 = end;
        }
        let id = state.0;
        state.0 += 1;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let a = ProducerIdAllocator::open(dir.path()).unwrap();
        let first: Vec<i64> = (0..3).map(|_| a.next_id().unwrap()).collect();
        assert_eq!(first, vec![0, 1, 2]);
        drop(a);
        let b = ProducerIdAllocator::open(dir.path()).unwrap();
        assert_eq!(b.next_id().unwrap(), PRODUCER_ID_BLOCK_SIZE);
    }
}
