//! The threads that fsync partition logs (group commit).
//!
//! A write asks for a sync of its partition; the partition is queued at most once, and one
//! written to while its sync runs is queued again when that sync ends. So every write is
//! covered by a sync that started after it, and all writes made during one sync share the
//! next. The queue therefore holds at most one entry per partition on this node.
//!
//! Dedicated threads wait on the queue themselves: waking one is the only hop between a
//! write and its fsync. Going through a runtime task first would make every
//! acknowledgement wait for a free runtime worker, and those are the threads busy with the
//! very writes being acknowledged.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

/// Sync threads in the process, at most: tokio's blocking-pool bound, which these syncs
/// used before. Many partitions written at once need their fsyncs in flight together (the
/// block layer merges concurrent flushes into few device flushes); with a small pool, each
/// partition would wait for the others' syncs in turn.
pub const SYNC_THREADS_MAX: usize = 512;

/// A sync thread with nothing to do for this long ends; the next burst starts new ones.
pub const SYNC_THREAD_IDLE: Duration = Duration::from_secs(10);

/// Something the pool syncs: a partition's log in the broker, a stand-in in tests.
pub trait SyncTarget: Send + Sync + 'static {
    fn sync_slot(&self) -> &SyncSlot;

    /// Syncs everything written so far and publishes it (durable end, waiters). False
    /// once the target is closed or failed: it is never synced again.
    fn sync_written(&self) -> bool;

    /// The sync panicked: the target must fail its waiters, as it is never synced again.
    fn sync_panicked(&self);
}

const IDLE: u8 = 0;
const QUEUED: u8 = 1;
const RUNNING: u8 = 2;
/// Running, and written to since the running sync began: goes back in the queue after.
const RUNNING_AGAIN: u8 = 3;
const STOPPED: u8 = 4;

/// A target's place in the pool's cycle: idle, queued, running (perhaps with more to
/// sync after), or stopped for good.
pub struct SyncSlot(AtomicU8);

impl SyncSlot {
    pub fn new() -> SyncSlot {
        SyncSlot(AtomicU8::new(IDLE))
    }

    /// A slot that never queues (a partition whose log could not be opened).
    pub fn stopped() -> SyncSlot {
        SyncSlot(AtomicU8::new(STOPPED))
    }

    /// Notes that a sync is wanted; true when the caller must queue the target (it was
    /// idle). A queued target, or one whose sync is already marked to run again, needs
    /// nothing more: the sync still to come starts after this call.
    fn claim(&self) -> bool {
        let mut state = self.0.load(Ordering::Acquire);
        loop {
            let next = match state {
                IDLE => QUEUED,
                RUNNING => RUNNING_AGAIN,
                _ => return false,
            };
            match self
                .0
                .compare_exchange_weak(state, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return next == QUEUED,
                Err(now) => state = now,
            }
        }
    }

    /// A sync thread took the target off the queue; writes from here on mark it to run
    /// again, since the sync about to start may already have taken its job.
    fn begin(&self) {
        self.0.store(RUNNING, Ordering::Release);
    }

    /// The sync ended; true when the target was written to meanwhile and is queued again.
    fn finish(&self) -> bool {
        match self
            .0
            .compare_exchange(RUNNING, IDLE, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => false,
            Err(_) => {
                self.0.store(QUEUED, Ordering::Release);
                true
            }
        }
    }

    fn stop(&self) {
        self.0.store(STOPPED, Ordering::Release);
    }
}

impl Default for SyncSlot {
    fn default() -> Self {
        SyncSlot::new()
    }
}

/// The queue of targets waiting for a sync and the threads serving it.
pub struct SyncPool {
    queue: Mutex<Queue>,
    ready: Condvar,
    threads_max: usize,
    idle_max: Duration,
}

struct Queue {
    targets: VecDeque<Arc<dyn SyncTarget>>,
    threads: usize,
    idle: usize,
    /// Threads started so far, for their names.
    started: usize,
}

impl SyncPool {
    pub fn new(threads_max: usize, idle_max: Duration) -> Arc<SyncPool> {
        Arc::new(SyncPool {
            queue: Mutex::new(Queue {
                targets: VecDeque::new(),
                threads: 0,
                idle: 0,
                started: 0,
            }),
            ready: Condvar::new(),
            threads_max: threads_max.max(1),
            idle_max,
        })
    }

    /// The process's pool: partitions of every broker in it share the threads.
    pub fn shared() -> &'static Arc<SyncPool> {
        static POOL: OnceLock<Arc<SyncPool>> = OnceLock::new();
        POOL.get_or_init(|| SyncPool::new(SYNC_THREADS_MAX, SYNC_THREAD_IDLE))
    }

    /// Asks for a sync of `target`, which starts after this call.
    pub fn request(self: &Arc<Self>, target: &Arc<impl SyncTarget>) {
        if target.sync_slot().claim() {
            self.enqueue(Arc::clone(target) as Arc<dyn SyncTarget>);
        }
    }

    fn enqueue(self: &Arc<Self>, target: Arc<dyn SyncTarget>) {
        let mut queue = self.queue.lock();
        queue.targets.push_back(target);
        if queue.idle > 0 {
            self.ready.notify_one();
        }
        // More waiting than idle threads to take them: one more thread, if allowed.
        if queue.targets.len() > queue.idle && queue.threads < self.threads_max {
            let pool = Arc::clone(self);
            let spawned = std::thread::Builder::new()
                .name(format!("isthmus-sync-{}", queue.started))
                .spawn(move || pool.serve());
            match spawned {
                Ok(_) => {
                    queue.threads += 1;
                    queue.started += 1;
                }
                // The queued target waits for a running thread instead.
                Err(e) if queue.threads > 0 => {
                    tracing::warn!(error = %e, "could not start another sync thread")
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not start a sync thread; writes wait until one starts")
                }
            }
        }
    }

    /// The next target to sync, or None when this thread has been idle long enough to end
    /// (it is then no longer counted).
    fn next(&self) -> Option<Arc<dyn SyncTarget>> {
        let mut queue = self.queue.lock();
        loop {
            if let Some(target) = queue.targets.pop_front() {
                return Some(target);
            }
            queue.idle += 1;
            let timed_out = self.ready.wait_for(&mut queue, self.idle_max).timed_out();
            queue.idle -= 1;
            if timed_out && queue.targets.is_empty() {
                queue.threads -= 1;
                return None;
            }
        }
    }

    fn serve(self: Arc<Self>) {
        while let Some(target) = self.next() {
            let slot = target.sync_slot();
            slot.begin();
            let synced =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| target.sync_written()));
            match synced {
                Ok(true) => {
                    if slot.finish() {
                        self.enqueue(target);
                    }
                }
                Ok(false) => slot.stop(),
                Err(_) => {
                    slot.stop();
                    target.sync_panicked();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize};
    use std::time::{Duration, Instant};

    use super::*;

    /// Counts syncs, can hold one open, and checks two never overlap.
    #[derive(Default)]
    struct Counter {
        slot: SyncSlot,
        syncs: AtomicUsize,
        running: AtomicBool,
        overlapped: AtomicBool,
        hold: Mutex<bool>,
        released: Condvar,
        stop_after: Option<usize>,
        panic: bool,
        panicked: AtomicBool,
    }

    impl SyncTarget for Counter {
        fn sync_slot(&self) -> &SyncSlot {
            &self.slot
        }

        fn sync_written(&self) -> bool {
            if self.running.swap(true, Ordering::AcqRel) {
                self.overlapped.store(true, Ordering::Release);
            }
            let mut held = self.hold.lock();
            while *held {
                self.released.wait(&mut held);
            }
            drop(held);
            std::thread::sleep(Duration::from_micros(200));
            let n = self.syncs.fetch_add(1, Ordering::AcqRel) + 1;
            self.running.store(false, Ordering::Release);
            assert!(!self.panic, "told to panic");
            self.stop_after.is_none_or(|last| n < last)
        }

        fn sync_panicked(&self) {
            self.panicked.store(true, Ordering::Release);
        }
    }

    fn wait_until(what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// A target whose sync has started and stays open until its `hold` is released.
    fn start_held(pool: &Arc<SyncPool>) -> Arc<Counter> {
        let target = Arc::new(Counter::default());
        *target.hold.lock() = true;
        pool.request(&target);
        wait_until("the held sync to start", || {
            target.running.load(Ordering::Acquire)
        });
        target
    }

    fn syncs(target: &Counter) -> usize {
        target.syncs.load(Ordering::Acquire)
    }

    #[test]
    fn a_request_while_a_sync_runs_gets_a_sync_of_its_own_after_it() {
        let pool = SyncPool::new(4, Duration::from_secs(10));
        let target = start_held(&pool);
        // Written during the running sync: three requests, one more sync.
        for _ in 0..3 {
            pool.request(&target);
        }
        *target.hold.lock() = false;
        target.released.notify_all();
        wait_until("the second sync", || syncs(&target) == 2);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(syncs(&target), 2, "requests during one sync share the next");
    }

    #[test]
    fn requests_while_queued_share_one_sync() {
        let pool = SyncPool::new(1, Duration::from_secs(10));
        let blocker = start_held(&pool);
        let target = Arc::new(Counter::default());
        for _ in 0..5 {
            pool.request(&target);
        }
        *blocker.hold.lock() = false;
        blocker.released.notify_all();
        wait_until("the queued sync", || syncs(&target) == 1);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(syncs(&target), 1);
        assert_eq!(syncs(&blocker), 1);
    }

    #[test]
    fn a_target_is_never_synced_twice_at_once_and_every_request_is_served() {
        let pool = SyncPool::new(8, Duration::from_secs(10));
        let targets: Vec<Arc<Counter>> = (0..3).map(|_| Arc::new(Counter::default())).collect();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for i in 0..300 {
                        pool.request(&targets[i % targets.len()]);
                        if i % 50 == 0 {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                    }
                });
            }
        });
        // A request made now, with every writer done, must still be served.
        let before: Vec<usize> = targets.iter().map(|t| syncs(t)).collect();
        for t in &targets {
            pool.request(t);
        }
        for (t, before) in targets.iter().zip(before) {
            wait_until("the last request's sync", || syncs(t) > before);
            assert!(
                !t.overlapped.load(Ordering::Acquire),
                "two syncs overlapped"
            );
        }
    }

    #[test]
    fn a_stopped_target_is_not_synced_again() {
        let pool = SyncPool::new(2, Duration::from_secs(10));
        let target = Arc::new(Counter {
            stop_after: Some(1),
            ..Counter::default()
        });
        pool.request(&target);
        wait_until("the first sync", || syncs(&target) == 1);
        wait_until("the slot to stop", || {
            target.slot.0.load(Ordering::Acquire) == STOPPED
        });
        pool.request(&target);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(syncs(&target), 1);
        let never = Arc::new(Counter {
            slot: SyncSlot::stopped(),
            ..Counter::default()
        });
        pool.request(&never);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(syncs(&never), 0);
    }

    #[test]
    fn idle_threads_end_and_the_next_request_starts_one_again() {
        let pool = SyncPool::new(4, Duration::from_millis(30));
        let target = Arc::new(Counter::default());
        pool.request(&target);
        wait_until("the first sync", || syncs(&target) == 1);
        wait_until("the idle thread to end", || pool.queue.lock().threads == 0);
        pool.request(&target);
        wait_until("a sync after the thread ended", || syncs(&target) == 2);
    }

    #[test]
    fn a_panicking_sync_stops_its_target_and_the_thread_serves_on() {
        let pool = SyncPool::new(1, Duration::from_secs(10));
        let bad = Arc::new(Counter {
            panic: true,
            ..Counter::default()
        });
        pool.request(&bad);
        wait_until("the panic to be reported", || {
            bad.panicked.load(Ordering::Acquire)
        });
        pool.request(&bad);
        let good = Arc::new(Counter::default());
        pool.request(&good);
        wait_until("the only thread to sync another target", || {
            syncs(&good) == 1
        });
        assert_eq!(syncs(&bad), 1, "a panicked target is not synced again");
    }
}
