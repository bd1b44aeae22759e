//! DescribeLogDirs: each log dir with its partitions' sizes and the disk's total and free bytes.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsResponse, RequestKind, ResponseKind, TopicName};

use super::{mismatched, text};
use crate::broker::Broker;
use crate::dispatch::{Reply, RequestContext};

pub fn handle(broker: &Arc<Broker>, _header: &RequestContext, body: RequestKind) -> Reply {
    let RequestKind::DescribeLogDirs(req) = body else {
        return mismatched("DescribeLogDirs");
    };
    let wanted = |topic: &str, partition: i32| match &req.topics {
        None => true,
        Some(list) => list
            .iter()
            .any(|t| t.topic.0.as_str() == topic && t.partitions.contains(&partition)),
    };
    let mut by_dir: BTreeMap<&Path, BTreeMap<String, Vec<DescribeLogDirsPartition>>> = broker
        .replicas
        .log_dirs()
        .iter()
        .map(|d| (d.as_path(), BTreeMap::new()))
        .collect();
    let partitions = broker.replicas.all_partitions();
    for p in &partitions {
        if !wanted(&p.topic, p.index) {
            continue;
        }
        let size = p.with_log(|log| Ok(log.size_bytes() as i64)).unwrap_or(-1);
        if let Some(topics) = by_dir.get_mut(p.log_dir.as_path()) {
            topics.entry(p.topic.clone()).or_default().push(
                DescribeLogDirsPartition::default()
                    .with_partition_index(p.index)
                    .with_partition_size(size)
                    .with_offset_lag(0),
            );
        }
    }
    let results = by_dir
        .into_iter()
        .map(|(dir, topics)| {
            let (total, usable) = disk_space(dir);
            DescribeLogDirsResult::default()
                .with_log_dir(text(dir.display().to_string()))
                .with_total_bytes(total)
                .with_usable_bytes(usable)
                .with_topics(
                    topics
                        .into_iter()
                        .map(|(name, partitions)| {
                            DescribeLogDirsTopic::default()
                                .with_name(TopicName(text(name)))
                                .with_partitions(partitions)
                        })
                        .collect(),
                )
        })
        .collect();
    Reply::Now(ResponseKind::DescribeLogDirs(
        DescribeLogDirsResponse::default().with_results(results),
    ))
}

/// (total, usable) bytes of the file system holding `dir`; -1 when unknown.
fn disk_space(dir: &Path) -> (i64, i64) {
    match nix::sys::statvfs::statvfs(dir) {
        Ok(s) => {
            let block = s.fragment_size() as i64;
            (
                s.blocks() as i64 * block,
                s.blocks_available() as i64 * block,
            )
        }
        Err(_) => (-1, -1),
    }
}
