#!/usr/bin/env bash
# One stompd node against three, all on one Redis, on this machine, loopback only, driven by
# the same load generator (`stompd-bench`): fan-out, rooms and receipted publish, each as the
# ratio of three nodes to one, with one SQLite node (no Redis) alongside for reference.
#
#   scripts/bench-cluster.sh [--repeats N] [--duration S] [--warmup S] [--scenarios LIST]
#
# Builds stompd and stompd-bench (Release, build/bench-rel), starts redis-server on a free
# port with its own temporary directory (appendonly yes, appendfsync everysec: what most
# deployments run), then for each scenario alternates sqlite-1, redis-1 and redis-3
# --repeats times (Redis flushed between runs). In redis-3 the connections are spread over
# the three nodes round robin: subscribers on every node, publishers on all. The CPU figure
# is the nodes' and Redis's together; Redis's own is reported too. Prints medians; raw
# results stay in build/bench-cluster/DATE/. Everything it started is stopped on exit.
#
# Scenarios (default all), journaled topics (each message stored, in Redis or SQLite) unless
# named live: fanout (1 publisher, 100 subscribers, closed loop), fanout-live (the same on a
# live-only topic: Redis pub/sub between nodes), rooms (1000 rooms x 2 members, 10000 msg/s),
# journal (receipted publish, 4 publishers x 128 in flight).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
command_line="scripts/bench-cluster.sh${*:+ $*}"

repeats=3
duration=8
warmup=2
scenarios=fanout,fanout-live,rooms,journal
usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --repeats) repeats=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --scenarios) scenarios=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "bench-cluster: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done
for n in "$repeats" "$duration" "$warmup"; do
  [[ "$n" =~ ^[0-9]+$ ]] || { echo "bench-cluster: '$n' is not a whole number" >&2; exit 2; }
done
(( repeats >= 1 && repeats <= 20 && duration >= 1 && duration <= 300 )) ||
  { echo "bench-cluster: --repeats 1..20, --duration 1..300" >&2; exit 2; }

scripts/install-deps build
command -v redis-server >/dev/null || scripts/install-deps test
build=build/bench-rel
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSTOMPD_BUILD_BENCH=ON >/dev/null
cmake --build "$build" --target stompd stompd-bench
stompd=$root/$build/broker/stompd
bench=$root/$build/bench/stompd-bench

out=$root/build/bench-cluster/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"
work=$(mktemp -d /tmp/stompd-bench-cluster.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
redis_port=$(free_port)
mkdir -p "$work/redis"
redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$work/redis" --save "" \
  --appendonly yes --appendfsync everysec --daemonize no >"$work/redis.log" 2>&1 &
redis_pid=$!
pids+=("$redis_pid")
for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done

# start_nodes MODE COUNT: starts COUNT nodes (MODE sqlite or redis); sets urls, node_pids.
start_nodes() {
  local mode=$1 count=$2 k
  urls="" node_pids=""
  for ((k = 0; k < count; k++)); do
    local ws=$((15700 + k)) data="$work/data-$mode-$k-$RANDOM"
    local args=(--config scripts/bench/stompd-bench.yaml --tcp off --ws "127.0.0.1:$ws"
                --admin off --data "$data" --log-level warn)
    [[ $mode == redis ]] && args+=(--redis "127.0.0.1:$redis_port")
    "$stompd" "${args[@]}" 2>>"$work/stompd.log" &
    pids+=("$!")
    node_pids+="${node_pids:+,}$!"
    urls+="${urls:+,}ws://127.0.0.1:$ws/ws"
  done
  for ((k = 0; k < count; k++)); do
    for _ in $(seq 100); do
      (exec 3<>/dev/tcp/127.0.0.1/$((15700 + k))) 2>/dev/null && break
      sleep 0.05
    done
  done
  sleep 0.3  # the nodes connect to Redis
}
stop_nodes() {
  local p
  for p in ${node_pids//,/ }; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
}

scenario_args() {
  case "$1" in
    fanout) echo "fanout --subscribers 100 --window 200 --body-bytes 128 --destination /topic/bench.journaled.fanout" ;;
    fanout-live) echo "fanout --subscribers 100 --window 200 --body-bytes 128" ;;
    rooms) echo "rooms --rooms 1000 --members 2 --total-rate 10000 --body-bytes 128 --destination /topic/bench.journaled.room" ;;
    journal) echo "journal --publishers 4 --inflight 128 --body-bytes 128" ;;
    *) echo "bench-cluster: unknown scenario $1" >&2; exit 2 ;;
  esac
}

redis_cpu() { awk '{print ($14 + $15) / 100}' "/proc/$redis_pid/stat"; }

for scenario in ${scenarios//,/ }; do
  for ((r = 1; r <= repeats; r++)); do
    for setup in sqlite-1 redis-1 redis-3; do
      mode=${setup%-*} count=${setup#*-}
      redis-cli -p "$redis_port" flushall >/dev/null
      start_nodes "$mode" "$count"
      cpu_pids=$node_pids
      [[ $mode == redis ]] && cpu_pids+=",$redis_pid"
      before=$(redis_cpu)
      # shellcheck disable=SC2046
      "$bench" $(scenario_args "$scenario") --url "$urls" --warmup "$warmup" \
        --duration "$duration" --broker-pid "$cpu_pids" --no-progress --json \
        --label "$setup" >"$out/$scenario-$setup-$r.json" 2>>"$out/bench.log" ||
        echo "bench-cluster: $scenario $setup run $r failed (see $out/bench.log)" >&2
      after=$(redis_cpu)
      echo "{\"redis_cpu_s\": $(awk "BEGIN { print $after - $before }")}" >"$out/$scenario-$setup-$r.redis.json"
      stop_nodes
    done
  done
done

python3 - "$out" "$command_line" <<'EOF'
import glob, json, os, statistics, sys
out, command = sys.argv[1], sys.argv[2]
def runs(scenario, setup):
    found = []
    for path in sorted(glob.glob(f"{out}/{scenario}-{setup}-[0-9]*.json")):
        if path.endswith(".redis.json"):
            continue
        with open(path) as f:
            text = f.read().strip()
        if not text:
            continue
        r = json.loads(text)
        with open(path[:-5] + ".redis.json") as f:
            r["redis_cpu_s"] = json.load(f)["redis_cpu_s"]
        found.append(r)
    return found
def median(rs, key):
    values = [r[key] for r in rs if key in r]
    return statistics.median(values) if values else None
rate_key = {"journal": "receipted_per_s"}
print(f"\n{command}\n")
print("| scenario | setup | median rate | ratio to redis-1 | nodes+Redis CPU % | Redis CPU s | errors |")
print("|---|---|---|---|---|---|---|")
scenarios = {os.path.basename(p).rsplit("-", 3)[0] for p in glob.glob(f"{out}/*-[0-9].json")}
for scenario in sorted(scenarios):
    base = median(runs(scenario, "redis-1"), rate_key.get(scenario, "deliveries_per_s"))
    for setup in ("sqlite-1", "redis-1", "redis-3"):
        rs = runs(scenario, setup)
        if not rs:
            continue
        rate = median(rs, rate_key.get(scenario, "deliveries_per_s"))
        ratio = f"{rate / base:.2f}x" if rate and base else "-"
        cpu = median(rs, "broker_cpu_pct")
        print(f"| {scenario} | {setup} | {rate:,.0f} | {ratio} | "
              f"{cpu if cpu is None else round(cpu)} | {median(rs, 'redis_cpu_s'):.2f} | "
              f"{sum(r.get('errors', 0) for r in rs)} |")
EOF
echo "raw results: $out"
