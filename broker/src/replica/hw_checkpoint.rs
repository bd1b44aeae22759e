//! High watermarks survive restarts in `<log dir>/replication-offset-checkpoint`, in
//! Kafka's text layout (a version line `0`, a count line, then `topic partition offset`),
//! written atomically every `replica.high.watermark.checkpoint.interval.ms` and at clean
//! shutdown. A restarted replica starts serving reads from it, so a consumer never sees a
//! record above what was committed before the restart (a higher one could still be
//! truncated by the new leader).

use std::collections::HashMap;
use std::path::Path;

use isthmus_storage::durable::write_atomically;

use crate::error::BrokerError;

pub const HW_CHECKPOINT_FILE: &str = "replication-offset-checkpoint";
const VERSION: &str = "0";

/// The checkpointed high watermarks of one log dir. A missing file is empty; a damaged one
/// is logged and ignored (the high watermarks then start at the log start and catch up
/// from the leader), never a reason not to start.
pub fn read(dir: &Path) -> HashMap<(String, i32), i64> {
    let path = dir.join(HW_CHECKPOINT_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return HashMap::new(),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read the high-watermark checkpoint; starting without it");
            return HashMap::new();
        }
    };
    parse(&text).unwrap_or_else(|why| {
        tracing::warn!(path = %path.display(), why, "damaged high-watermark checkpoint; starting without it");
        HashMap::new()
    })
}

fn parse(text: &str) -> Result<HashMap<(String, i32), i64>, &'static str> {
    let mut lines = text.lines();
    if lines.next() != Some(VERSION) {
        return Err("unknown version");
    }
    let count: usize = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or("bad count")?;
    let mut out = HashMap::with_capacity(count);
    for line in lines.by_ref().take(count) {
        let mut parts = line.rsplitn(3, ' ');
        let offset: i64 = parts
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or("bad offset")?;
        let partition: i32 = parts
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or("bad partition")?;
        let topic = parts.next().filter(|t| !t.is_empty()).ok_or("bad topic")?;
        out.insert((topic.to_string(), partition), offset);
    }
    if out.len() != count || lines.next().is_some() {
        return Err("entry count does not match");
    }
    Ok(out)
}

/// Replaces the checkpoint of `dir` with `entries`.
pub fn write(dir: &Path, entries: &[(String, i32, i64)]) -> Result<(), BrokerError> {
    let mut text = format!("{VERSION}\n{}\n", entries.len());
    for (topic, partition, offset) in entries {
        text.push_str(&format!("{topic} {partition} {offset}\n"));
    }
    write_atomically(dir, HW_CHECKPOINT_FILE, text.as_bytes())
        .map_err(|(path, e)| BrokerError::io(&path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path()).is_empty());
        write(
            dir.path(),
            &[("orders".into(), 0, 42), ("my-topic.x_y".into(), 11, 0)],
        )
        .unwrap();
        let got = read(dir.path());
        assert_eq!(got.len(), 2);
        assert_eq!(got[&("orders".to_string(), 0)], 42);
        assert_eq!(got[&("my-topic.x_y".to_string(), 11)], 0);
        for bad in [
            "1\n0\n",
            "0\n2\norders 0 42\n",
            "0\n1\norders x 42\n",
            "0\n1\norders 0\n",
            "0\n1\norders 0 1\nextra 0 1\n",
            "",
        ] {
            std::fs::write(dir.path().join(HW_CHECKPOINT_FILE), bad).unwrap();
            assert!(read(dir.path()).is_empty(), "{bad:?}");
        }
    }
}
