#!/usr/bin/env bash
# Benchmarks behind the figures in README.md, all measured in one run on this machine:
#   1. the storage ceiling: criterion's append bench (1 KiB records in 16 KiB batches),
#      page cache only and with an fsync after every append;
#   2. `isthmusctl perf produce` against a release `isthmus`, 1 and 8 partitions,
#      acks=1 and acks=all, in the durable default and in Kafka's page-cache mode;
#   3. `isthmusctl perf consume` of the 8-partition topic;
#   4. latency at 1,000 records/s (acks=all, linger.ms=0);
#   5. consumer groups: `isthmusctl perf rebalance` (10 consumers joining one group on a
#      12-partition topic, 5 rounds) with the broker's default 3 s initial rebalance delay
#      and with it set to 0, and `isthmusctl perf commit` (committed offsets per second);
#   6. the cluster: `isthmusctl perf metadata` (topic creations and deletions per second
#      committed by the metadata quorum, 8 requests in flight against 1) on a local
#      3-controller, 4-broker cluster (`isthmusctl cluster local`), and `isthmusctl perf
#      failover` (SIGKILL / SIGTERM of the broker leading the most of 1,000 partitions
#      until every partition has a live leader again; its own cluster, 3 runs);
#   7. replication: on the same local stretch layout, 8 partitions of 1 KiB records with
#      acks=all, RF=1 against RF=3 with min.insync.replicas=2 (peak records/s and MB/s,
#      3 alternating rounds, ratio of the medians), then both at half the RF=3 peak for
#      latency.
# Produce figures are also given as a ratio of the storage page-cache ceiling.
#
# Usage: bash scripts/bench.sh [RECORDS]     (default 1000000; prints a Markdown table)
#        GROUPS_ONLY=1 bash scripts/bench.sh  (only part 5)
#        CLUSTER_ONLY=1 bash scripts/bench.sh (only part 6; needs python3 to read JSON)
#        REPLICATION_ONLY=1 bash scripts/bench.sh [RECORDS] (only part 7)
#        BENCH_BIN_DIR=DIR … (isthmus and isthmusctl from DIR instead of a fresh release build)
#        BENCH_MEMORY_CAP=4G (default) | none … (see `cap_memory` below)
#        BENCH_REPLICATION_BROKERS=a:2,b:1 … (part 7 on these brokers instead of a:2,b:2)
set -euo pipefail
cd "$(dirname "$0")/.."

records=${1:-1000000}
work=$(mktemp -d /tmp/isthmus-bench.XXXXXX)
pids=()
memory_cgroup=""
cleanup() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
    if [[ -n $memory_cgroup ]]; then
        echo $$ >"$(dirname "$memory_cgroup")/cgroup.procs" 2>/dev/null || true
        rmdir "$memory_cgroup" 2>/dev/null || true
    fi
}
trap cleanup EXIT

# Runs the rest of this script (brokers, clients, everything it starts) in a memory cgroup
# capped at BENCH_MEMORY_CAP, so the page cache is recycled instead of growing into free
# memory. Why: on a VM whose host backs guest memory lazily and takes free pages back
# (Firecracker with free page reporting, as here), the first write to each page the guest
# has not touched lately costs a host fault, and page-cache writes drop from ~2.4 GB/s to
# ~0.4 GB/s of one core once a run has written a few GB (`dd` shows it alone). That cost
# falls on every byte a replica writes, so uncapped figures measure the hypervisor more than
# the broker. A machine with its own RAM never pays it. Needs root and cgroup v1 or v2;
# otherwise the run goes on uncapped and says so.
cap_memory() {
    local cap=${BENCH_MEMORY_CAP:-4G}
    [[ $cap == none ]] && return 0
    local dir=""
    if [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then
        # v2: a child of our own cgroup, whose parent must delegate the memory controller.
        local own
        own=$(sed -n 's/^0:://p' /proc/self/cgroup)
        dir=/sys/fs/cgroup${own%/}/isthmus-bench-$$
        mkdir "$dir" 2>/dev/null && echo "$cap" >"$dir/memory.max" 2>/dev/null || dir=""
    elif [[ -d /sys/fs/cgroup/memory ]]; then
        local own
        own=$(sed -n 's/^[0-9]*:memory://p' /proc/self/cgroup)
        dir=/sys/fs/cgroup/memory${own%/}/isthmus-bench-$$
        mkdir "$dir" 2>/dev/null && echo "$cap" >"$dir/memory.limit_in_bytes" 2>/dev/null || dir=""
    fi
    if [[ -n $dir ]] && echo $$ >"$dir/cgroup.procs" 2>/dev/null; then
        memory_cgroup=$dir
        echo "memory capped at $cap for this run (cgroup $dir); filling it with page cache once…" >&2
        # Until the cgroup is full, page-cache writes still land on pages the host has to
        # fault in: fill it once with a scratch file (clean, so reclaimed first), so the
        # first measured run recycles pages like the later ones.
        dd if=/dev/zero of="$work/fill" bs=1M count="$(numfmt --from=iec "$cap" | awk '{ print int($1 / 1048576) }')" \
            conv=fsync status=none || true
    else
        [[ -n $dir ]] && rmdir "$dir" 2>/dev/null
        echo "could not cap memory (needs root and a memory cgroup); running uncapped" >&2
    fi
}

if [[ -n ${BENCH_BIN_DIR:-} ]]; then
    # Binaries built elsewhere (e.g. a baseline commit), to compare two builds in one run.
    isthmus=$BENCH_BIN_DIR/isthmus
    ctl=$BENCH_BIN_DIR/isthmusctl
else
    cargo build --release -p isthmus-broker -p isthmus-ops >&2
    isthmus=target/release/isthmus
    ctl=target/release/isthmusctl
fi
cap_memory

json_field() { sed -E "s/.*\"$1\":([0-9.eE+-]+).*/\1/"; }
# Prints a Python expression over the JSON object on stdin (`v`), e.g. v["kill"]["runs"].
json_expr() { python3 -c "import json, sys; v = json.load(sys.stdin); print($1)"; }

cluster_benches() {
    local topics=500 concurrency=8
    # A stretch cluster for `perf metadata`: 3 controllers (a:2, b:1), 4 brokers (a:2, b:2).
    start_local_cluster cluster 39200
    echo
    echo "| metadata: $topics topics of 1 partition, 1 per request | RF | requests in flight | created/s | vs 1 in flight | p50 ms | p99 ms | deleted/s | vs 1 in flight | p50 ms | p99 ms |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|"
    for rf in 1 3; do
        local json
        json=$("$ctl" -b "$bootstrap" perf metadata --topics "$topics" --concurrency "$concurrency" \
            --replication-factor "$rf" --json 2>/dev/null)
        json_expr '"\n".join(
            "| 3 controllers, 4 brokers | %d | %d | %.0f | %.2fx | %.1f | %.1f | %.0f | %.2fx | %.1f | %.1f |" % (
                v["replication_factor"], l["concurrency"],
                l["create"]["topics_per_sec"], l["create"]["topics_per_sec"] / v["levels"][0]["create"]["topics_per_sec"],
                l["create"]["latency_p50_ms"], l["create"]["latency_p99_ms"],
                l["delete"]["topics_per_sec"], l["delete"]["topics_per_sec"] / v["levels"][0]["delete"]["topics_per_sec"],
                l["delete"]["latency_p50_ms"], l["delete"]["latency_p99_ms"])
            for l in v["levels"])' <<<"$json"
    done
    kill -TERM "$local_cluster_pid"
    wait "$local_cluster_pid" || true

    # `perf failover` starts (and stops) a cluster of its own.
    local json
    json=$("$ctl" perf failover --partitions 1000 --replication-factor 3 --runs 3 --base-port 39300 --json)
    echo
    json_expr '"| failover: %d partitions RF %d, %d controllers + %d brokers, session %d ms, heartbeat %d ms, %d runs | median ms | min ms | max ms |" % (
        v["partitions"], v["replication_factor"], v["controllers"], v["brokers"],
        v["session_timeout_ms"], v["heartbeat_interval_ms"], len(v["kill"]["runs"]))' <<<"$json"
    echo "|---|---|---|---|"
    json_expr '"\n".join("| %s | %.0f | %.0f | %.0f |" % (name, s["median"], s["min"], s["max"]) for name, s in [
        ("SIGKILL: until every partition has a live leader", v["kill"]["total_ms"]),
        ("… of which until fenced (no longer listed)", v["kill"]["fenced_ms"]),
        ("… of which elections after fencing", v["kill"]["elections_ms"]),
        ("SIGTERM (controlled shutdown): until it leads nothing", v["controlled_shutdown"]["moved_ms"]),
        ("SIGTERM: until the process exited", v["controlled_shutdown"]["exit_ms"]),
    ])' <<<"$json"
    echo
    json_expr '"Partitions moved per run: SIGKILL %s; SIGTERM %s (poll every %d ms)." % (
        ", ".join(str(r["partitions_moved"]) for r in v["kill"]["runs"]),
        ", ".join(str(r["partitions_moved"]) for r in v["controlled_shutdown"]["runs"]),
        v["poll_interval_ms"])' <<<"$json"
}

# Starts `isthmusctl cluster local` (the default stretch layout: controllers a:2,b:1,
# brokers a:2,b:2, unless more arguments say otherwise) in $work/$1 from port $2 and sets
# `bootstrap` to its brokers.
start_local_cluster() {
    local out="$work/$1.out"
    "$ctl" cluster local --dir "$work/$1" --base-port "$2" "${@:3}" >"$out" 2>&1 &
    local cluster_pid=$!
    pids+=("$cluster_pid")
    for _ in $(seq 600); do
        grep -q '^Bootstrap servers:' "$out" && break
        if ! kill -0 "$cluster_pid" 2>/dev/null; then
            echo "isthmusctl cluster local exited:" >&2
            cat "$out" >&2
            exit 1
        fi
        sleep 0.1
    done
    bootstrap=$(sed -n 's/^Bootstrap servers: //p' "$out")
    [[ -n $bootstrap ]] || { echo "the local cluster did not start:" >&2; cat "$out" >&2; exit 1; }
    local_cluster_pid=$cluster_pid
}

# `isthmusctl -b $bootstrap perf produce ARGS --json`: prints the JSON summary, or shows
# the client's last words and stops the run (a silent exit left nothing to go on).
replication_produce() {
    local err="$work/perf-produce.err"
    if ! "$ctl" -b "$bootstrap" perf produce "$@" --json 2>"$err"; then
        echo "isthmusctl perf produce $* failed:" >&2
        tail -n 20 "$err" >&2
        exit 1
    fi
}

replication_benches() {
    local brokers=${BENCH_REPLICATION_BROKERS:-a:2,b:2}
    start_local_cluster replication 39500 --brokers "$brokers"
    local partitions=8 rounds=3 out
    echo
    echo "| replication: $partitions partitions, 1 KiB, acks=all, $records records, brokers $brokers | records/s | MB/s | vs RF=1 | p50 ms | p99 ms | p99.9 ms |"
    echo "|---|---|---|---|---|---|---|"
    for rf in 1 3; do
        "$ctl" -b "$bootstrap" topics create --topic "repl-rf$rf" --partitions "$partitions" \
            --replication-factor "$rf" --config min.insync.replicas=$(( rf > 1 ? 2 : 1 )) >/dev/null
    done
    # RF=1's peak is the client's (librdkafka at full speed on the shared cores) and moves by
    # ±15% from run to run, so the peaks alternate for a few rounds and the ratio is taken
    # between the medians.
    local -a peaks1=() peaks3=()
    for round in $(seq "$rounds"); do
        for rf in 1 3; do
            sync
            out=$(replication_produce --topic "repl-rf$rf" --num-records "$records" \
                --record-size 1024 --throughput -1 --acks all)
            local rps
            rps=$(json_field records_per_sec <<<"$out")
            if [[ $rf == 1 ]]; then peaks1+=("$rps"); else peaks3+=("$rps"); fi
            printf '| RF=%s%s, peak (round %s) | %.0f | %.0f | | %.1f | %.1f | %.1f |\n' "$rf" \
                "$([[ $rf == 3 ]] && echo ", min.insync=2")" "$round" "$rps" "$(json_field mb_per_sec <<<"$out")" \
                "$(json_field latency_p50_ms <<<"$out")" "$(json_field latency_p99_ms <<<"$out")" \
                "$(json_field latency_p999_ms <<<"$out")"
        done
    done
    local median1 median3
    median1=$(printf '%s\n' "${peaks1[@]}" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
    median3=$(printf '%s\n' "${peaks3[@]}" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
    printf '| **median peak: RF=1 / RF=3** | %.0f / %.0f | %.0f / %.0f | **%s** | | | |\n' "$median1" "$median3" \
        "$(awk -v r="$median1" 'BEGIN { print r * 1024 / 1048576 }')" \
        "$(awk -v r="$median3" 'BEGIN { print r * 1024 / 1048576 }')" \
        "$(awk -v a="$median3" -v b="$median1" 'BEGIN { printf "%.0f%%", 100 * a / b }')"
    # Latency at half the median RF=3 peak, for 20 s, both replication factors.
    local half
    half=$(awk -v p="$median3" 'BEGIN { printf "%d", p / 2 }')
    for rf in 1 3; do
        sync
        out=$(replication_produce --topic "repl-rf$rf" --num-records $(( half * 20 )) \
            --record-size 1024 --throughput "$half" --acks all)
        printf '| RF=%s at %s records/s (half the RF=3 peak) | %.0f | %.0f | | %.1f | %.1f | %.1f |\n' "$rf" "$half" \
            "$(json_field records_per_sec <<<"$out")" "$(json_field mb_per_sec <<<"$out")" \
            "$(json_field latency_p50_ms <<<"$out")" "$(json_field latency_p99_ms <<<"$out")" \
            "$(json_field latency_p999_ms <<<"$out")"
    done
    kill -TERM "$local_cluster_pid"
    wait "$local_cluster_pid" || true
}

if [[ ${REPLICATION_ONLY:-0} == 1 ]]; then
    replication_benches
    exit 0
fi

if [[ ${CLUSTER_ONLY:-0} == 1 ]]; then
    cluster_benches
    exit 0
fi

if [[ ${GROUPS_ONLY:-0} != 1 ]]; then
    echo "storage bench (cargo bench -p isthmus-storage)…" >&2
    cargo bench -p isthmus-storage --bench append_read 2>/dev/null >"$work/criterion.txt"
fi
# criterion prints `thrpt:  [low mid high]`; take the middle estimate of each append bench.
thrpt() {
    grep -A3 "$1" "$work/criterion.txt" | grep -m1 'thrpt:' |
        sed -E 's/.*thrpt: *\[[^ ]+ [^ ]+ ([0-9.]+) ([KMG]iB)\/s.*/\1 \2/' |
        awk '{ v=$1; if ($2=="GiB") v*=1024; if ($2=="KiB") v/=1024; printf "%.0f", v*1.048576 }'
}
if [[ ${GROUPS_ONLY:-0} != 1 ]]; then
    ceiling_cache=$(thrpt "append/page_cache")
    ceiling_fsync=$(thrpt "append/fsync_each")
fi

declare -A broker_pid
start_broker() { # name port extra-args...
    local name=$1 port=$2
    shift 2
    "$isthmus" --listeners "PLAINTEXT://127.0.0.1:$port" --log.dirs "$work/$name" "$@" >"$work/$name.log" 2>&1 &
    pids+=($!)
    broker_pid[$name]=$!
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "broker $name did not start; log:" >&2
    cat "$work/$name.log" >&2
    exit 1
}

# CPU seconds (user + system) a process has used so far.
cpu_seconds() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }

group_benches() {
    local port=39094
    start_broker groups-nodelay "$port" --group.initial.rebalance.delay.ms 0 \
        --group.consumer.heartbeat.interval.ms 500
    echo
    echo "| rebalance: 10 consumers, 12 partitions, 5 rounds | assignor | median ms | min ms | max ms |"
    echo "|---|---|---|---|---|"
    for target in "durable 39092" "groups-nodelay $port"; do
        read -r name p <<<"$target"
        for assignor in range cooperative-sticky consumer-protocol; do
            out=$("$ctl" -b "127.0.0.1:$p" perf rebalance --topic "rebalance-$assignor" --consumers 10 \
                --partitions 12 --rounds 5 --assignor "$assignor" --json 2>/dev/null)
            delay="defaults (classic: 3000 ms join delay; consumer protocol: 5000 ms heartbeat)"
            [[ $name == groups-nodelay ]] && delay="join delay 0, consumer-protocol heartbeat 500 ms"
            printf '| %s | %s | %.0f | %.0f | %.0f |\n' "$delay" "$assignor" "$(json_field median_ms <<<"$out")" \
                "$(json_field min_ms <<<"$out")" "$(json_field max_ms <<<"$out")"
        done
    done
    echo
    echo "| commit (durable broker) | commits/s | offsets/s | p50 ms | p99 ms | max ms |"
    echo "|---|---|---|---|---|---|"
    for shape in "1 1 20000" "4 4 40000" "16 16 80000" "4 64 40000"; do
        read -r committers partitions commits <<<"$shape"
        out=$("$ctl" -b 127.0.0.1:39092 perf commit --topic "commits-$partitions" --partitions "$partitions" \
            --committers "$committers" --commits "$commits" --json 2>/dev/null)
        printf '| %s committers, %s partitions | %.0f | %.0f | %.2f | %.2f | %.2f |\n' "$committers" "$partitions" \
            "$(json_field commits_per_sec <<<"$out")" "$(json_field offsets_per_sec <<<"$out")" \
            "$(json_field latency_p50_ms <<<"$out")" "$(json_field latency_p99_ms <<<"$out")" \
            "$(json_field latency_max_ms <<<"$out")"
    done
}

start_broker durable 39092
if [[ ${GROUPS_ONLY:-0} == 1 ]]; then
    group_benches
    exit 0
fi
start_broker pagecache 39093 --log.flush.interval.messages 9223372036854775807

echo
echo "| latency at 1,000 records/s, acks=all, linger.ms=0 | p50 ms | p99 ms | p99.9 ms | max ms |"
echo "|---|---|---|---|---|"
for mode in durable pagecache; do
    port=39092
    [[ $mode == pagecache ]] && port=39093
    sync
    out=$("$ctl" -b "127.0.0.1:$port" perf produce --topic "latency" --partitions 1 --num-records 15000 \
        --record-size 1024 --throughput 1000 --acks all --linger-ms 0 --json 2>/dev/null)
    printf '| %s | %.2f | %.2f | %.2f | %.2f |\n' "$mode" "$(json_field latency_p50_ms <<<"$out")" \
        "$(json_field latency_p99_ms <<<"$out")" "$(json_field latency_p999_ms <<<"$out")" "$(json_field latency_max_ms <<<"$out")"
done

echo
echo "| mode | partitions | acks | records/s | MB/s | of storage ceiling | p99 ms | broker CPU s per GB |"
echo "|---|---|---|---|---|---|---|---|"
for mode in durable pagecache; do
    port=39092
    [[ $mode == pagecache ]] && port=39093
    for partitions in 1 8; do
        for acks in 1 all; do
            topic="bench-$partitions-$acks"
            # Start each run with no dirty pages left over from the previous one.
            sync
            cpu_before=$(cpu_seconds "${broker_pid[$mode]}")
            out=$("$ctl" -b "127.0.0.1:$port" perf produce --topic "$topic" --partitions "$partitions" \
                --num-records "$records" --record-size 1024 --throughput -1 --acks "$acks" --json 2>/dev/null)
            rps=$(json_field records_per_sec <<<"$out")
            mbs=$(json_field mb_per_sec <<<"$out")
            p99=$(json_field latency_p99_ms <<<"$out")
            ratio=$(awk -v a="$mbs" -v c="$ceiling_cache" 'BEGIN { printf "%.0f%%", 100 * a * 1.048576 / c }')
            cpu=$(awk -v a="$cpu_before" -v b="$(cpu_seconds "${broker_pid[$mode]}")" -v n="$records" \
                'BEGIN { printf "%.2f", (b - a) / (n * 1024 / 1e9) }')
            printf '| %s | %s | %s | %.0f | %.0f | %s | %.1f | %s |\n' "$mode" "$partitions" "$acks" "$rps" "$mbs" "$ratio" "$p99" "$cpu"
        done
    done
done

echo
echo "| consume (8 partitions, from the start) | records/s | MB/s |"
echo "|---|---|---|"
for mode in durable pagecache; do
    port=39092
    [[ $mode == pagecache ]] && port=39093
    out=$("$ctl" -b "127.0.0.1:$port" perf consume --topic bench-8-all --messages "$records" --json 2>/dev/null)
    printf '| %s | %.0f | %.0f |\n' "$mode" "$(json_field records_per_sec <<<"$out")" "$(json_field mb_per_sec <<<"$out")"
done

group_benches
cluster_benches
replication_benches

echo
echo "Storage ceiling (criterion, same run): append page cache ${ceiling_cache} MB/s, append + fsync each ${ceiling_fsync} MB/s."
