#!/usr/bin/env python3
"""confluent-kafka (librdkafka) round trip against a broker: create topic, produce, read back, verify.

Usage: confluent_roundtrip.py --bootstrap HOST:PORT --topic NAME [--count N]

Creates the topic (--partitions, default 3) through the AdminClient, produces
--count records with explicit partitions, keys, values, headers and timestamps
(see roundtrip_common.py), reads every partition back from the earliest offset
with assign() (confluent-kafka insists on a group.id, but no group is joined and
nothing is committed) and checks each record. Prints one summary line; exits 0
only when everything matched.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import roundtrip_common as rc  # noqa: E402

CLIENT = "confluent-kafka"


def log_error(err):
    sys.stderr.write("librdkafka error: %s\n" % err)
    if err.fatal():
        rc.fail(CLIENT, "fatal librdkafka error: %s" % err)


def main():
    args = rc.parse_args(__doc__.splitlines()[0])
    rc.start_watchdog(CLIENT, args.timeout)
    started = time.monotonic()
    deadline = started + args.timeout - 5

    try:
        import confluent_kafka as ck
        from confluent_kafka.admin import AdminClient, NewTopic
    except ImportError as e:
        rc.fail(CLIENT, "confluent-kafka is not installed (%s): run scripts/install-test-deps.sh"
                % e)

    common = {"bootstrap.servers": args.bootstrap, "client.id": "isthmus-test-" + CLIENT,
              "error_cb": log_error}

    # -- create the topic
    rc.phase("create topic")
    admin = AdminClient(dict(common))
    futures = admin.create_topics([NewTopic(args.topic, num_partitions=args.partitions,
                                            replication_factor=1)],
                                  operation_timeout=10, request_timeout=15)
    created = True
    try:
        futures[args.topic].result(timeout=20)
    except ck.KafkaException as ex:
        err = ex.args[0]
        if err.code() != ck.KafkaError.TOPIC_ALREADY_EXISTS:
            rc.fail(CLIENT, "CreateTopics for %s failed: %s" % (args.topic, err))
        created = False

    # -- wait for metadata with a leader for every partition
    rc.phase("metadata")
    producer = ck.Producer(dict(common, **{
        "acks": "all", "enable.idempotence": False,
        "max.in.flight.requests.per.connection": 1, "linger.ms": 5,
        "message.timeout.ms": 30000,
    }))
    partitions, last = [], None
    while time.monotonic() < deadline:
        md = producer.list_topics(args.topic, timeout=5)
        t = md.topics.get(args.topic)
        last = t
        if t is not None and t.error is None and t.partitions and \
                all(p.leader >= 0 and p.error is None for p in t.partitions.values()):
            partitions = sorted(t.partitions)
            if len(partitions) == args.partitions or not created:
                break
        time.sleep(0.2)
    if not partitions or partitions != list(range(len(partitions))):
        rc.fail(CLIENT, "metadata for %s never listed partitions with leaders (last: %r)"
                % (args.topic, last and (last.error, last.partitions)))
    n_partitions = len(partitions)

    # -- produce
    rc.phase("produce")
    base_ts = rc.base_timestamp_ms()
    expected = rc.plan(CLIENT, args.count, n_partitions, base_ts)
    verifier = rc.Verifier(CLIENT, expected, n_partitions)
    produce_errors = []

    def on_delivery(seq):
        def cb(err, msg):
            if err is not None:
                produce_errors.append("seq %d: %s" % (seq, err))
            else:
                verifier.record_delivery(seq, msg.partition(), msg.offset())
        return cb

    for e in expected:
        while True:
            try:
                producer.produce(args.topic, value=e.value, key=e.key, partition=e.partition,
                                 timestamp=e.timestamp, headers=e.headers,
                                 on_delivery=on_delivery(e.seq))
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    left = producer.flush(max(1.0, deadline - time.monotonic()))
    if left or produce_errors:
        for msg in produce_errors[:5]:
            verifier.error("produce failed: " + msg)
        verifier.error("%d produce(s) failed, %d still undelivered after flush"
                       % (len(produce_errors), left))
        sys.exit(verifier.finish(time.monotonic() - started))

    # -- consume from the earliest offset (assign, no group join, no commits)
    rc.phase("consume")
    consumer = ck.Consumer(dict(common, **{
        "group.id": "isthmus-test-unused-" + args.topic,
        "enable.auto.commit": False, "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest", "fetch.wait.max.ms": 200,
    }))
    consumer.assign([ck.TopicPartition(args.topic, p, ck.OFFSET_BEGINNING)
                     for p in range(n_partitions)])
    while not verifier.done() and not verifier.too_many_errors():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        for msg in consumer.consume(num_messages=500, timeout=min(0.5, remaining)):
            if msg.error() is not None:
                if msg.error().code() != ck.KafkaError._PARTITION_EOF:
                    verifier.error("consume error on partition %s: %s"
                                   % (msg.partition(), msg.error()))
                continue
            ts_type, ts = msg.timestamp()
            ts_type = 0 if ts_type == ck.TIMESTAMP_CREATE_TIME else "librdkafka type %d" % ts_type
            verifier.check(msg.partition(), msg.offset(), ts, ts_type, msg.key(), msg.value(),
                           msg.headers())

    rc.phase("end offsets")
    if verifier.done():
        ends = {}
        for p in range(n_partitions):
            _low, high = consumer.get_watermark_offsets(ck.TopicPartition(args.topic, p),
                                                        timeout=5)
            ends[p] = high
        verifier.check_end_offsets(ends)
    consumer.close()
    sys.exit(verifier.finish(time.monotonic() - started,
                             " (confluent-kafka %s, librdkafka %s)"
                             % (ck.__version__, ck.libversion()[0])))


if __name__ == "__main__":
    try:
        main()
    except SystemExit:
        raise
    except BaseException as ex:  # noqa: BLE001 - report and exit non-zero
        import traceback
        traceback.print_exc()
        rc.fail(CLIENT, "unexpected %s: %s" % (type(ex).__name__, ex))
