"""Shared record plan and verifier for the client round-trip programs.

Every round-trip program (Python, Go, Node, kcat) produces the same plan:
record ``i`` of ``count`` goes to partition ``i % partitions`` with

* key     ``<client>-key-<i:06d>``
* value   ``<client>-value-<i:06d>|`` followed by ``i % 101`` payload bytes
          (binary for clients that can send any bytes, ASCII letters for kcat)
* headers ``seq=<i>``, ``client=<client>``, ``bin=[i % 256, 0, 255]``,
          plus ``empty=`` (empty value) when ``i % 10 == 0``
* timestamp ``base_ts_ms + i`` (CreateTime)

and then checks, record by record, what it reads back from the earliest offset.
Only the standard library is used, so the kcat script can run it with any python3.
"""

import argparse
import os
import sys
import threading
import time

OVERALL_TIMEOUT_S = 60
MAX_ERRORS_REPORTED = 20
TIMESTAMP_TYPE_CREATE = 0


def parse_args(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--bootstrap", required=True, help="HOST:PORT of a broker")
    p.add_argument("--topic", required=True)
    p.add_argument("--count", type=int, default=1000, help="records to produce (default 1000)")
    p.add_argument("--partitions", type=int, default=3,
                   help="partitions to create the topic with (default 3)")
    p.add_argument("--timeout", type=float, default=OVERALL_TIMEOUT_S,
                   help="overall time limit in seconds (default %d)" % OVERALL_TIMEOUT_S)
    args = p.parse_args()
    if args.count < 1 or args.partitions < 1:
        p.error("--count and --partitions must be at least 1")
    return args


def start_watchdog(client, timeout_s):
    """Kills the process with a clear message if the whole run takes too long."""

    def fire():
        sys.stdout.write("FAIL %s: overall timeout of %.0fs exceeded (phase: %s)\n"
                         % (client, timeout_s, PHASE[0]))
        sys.stdout.flush()
        os._exit(3)

    t = threading.Timer(timeout_s, fire)
    t.daemon = True
    t.start()
    return t


PHASE = ["start"]


def phase(name):
    PHASE[0] = name


def payload(i, binary):
    n = i % 101
    if binary:
        return bytes((i * 31 + j * 7) % 256 for j in range(n))
    return bytes(ord("a") + (i + j) % 26 for j in range(n))


class Expected:
    __slots__ = ("seq", "partition", "key", "value", "headers", "timestamp")

    def __init__(self, client, i, partitions, base_ts_ms, binary=True):
        self.seq = i
        self.partition = i % partitions
        self.key = ("%s-key-%06d" % (client, i)).encode()
        self.value = ("%s-value-%06d|" % (client, i)).encode() + payload(i, binary)
        self.headers = [("seq", str(i).encode()), ("client", client.encode()),
                        ("bin", bytes([i % 256, 0, 255]))]
        if i % 10 == 0:
            self.headers.append(("empty", b""))
        self.timestamp = base_ts_ms + i


def plan(client, count, partitions, base_ts_ms, binary=True):
    return [Expected(client, i, partitions, base_ts_ms, binary) for i in range(count)]


def base_timestamp_ms():
    # A minute in the past, whole seconds: clearly distinct from append time.
    return (int(time.time()) - 60) * 1000


def short(b, limit=48):
    if b is None:
        return "None"
    r = repr(bytes(b))
    return r if len(r) <= limit else r[:limit] + "...(%d bytes)" % len(b)


class Verifier:
    """Checks consumed records against the plan.

    ``ts_range``: when the client cannot set timestamps (kcat), the inclusive
    (min, max) range a CreateTime timestamp must fall in instead of an exact value.
    """

    def __init__(self, client, expected, partitions, ts_range=None):
        self.client = client
        self.expected = expected
        self.partitions = partitions
        self.ts_range = ts_range
        self.key_prefix = ("%s-key-" % client).encode()
        self.seen = set()
        self.next_offset = {p: 0 for p in range(partitions)}
        self.last_seq = {p: -1 for p in range(partitions)}
        self.delivered_offset = {}
        self.errors = []
        self.consumed = 0

    def error(self, msg):
        self.errors.append(msg)

    def too_many_errors(self):
        return len(self.errors) >= MAX_ERRORS_REPORTED

    def expected_count(self, partition):
        return sum(1 for e in self.expected if e.partition == partition)

    def record_delivery(self, seq, partition, offset):
        """A produce acknowledgement: checked against what is read back."""
        e = self.expected[seq]
        if partition != e.partition:
            self.error("seq %d acknowledged on partition %d, produced to %d"
                       % (seq, partition, e.partition))
        self.delivered_offset[seq] = offset

    def done(self):
        return len(self.seen) == len(self.expected)

    def check(self, partition, offset, timestamp, timestamp_type, key, value, headers):
        self.consumed += 1
        where = "partition %d offset %d" % (partition, offset)
        key = bytes(key) if key is not None else None
        if key is None or not key.startswith(self.key_prefix):
            self.error("%s: unexpected key %s" % (where, short(key)))
            return
        try:
            seq = int(key[len(self.key_prefix):])
        except ValueError:
            self.error("%s: unexpected key %s" % (where, short(key)))
            return
        if not 0 <= seq < len(self.expected):
            self.error("%s: key %s is outside the plan" % (where, short(key)))
            return
        e = self.expected[seq]
        if seq in self.seen:
            self.error("%s: seq %d read twice" % (where, seq))
            return
        self.seen.add(seq)
        if key != e.key:
            self.error("%s: seq %d key %s != %s" % (where, seq, short(key), short(e.key)))
        if partition != e.partition:
            self.error("%s: seq %d was produced to partition %d" % (where, seq, e.partition))
        if partition in self.next_offset:
            if offset != self.next_offset[partition]:
                self.error("%s: seq %d: expected offset %d on partition %d (offsets must be "
                           "contiguous from 0)" % (where, seq, self.next_offset[partition],
                                                   partition))
            self.next_offset[partition] = offset + 1
            if seq <= self.last_seq[partition]:
                self.error("%s: seq %d read after seq %d: order within the partition broken"
                           % (where, seq, self.last_seq[partition]))
            self.last_seq[partition] = seq
        if seq in self.delivered_offset and self.delivered_offset[seq] != offset:
            self.error("%s: seq %d was acknowledged at offset %d"
                       % (where, seq, self.delivered_offset[seq]))
        value = bytes(value) if value is not None else None
        if value != e.value:
            self.error("%s: seq %d value %s != expected %s"
                       % (where, seq, short(value), short(e.value)))
        got_headers = [(k if isinstance(k, str) else bytes(k).decode("utf-8", "replace"),
                        bytes(v) if v is not None else None) for k, v in (headers or [])]
        if got_headers != e.headers:
            self.error("%s: seq %d headers %r != expected %r" % (where, seq, got_headers, e.headers))
        if timestamp_type is not None and timestamp_type != TIMESTAMP_TYPE_CREATE:
            self.error("%s: seq %d timestamp type %r, expected CreateTime"
                       % (where, seq, timestamp_type))
        if self.ts_range is None:
            if timestamp != e.timestamp:
                self.error("%s: seq %d timestamp %r != expected %d"
                           % (where, seq, timestamp, e.timestamp))
        else:
            lo, hi = self.ts_range
            if timestamp is None or not lo <= timestamp <= hi:
                self.error("%s: seq %d timestamp %r outside the produce window [%d, %d]"
                           % (where, seq, timestamp, lo, hi))

    def check_end_offsets(self, end_offsets):
        """``end_offsets``: {partition: high watermark} read after consuming."""
        for p in range(self.partitions):
            want = self.expected_count(p)
            got = end_offsets.get(p)
            if got != want:
                self.error("partition %d: high watermark %r, expected %d (records produced to it)"
                           % (p, got, want))

    def finish(self, elapsed_s, extra=""):
        """Prints the one-line summary (and details on failure); returns the exit code."""
        missing = [e.seq for e in self.expected if e.seq not in self.seen]
        if missing:
            by_p = {}
            for s in missing:
                by_p.setdefault(self.expected[s].partition, []).append(s)
            self.error("%d of %d records never read back; first missing per partition: %s"
                       % (len(missing), len(self.expected),
                          ", ".join("p%d: seq %s" % (p, v[:5]) for p, v in sorted(by_p.items()))))
        if self.errors:
            print("FAIL %s: %d problem(s), consumed %d of %d in %.1fs%s; first: %s"
                  % (self.client, len(self.errors), self.consumed, len(self.expected), elapsed_s,
                     extra, self.errors[0]))
            for e in self.errors[1:MAX_ERRORS_REPORTED]:
                print("  - " + e)
            sys.stdout.flush()
            return 1
        print("OK %s: %d records over %d partitions produced and read back intact "
              "(keys, values, headers, timestamps, per-partition order, offsets) in %.1fs%s"
              % (self.client, len(self.expected), self.partitions, elapsed_s, extra))
        sys.stdout.flush()
        return 0


def fail(client, msg, code=1):
    print("FAIL %s: %s (phase: %s)" % (client, msg, PHASE[0]))
    sys.stdout.flush()
    sys.exit(code)
