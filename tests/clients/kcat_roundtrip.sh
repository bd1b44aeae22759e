#!/usr/bin/env bash
# kcat round trip against a broker: metadata, produce, read back, verify.
#
# Usage: kcat_roundtrip.sh --bootstrap HOST:PORT --topic NAME [--count N] [--timeout S]
#
# kcat cannot create topics, so the topic comes from the broker's auto-create (on by
# default; its partition count is the broker's num.partitions): `kcat -L -t` with
# allow.auto.create.topics=true asks for it and waits until every partition has a leader.
# Then `kcat -P -p P -K '\t' -H ... -l FILE` once per partition sends keys and values from
# a file, with the headers client=kcat and partition=P (kcat sets headers per invocation,
# not per record, and cannot set timestamps: the check is that each CreateTime falls in
# the produce window). `kcat -C -o beginning -e -J` reads all partitions back and
# `kcat -Q` gives the high watermarks. The plan and the checks are those of
# tests/clients/python/roundtrip_common.py (run with python3, standard library only).
# Prints one summary line; exits 0 only when everything matched; never runs longer
# than --timeout (default 60 s).
set -uo pipefail

CLIENT=kcat
here=$(cd "$(dirname "$0")" && pwd)
bootstrap="" topic="" count=1000 timeout_s=60
while (($#)); do
    case $1 in
    --bootstrap) bootstrap=$2; shift 2 ;;
    --topic) topic=$2; shift 2 ;;
    --count) count=$2; shift 2 ;;
    --timeout) timeout_s=$2; shift 2 ;;
    --partitions) shift 2 ;; # accepted for symmetry; kcat relies on auto-create
    *) echo "usage: $0 --bootstrap HOST:PORT --topic NAME [--count N] [--timeout S]" >&2; exit 2 ;;
    esac
done
[[ -n $bootstrap && -n $topic && $count =~ ^[1-9][0-9]*$ ]] || {
    echo "usage: $0 --bootstrap HOST:PORT --topic NAME [--count N] [--timeout S]" >&2
    exit 2
}

phase=start
fail() {
    echo "FAIL $CLIENT: $* (phase: $phase)"
    exit 1
}
command -v kcat >/dev/null || fail "kcat not found: run scripts/install-test-deps.sh"
command -v python3 >/dev/null || fail "python3 not found"
command -v timeout >/dev/null || fail "timeout (coreutils) not found"

start_s=$(date +%s)
deadline=$((start_s + timeout_s))
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Runs a command with what is left of the overall time limit.
run() {
    local left=$((deadline - $(date +%s)))
    ((left > 0)) || fail "overall timeout of ${timeout_s}s exceeded"
    timeout --kill-after=1 "$left" "$@"
}
KCAT=(kcat -b "$bootstrap" -X client.id=isthmus-test-kcat -m 10)
export PYTHONPATH="$here/python${PYTHONPATH:+:$PYTHONPATH}"

# ---------------------------------------------------------------- metadata (auto-create)
phase=metadata
partitions=0
while ((partitions == 0)); do
    if run "${KCAT[@]}" -L -J -t "$topic" -X allow.auto.create.topics=true \
        >"$work/metadata.json" 2>"$work/metadata.err"; then
        partitions=$(python3 - "$work/metadata.json" "$topic" <<'EOF'
import json, sys
md = json.load(open(sys.argv[1]))
ts = [t for t in md.get("topics", []) if t.get("topic") == sys.argv[2]]
ps = ts[0].get("partitions", []) if ts and not ts[0].get("error") else []
ok = ps and all(p.get("leader", -1) >= 0 and not p.get("error") for p in ps) \
    and sorted(p["partition"] for p in ps) == list(range(len(ps)))
print(len(ps) if ok else 0)
EOF
        ) || partitions=0
    fi
    if ((partitions == 0)); then
        (($(date +%s) + 1 < deadline)) || fail "kcat -L never showed $topic with a leader for" \
            "every partition; last answer: $(head -c 600 "$work/metadata.json") $(tail -n 3 "$work/metadata.err")"
        sleep 0.2
    fi
done

# ---------------------------------------------------------------- produce
phase=produce
python3 - "$work" "$count" "$partitions" <<'EOF' || fail "could not write the input files"
import sys
import roundtrip_common as rc
work, count, partitions = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
files = [open("%s/in-%d.txt" % (work, p), "wb") for p in range(partitions)]
for e in rc.plan("kcat", count, partitions, 0, binary=False):
    files[e.partition].write(e.key + b"\t" + e.value + b"\n")
for f in files:
    f.close()
EOF
ts_lo=$(date +%s%3N)
for ((p = 0; p < partitions; p++)); do
    run "${KCAT[@]}" -P -t "$topic" -p "$p" -K '\t' -H client=kcat -H "partition=$p" \
        -X acks=all -X enable.idempotence=false -X max.in.flight.requests.per.connection=1 \
        -X linger.ms=5 -l "$work/in-$p.txt" 2>"$work/produce-$p.err" ||
        fail "kcat -P to partition $p exited with $?: $(tail -n 5 "$work/produce-$p.err")"
done
ts_hi=$(date +%s%3N)

# ---------------------------------------------------------------- consume + high watermarks
phase=consume
run "${KCAT[@]}" -C -t "$topic" -o beginning -e -J -X fetch.wait.max.ms=200 \
    >"$work/consumed.jsonl" 2>"$work/consume.err" ||
    fail "kcat -C exited with $?: $(tail -n 5 "$work/consume.err")"
phase="end offsets"
query=()
for ((p = 0; p < partitions; p++)); do query+=(-t "$topic:$p:-1"); done
run "${KCAT[@]}" -Q "${query[@]}" >"$work/query.txt" 2>"$work/query.err" ||
    fail "kcat -Q exited with $?: $(tail -n 5 "$work/query.err")"

# ---------------------------------------------------------------- verify
phase=verify
versions=$(kcat -V 2>&1 | sed -n 's/^Version \([^ ]*\) .*librdkafka \([^ ]*\) .*/kcat \1, librdkafka \2/p')
python3 - "$work" "$topic" "$count" "$partitions" "$ts_lo" "$ts_hi" "$start_s" "$versions" <<'EOF'
import json, re, sys, time
import roundtrip_common as rc
work, topic = sys.argv[1], sys.argv[2]
count, partitions, ts_lo, ts_hi, start_s = (int(a) for a in sys.argv[3:8])

expected = rc.plan("kcat", count, partitions, 0, binary=False)
for e in expected:
    e.headers = [("client", b"kcat"), ("partition", str(e.partition).encode())]
v = rc.Verifier("kcat", expected, partitions, ts_range=(ts_lo, ts_hi))


def header_list(h):
    # kcat -J prints headers as a flat array [k1, v1, k2, v2, ...] (an object in some builds).
    if h is None:
        return []
    if isinstance(h, dict):
        h = [x for kv in h.items() for x in kv]
    return [(h[i], None if h[i + 1] is None else h[i + 1].encode()) for i in range(0, len(h), 2)]


with open(work + "/consumed.jsonl") as f:
    for n, line in enumerate(f, 1):
        line = line.strip()
        if not line:
            continue
        try:
            m = json.loads(line)
        except ValueError:
            v.error("line %d of kcat -C output is not JSON: %r" % (n, line[:200]))
            continue
        ts_type = {"create": 0}.get(m.get("tstype"), m.get("tstype"))
        key = m.get("key")
        value = m.get("payload")
        v.check(m.get("partition"), m.get("offset"), m.get("ts"), ts_type,
                None if key is None else key.encode(),
                None if value is None else value.encode(), header_list(m.get("headers")))

ends = {}
text = open(work + "/query.txt").read()
for m in re.finditer(r"\[(\d+)\]\s+offset\s+(-?\d+)", text):
    ends[int(m.group(1))] = int(m.group(2))
if v.done():
    v.check_end_offsets(ends)
    if not ends:
        v.error("could not read high watermarks from kcat -Q output: %r" % text[:300])
sys.exit(v.finish(time.time() - start_s, " (%s)" % sys.argv[8] if sys.argv[8:] and sys.argv[8] else ""))
EOF
