#!/usr/bin/env python3
"""kafka-python round trip against a broker: create topic, produce, read back, verify.

Usage: kafka_python_roundtrip.py --bootstrap HOST:PORT --topic NAME [--count N]

Creates the topic (--partitions, default 3) through the admin client, produces
--count records with explicit partitions, keys, values, headers and timestamps
(see roundtrip_common.py), reads every partition back from the earliest offset
with an assigned consumer (no consumer group) and checks each record. Prints one
summary line; exits 0 only when everything matched.
"""

import logging
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import roundtrip_common as rc  # noqa: E402

CLIENT = "kafka-python"
ERROR_TOPIC_ALREADY_EXISTS = 36


def main():
    args = rc.parse_args(__doc__.splitlines()[0])
    rc.start_watchdog(CLIENT, args.timeout)
    started = time.monotonic()
    deadline = started + args.timeout - 5
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")

    try:
        import kafka
        from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
    except ImportError as e:
        rc.fail(CLIENT, "kafka-python is not installed (%s): run scripts/install-test-deps.sh" % e)

    common = dict(bootstrap_servers=[args.bootstrap], client_id="isthmus-test-" + CLIENT,
                  request_timeout_ms=15000)

    # -- create the topic
    rc.phase("create topic")
    admin = KafkaAdminClient(**common)
    try:
        result = admin.create_topics(
            {args.topic: {"num_partitions": args.partitions, "replication_factor": 1}},
            timeout_ms=10000, raise_errors=False)
    finally:
        admin.close()
    codes = {t.get("name"): t.get("error_code") for t in result.get("topics", [])}
    code = codes.get(args.topic)
    if code not in (0, ERROR_TOPIC_ALREADY_EXISTS):
        rc.fail(CLIENT, "CreateTopics for %s returned error code %r (full answer: %r)"
                % (args.topic, code, result))

    # -- wait for metadata with a leader for every partition
    rc.phase("metadata")
    producer = KafkaProducer(acks="all", enable_idempotence=False, linger_ms=5,
                             max_in_flight_requests_per_connection=1, max_block_ms=20000,
                             **common)
    partitions = set()
    while time.monotonic() < deadline:
        partitions = producer.partitions_for(args.topic) or set()
        if len(partitions) == args.partitions or (code != 0 and partitions):
            break
        time.sleep(0.2)
    if sorted(partitions) != list(range(len(partitions))) or not partitions:
        rc.fail(CLIENT, "metadata for %s lists partitions %r (asked for %d)"
                % (args.topic, sorted(partitions), args.partitions))
    n_partitions = len(partitions)

    # -- produce
    rc.phase("produce")
    base_ts = rc.base_timestamp_ms()
    expected = rc.plan(CLIENT, args.count, n_partitions, base_ts)
    verifier = rc.Verifier(CLIENT, expected, n_partitions)
    futures = []
    for e in expected:
        futures.append(producer.send(args.topic, key=e.key, value=e.value, headers=e.headers,
                                     partition=e.partition, timestamp_ms=e.timestamp))
    producer.flush(timeout=max(1.0, deadline - time.monotonic()))
    produce_errors = 0
    for e, f in zip(expected, futures):
        try:
            md = f.get(timeout=max(0.1, deadline - time.monotonic()))
        except Exception as ex:  # noqa: BLE001 - any failure is reported
            produce_errors += 1
            if produce_errors <= 5:
                verifier.error("produce of seq %d to partition %d failed: %r"
                               % (e.seq, e.partition, ex))
            continue
        verifier.record_delivery(e.seq, md.partition, md.offset)
    producer.close(timeout=5)
    if produce_errors:
        verifier.error("%d of %d produce requests failed" % (produce_errors, args.count))
        sys.exit(verifier.finish(time.monotonic() - started))

    # -- consume from the earliest offset, no consumer group
    rc.phase("consume")
    consumer = KafkaConsumer(group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest", fetch_max_wait_ms=200, **common)
    tps = [TopicPartition(args.topic, p) for p in range(n_partitions)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    while not verifier.done() and not verifier.too_many_errors():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        batches = consumer.poll(timeout_ms=int(min(500, remaining * 1000)))
        for tp, records in batches.items():
            for r in records:
                verifier.check(r.partition, r.offset, r.timestamp, r.timestamp_type,
                               r.key, r.value, r.headers)

    rc.phase("end offsets")
    if verifier.done():
        ends = consumer.end_offsets(tps)
        verifier.check_end_offsets({tp.partition: off for tp, off in ends.items()})
    consumer.close()
    sys.exit(verifier.finish(time.monotonic() - started,
                             " (kafka-python %s)" % getattr(kafka, "__version__", "?")))


if __name__ == "__main__":
    try:
        main()
    except SystemExit:
        raise
    except BaseException as ex:  # noqa: BLE001 - report and exit non-zero
        import traceback
        traceback.print_exc()
        rc.fail(CLIENT, "unexpected %s: %s" % (type(ex).__name__, ex))
