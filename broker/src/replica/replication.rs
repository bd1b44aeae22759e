//! A partition leader's view of its followers, kept as Kafka's `Partition` keeps it: each
//! follower's log end offset (from its fetches) and when it was last caught up, the ISR the
//! controller committed, and at most one ISR change in flight. From these come the high
//! watermark (the smallest log end across the ISR) and the ISR changes to ask for: shrink a
//! follower not caught up for `replica.lag.time.max.ms`, expand one that reached the high
//! watermark in this leader epoch. Pure state, no I/O: `Partition` holds it under a lock.

use std::collections::BTreeMap;

/// What the leader knows of one follower.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FollowerProgress {
    /// The follower's log end offset as its last fetch said; -1 until it fetched in this
    /// leader epoch.
    pub log_end_offset: i64,
    /// When the follower was last known to have everything the leader had.
    pub last_caught_up_ms: i64,
    pub last_fetch_ms: i64,
    /// The leader's log end when that fetch arrived (Kafka's `lastFetchLeaderLogEndOffset`).
    pub leader_end_at_last_fetch: i64,
    /// The follower's broker epoch from its fetch (`replica_state.replica_epoch`), sent
    /// with an ISR expansion so the controller can refuse a stale incarnation.
    pub broker_epoch: i64,
}

impl FollowerProgress {
    fn new(in_isr: bool, now_ms: i64) -> Self {
        FollowerProgress {
            log_end_offset: -1,
            // An ISR member gets a full lag period to show up, as in Kafka.
            last_caught_up_ms: if in_isr { now_ms } else { 0 },
            last_fetch_ms: 0,
            leader_end_at_last_fetch: -1,
            broker_epoch: -1,
        }
    }
}

/// An ISR change this leader asked the controller for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IsrChange {
    Shrink(Vec<i32>),
    Expand(Vec<i32>),
}

impl IsrChange {
    pub fn new_isr(&self) -> &[i32] {
        match self {
            IsrChange::Shrink(isr) | IsrChange::Expand(isr) => isr,
        }
    }
}

#[derive(Clone, Debug)]
pub struct LeaderState {
    pub me: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub replicas: Vec<i32>,
    /// The ISR as the controller committed it: what acks=all counts against
    /// `min.insync.replicas`.
    pub isr: Vec<i32>,
    /// Asked for and not answered yet; no second change goes out meanwhile.
    pub pending: Option<IsrChange>,
    /// The log end when this leader epoch began: a follower joins the ISR only once it
    /// has everything of earlier epochs.
    pub epoch_start_offset: i64,
    pub followers: BTreeMap<i32, FollowerProgress>,
    /// When this leader epoch began here: lag is counted from then at the most.
    pub since_ms: i64,
}

impl LeaderState {
    pub fn new(
        me: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        replicas: &[i32],
        isr: &[i32],
        epoch_start_offset: i64,
        now_ms: i64,
    ) -> LeaderState {
        let followers = replicas
            .iter()
            .filter(|r| **r != me)
            .map(|r| (*r, FollowerProgress::new(isr.contains(r), now_ms)))
            .collect();
        LeaderState {
            me,
            leader_epoch,
            partition_epoch,
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            pending: None,
            epoch_start_offset,
            followers,
            since_ms: now_ms,
        }
    }

    /// The replicas the high watermark waits for: the committed ISR plus a pending
    /// expansion's newcomer (Kafka's "maximal ISR"), so a shrink is only effective once
    /// committed, and an expansion at once.
    pub fn maximal_isr(&self) -> Vec<i32> {
        let mut isr = self.isr.clone();
        if let Some(IsrChange::Expand(new)) = &self.pending {
            for r in new {
                if !isr.contains(r) {
                    isr.push(*r);
                }
            }
        }
        isr
    }

    /// The offset every member of the maximal ISR has reached, `local_end` being the
    /// leader's own (its durable end under the fsync policy). None while a member has not
    /// fetched in this epoch: the high watermark then stays where it is.
    pub fn high_watermark(&self, local_end: i64) -> Option<i64> {
        let mut hw = local_end;
        for r in self.maximal_isr() {
            if r == self.me {
                continue;
            }
            let end = self.followers.get(&r).map_or(-1, |f| f.log_end_offset);
            if end < 0 {
                return None;
            }
            hw = hw.min(end);
        }
        Some(hw)
    }

    /// Records a follower fetch at `fetch_offset` (its log end) while the leader's log end
    /// is `leader_end`. Returns false for a broker that is not a replica.
    pub fn on_follower_fetch(
        &mut self,
        id: i32,
        fetch_offset: i64,
        broker_epoch: i64,
        leader_end: i64,
        now_ms: i64,
    ) -> bool {
        let Some(f) = self.followers.get_mut(&id) else {
            return false;
        };
        if fetch_offset >= leader_end {
            f.last_caught_up_ms = f.last_caught_up_ms.max(now_ms);
        } else if fetch_offset >= f.leader_end_at_last_fetch && f.leader_end_at_last_fetch >= 0 {
            // It now has what the leader had at its previous fetch: caught up as of then.
            f.last_caught_up_ms = f.last_caught_up_ms.max(f.last_fetch_ms);
        }
        f.log_end_offset = fetch_offset;
        f.leader_end_at_last_fetch = leader_end;
        f.last_fetch_ms = now_ms;
        if broker_epoch >= 0 {
            f.broker_epoch = broker_epoch;
        }
        true
    }

    /// ISR members (other than the leader) not caught up for longer than `lag_max_ms`.
    pub fn lagging(&self, now_ms: i64, lag_max_ms: i64) -> Vec<i32> {
        self.isr
            .iter()
            .copied()
            .filter(|r| *r != self.me)
            .filter(|r| {
                self.followers
                    .get(r)
                    .is_none_or(|f| now_ms - f.last_caught_up_ms > lag_max_ms)
            })
            .collect()
    }

    /// Replicas outside the ISR that reached both the high watermark and the start of
    /// this leader epoch.
    pub fn caught_up(&self, high_watermark: i64) -> Vec<i32> {
        self.followers
            .iter()
            .filter(|(r, _)| !self.isr.contains(r) && self.replicas.contains(r))
            .filter(|(_, f)| {
                f.log_end_offset >= 0
                    && f.log_end_offset >= high_watermark
                    && f.log_end_offset >= self.epoch_start_offset
            })
            .map(|(r, _)| *r)
            .collect()
    }

    /// The ISR change to ask for now, if any (none while one is in flight): shrinking
    /// first, since a lagging member holds back the high watermark and acks=all.
    pub fn next_change(
        &self,
        high_watermark: i64,
        now_ms: i64,
        lag_max_ms: i64,
    ) -> Option<IsrChange> {
        if self.pending.is_some() {
            return None;
        }
        let lagging = self.lagging(now_ms, lag_max_ms);
        if !lagging.is_empty() {
            let isr = self
                .isr
                .iter()
                .copied()
                .filter(|r| !lagging.contains(r))
                .collect();
            return Some(IsrChange::Shrink(isr));
        }
        let joining = self.caught_up(high_watermark);
        if !joining.is_empty() {
            // In replica order, as the controller keeps it.
            let isr = self
                .replicas
                .iter()
                .copied()
                .filter(|r| self.isr.contains(r) || joining.contains(r))
                .collect();
            return Some(IsrChange::Expand(isr));
        }
        None
    }

    /// Takes a committed state (from the AlterPartition answer or a newer image) of this
    /// leader epoch. Older partition epochs are ignored.
    pub fn commit(&mut self, partition_epoch: i32, isr: &[i32], replicas: &[i32], now_ms: i64) {
        if partition_epoch < self.partition_epoch {
            return;
        }
        if partition_epoch > self.partition_epoch || self.pending.is_some() {
            self.pending = None;
        }
        self.partition_epoch = partition_epoch;
        self.isr = isr.to_vec();
        if self.replicas != replicas {
            self.replicas = replicas.to_vec();
            self.followers.retain(|r, _| replicas.contains(r));
            for r in replicas {
                if *r != self.me {
                    self.followers
                        .entry(*r)
                        .or_insert_with(|| FollowerProgress::new(false, now_ms));
                }
            }
        }
    }

    pub fn under_replicated(&self) -> bool {
        self.isr.len() < self.replicas.len()
    }

    /// The furthest-behind follower: (records behind `leader_end`, ms since it was
    /// caught up); followers not heard from in this epoch count from the epoch start.
    pub fn follower_lag(&self, leader_end: i64, now_ms: i64) -> (i64, i64) {
        self.followers.values().fold((0, 0), |(records, ms), f| {
            let end = if f.log_end_offset >= 0 {
                f.log_end_offset
            } else {
                self.epoch_start_offset
            };
            (
                records.max(leader_end - end),
                ms.max(now_ms - f.last_caught_up_ms.max(self.since_ms)),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leader() -> LeaderState {
        LeaderState::new(1, 5, 10, &[1, 2, 3], &[1, 2, 3], 100, 1_000)
    }

    #[test]
    fn the_high_watermark_waits_for_every_isr_member() {
        let mut l = leader();
        assert_eq!(l.high_watermark(150), None, "followers not heard from yet");
        l.on_follower_fetch(2, 140, 7, 150, 1_010);
        assert_eq!(l.high_watermark(150), None);
        l.on_follower_fetch(3, 120, 8, 150, 1_010);
        assert_eq!(l.high_watermark(150), Some(120));
        l.on_follower_fetch(3, 150, 8, 150, 1_020);
        assert_eq!(l.high_watermark(150), Some(140));
        // The leader's own (durable) end bounds it too.
        assert_eq!(l.high_watermark(130), Some(130));
    }

    #[test]
    fn a_shrink_counts_until_committed_an_expansion_at_once() {
        let mut l = leader();
        l.on_follower_fetch(2, 150, 7, 150, 1_010);
        l.on_follower_fetch(3, 110, 8, 150, 1_010);
        l.pending = Some(IsrChange::Shrink(vec![1, 2]));
        assert_eq!(l.high_watermark(150), Some(110));
        l.commit(11, &[1, 2], &[1, 2, 3], 1_020);
        assert_eq!(l.pending, None);
        assert_eq!(l.high_watermark(150), Some(150));
        l.pending = Some(IsrChange::Expand(vec![1, 2, 3]));
        assert_eq!(l.high_watermark(150), Some(110));
    }

    #[test]
    fn lagging_follows_kafkas_caught_up_time() {
        let mut l = leader();
        // Fetches that keep up with the leader's end: never lagging.
        l.on_follower_fetch(2, 150, 7, 150, 2_000);
        l.on_follower_fetch(3, 100, 8, 150, 2_000);
        assert_eq!(l.lagging(11_500, 10_000), vec![3]);
        // Reaching what the leader had at the previous fetch counts as caught up then.
        l.on_follower_fetch(2, 170, 7, 170, 12_000);
        l.on_follower_fetch(3, 150, 8, 170, 12_000);
        assert_eq!(l.followers[&3].last_caught_up_ms, 2_000);
        assert_eq!(l.lagging(12_500, 10_000), vec![3]);
        l.on_follower_fetch(3, 170, 8, 170, 12_600);
        assert!(l.lagging(12_700, 10_000).is_empty());
        l.on_follower_fetch(2, 170, 7, 170, 30_000);
        assert_eq!(
            l.next_change(150, 30_000, 10_000),
            Some(IsrChange::Shrink(vec![1, 2]))
        );
    }

    #[test]
    fn expansion_needs_the_high_watermark_and_the_epoch_start() {
        let mut l = LeaderState::new(1, 5, 10, &[1, 2, 3], &[1, 2], 100, 1_000);
        assert!(!l.on_follower_fetch(9, 10, 1, 150, 1_000), "not a replica");
        l.on_follower_fetch(2, 150, 7, 150, 1_010);
        l.on_follower_fetch(3, 90, 8, 150, 1_010);
        assert_eq!(l.next_change(150, 1_020, 10_000), None);
        l.on_follower_fetch(3, 150, 8, 150, 1_030);
        assert_eq!(
            l.next_change(150, 1_040, 10_000),
            Some(IsrChange::Expand(vec![1, 2, 3]))
        );
        l.pending = l.next_change(150, 1_040, 10_000);
        assert_eq!(
            l.next_change(150, 1_040, 10_000),
            None,
            "one change at a time"
        );
        // An older partition epoch is ignored; the answer commits.
        l.commit(9, &[1], &[1, 2, 3], 1_050);
        assert_eq!(l.isr, vec![1, 2]);
        l.commit(11, &[1, 2, 3], &[1, 2, 3], 1_050);
        assert_eq!((l.isr.clone(), l.pending.clone()), (vec![1, 2, 3], None));
        assert!(!l.under_replicated());
        // Below the epoch start, even at the high watermark: not in sync.
        let mut fresh = LeaderState::new(1, 6, 12, &[1, 2], &[1], 200, 2_000);
        fresh.on_follower_fetch(2, 150, 7, 200, 2_010);
        assert_eq!(fresh.caught_up(150), Vec::<i32>::new());
    }

    #[test]
    fn follower_lag_is_the_furthest_behind() {
        let mut l = leader();
        // Not heard from yet: behind by everything since the epoch start.
        assert_eq!(l.follower_lag(150, 1_500), (50, 500));
        // Outside the ISR and never caught up: counted from when this epoch began.
        let outside = LeaderState::new(1, 5, 10, &[1, 2], &[1], 100, 1_000);
        assert_eq!(outside.follower_lag(100, 4_000), (0, 3_000));
        l.on_follower_fetch(2, 150, 7, 150, 1_600);
        l.on_follower_fetch(3, 120, 8, 150, 1_600);
        assert_eq!(l.follower_lag(150, 2_000), (30, 1_000));
        l.on_follower_fetch(3, 150, 8, 150, 2_100);
        assert_eq!(l.follower_lag(150, 2_200), (0, 600));
    }

    #[test]
    fn reassignment_adds_and_drops_followers() {
        let mut l = leader();
        l.commit(11, &[1, 2], &[1, 2, 4], 1_100);
        assert!(l.followers.contains_key(&4));
        assert!(!l.followers.contains_key(&3));
        assert_eq!(l.followers[&4].log_end_offset, -1);
    }
}
