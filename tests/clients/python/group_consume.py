#!/usr/bin/env python3
"""A group consumer (kafka-python or confluent-kafka) that commits exactly what it processed.

Usage: group_consume.py --client kafka-python|confluent-kafka --bootstrap HOST:PORT
                        --topic NAME --group ID [--max N] [--timeout S]
                        [--assignor NAME] [--batch N] [--pause S] [--print-commits]

Subscribes to --topic in group --group (auto commit off, auto.offset.reset=earliest)
and polls. After every poll it prints each record it got as

    R <partition> <offset> <value>

and then commits, synchronously, the next offset of every partition it read in that poll
(metadata "<client>:<partition>:<offset>"). It stops once it has read at least --max
records, or, with --max 0, once every partition's position has reached the high
watermark read at the start. Before closing it prints the offsets it committed, acknowledged,
as

    C <partition> <next offset>

and a last line "DONE <records read>". Exits 0 on success, non-zero (with a FAIL line)
on any error.

For crash tests (confluent-kafka only): --assignor sets partition.assignment.strategy
(or, as "consumer-protocol", group.protocol=consumer with the broker's assignor),
--batch and --pause slow the reading down (at most N records per poll, S seconds between
polls), and --print-commits prints each acknowledged commit as it happens
("C <partition> <next offset>", flushed before the next poll), so whoever SIGKILLs the
process knows what it read and what it had committed. The test (broker/tests/clients.rs) checks the lines against what was
produced and against OffsetFetch.
"""

import argparse
import os
import sys
import threading
import time

CLIENTS = ("kafka-python", "confluent-kafka")


def fail(client, message):
    sys.stdout.write("FAIL %s: %s\n" % (client, message))
    sys.stdout.flush()
    os._exit(1)


def start_watchdog(client, timeout_s):
    def fire():
        fail(client, "overall timeout of %.0fs exceeded" % timeout_s)

    t = threading.Timer(timeout_s, fire)
    t.daemon = True
    t.start()


def emit(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class Tracker:
    """What was read and what was committed, per partition."""

    def __init__(self, client, args):
        self.client = client
        self.args = args
        self.read = 0
        self.committed = {}
        self.ends = None

    def metadata(self, partition, offset):
        return "%s:%d:%d" % (self.client, partition, offset)

    def done(self, positions):
        if self.args.max > 0:
            return self.read >= self.args.max
        return all(positions.get(p, 0) >= end for p, end in self.ends.items())


def run_kafka_python(args, tracker):
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    consumer = KafkaConsumer(
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        client_id="isthmus-test-kafka-python-group",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=10000,
        heartbeat_interval_ms=1000,
        fetch_max_wait_ms=200,
    )
    partitions = None
    deadline = time.monotonic() + 20
    while not partitions:
        partitions = consumer.partitions_for_topic(args.topic)
        if not partitions:
            if time.monotonic() > deadline:
                fail(tracker.client, "no metadata for %s" % args.topic)
            time.sleep(0.2)
    tps = [TopicPartition(args.topic, p) for p in sorted(partitions)]
    tracker.ends = {tp.partition: off for tp, off in consumer.end_offsets(tps).items()}
    consumer.subscribe([args.topic])
    positions = {}
    while True:
        batch = consumer.poll(timeout_ms=500)
        to_commit = {}
        for tp, records in batch.items():
            for r in records:
                emit("R %d %d %s" % (r.partition, r.offset, r.value.decode()))
                tracker.read += 1
                positions[r.partition] = r.offset + 1
                to_commit[tp] = OffsetAndMetadata(
                    r.offset + 1, tracker.metadata(r.partition, r.offset + 1), -1)
        if to_commit:
            consumer.commit(to_commit)  # synchronous; raises on failure
            for tp, om in to_commit.items():
                tracker.committed[tp.partition] = om.offset
        if consumer.assignment() and not to_commit:
            # Partitions with a committed position but nothing new count as read up to it.
            for tp in consumer.assignment():
                positions.setdefault(tp.partition, consumer.position(tp))
        if consumer.assignment() and tracker.done(positions):
            break
    consumer.close(autocommit=False)


def run_confluent(args, tracker):
    import confluent_kafka as ck

    def on_error(err):
        sys.stderr.write("librdkafka error: %s\n" % err)
        if err.fatal():
            fail(tracker.client, "fatal librdkafka error: %s" % err)

    extra = {}
    if os.environ.get("RDKAFKA_DEBUG"):
        extra["debug"] = os.environ["RDKAFKA_DEBUG"]
    if args.assignor == "consumer-protocol":
        # KIP-848: the broker assigns and sets the session and heartbeat timing.
        extra["group.protocol"] = "consumer"
    else:
        extra["session.timeout.ms"] = 10000
        extra["heartbeat.interval.ms"] = 1000
        if args.assignor:
            extra["partition.assignment.strategy"] = args.assignor
    consumer = ck.Consumer(dict(extra, **{
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "client.id": "isthmus-test-confluent-group",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": 200,
        "error_cb": on_error,
    }))
    md = consumer.list_topics(args.topic, timeout=20)
    t = md.topics.get(args.topic)
    if t is None or t.error is not None or not t.partitions:
        fail(tracker.client, "no metadata for %s: %r" % (args.topic, t and t.error))
    tracker.ends = {}
    for p in sorted(t.partitions):
        _low, high = consumer.get_watermark_offsets(ck.TopicPartition(args.topic, p), timeout=10)
        tracker.ends[p] = high
    # Where the group resumes: a partition with nothing new to read keeps this position
    # (librdkafka reports no position for a partition it has not delivered from).
    positions = {}
    for tp in consumer.committed([ck.TopicPartition(args.topic, p) for p in tracker.ends],
                                 timeout=10):
        if tp.offset >= 0:
            positions[tp.partition] = tp.offset
    consumer.subscribe([args.topic])
    while True:
        msgs = consumer.consume(num_messages=args.batch, timeout=0.5)
        to_commit = {}
        for m in msgs:
            if m.error() is not None:
                if m.error().code() == ck.KafkaError._PARTITION_EOF:
                    continue
                fail(tracker.client, "consume error: %s" % m.error())
            emit("R %d %d %s" % (m.partition(), m.offset(), m.value().decode()))
            tracker.read += 1
            positions[m.partition()] = m.offset() + 1
            to_commit[m.partition()] = m.offset() + 1
        if to_commit:
            offsets = [ck.TopicPartition(args.topic, p, o, metadata=tracker.metadata(p, o))
                       for p, o in sorted(to_commit.items())]
            result = consumer.commit(offsets=offsets, asynchronous=False)
            for tp in result:
                if tp.error is not None:
                    fail(tracker.client, "commit of partition %d failed: %s"
                         % (tp.partition, tp.error))
            tracker.committed.update(to_commit)
            if args.print_commits:
                for p, o in sorted(to_commit.items()):
                    emit("C %d %d" % (p, o))
        if consumer.assignment() and tracker.done(positions):
            break
        if args.pause:
            time.sleep(args.pause)
    consumer.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--client", required=True, choices=CLIENTS)
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--group", required=True)
    p.add_argument("--max", type=int, default=0)
    p.add_argument("--timeout", type=float, default=60)
    p.add_argument("--assignor", default=None)
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--pause", type=float, default=0.0)
    p.add_argument("--print-commits", action="store_true")
    args = p.parse_args()
    start_watchdog(args.client, args.timeout)
    tracker = Tracker(args.client, args)
    if args.client == "kafka-python":
        run_kafka_python(args, tracker)
    else:
        run_confluent(args, tracker)
    if not args.print_commits:
        for partition, offset in sorted(tracker.committed.items()):
            emit("C %d %d" % (partition, offset))
    emit("DONE %d" % tracker.read)


if __name__ == "__main__":
    try:
        main()
    except SystemExit:
        raise
    except BaseException as ex:  # noqa: BLE001 - report and exit non-zero
        import traceback
        traceback.print_exc()
        fail("group_consume.py", "unexpected %s: %s" % (type(ex).__name__, ex))
