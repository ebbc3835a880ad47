#!/usr/bin/env bash
# Side-by-side load test of stompd and RabbitMQ (Web-STOMP), both on this machine, loopback
# only, driven by the same load generator (bench/loadgen, `stompd-bench`).
#
#   scripts/bench-compare.sh [--repeats N] [--duration S] [--warmup S] [--scenarios LIST]
#                            [--idle-connections N] [--idle-hold S] [--rooms-rate MSGS]
#                            [--no-docs]
#
# Installs what is missing (Debian packages: rabbitmq-server, gnuplot-nox, the build
# dependencies), builds stompd and stompd-bench (Release, build/bench-rel), starts RabbitMQ
# (without systemd: `rabbitmq-server -detached`, its own temporary node directory, every
# listener on 127.0.0.1) and stompd (other ports, temporary --data), then runs each scenario
# against both, alternating stompd, RabbitMQ, stompd, RabbitMQ... --repeats times. Prints
# medians and the ratio stompd/RabbitMQ, writes them into docs/BENCHMARKS.md (between the
# generated markers) and one PNG chart per scenario into docs/bench/. Raw results stay in
# build/bench-compare/DATE/. Everything it started is stopped on exit, failure or Ctrl-C.
#
# Scenarios (default: all): floor, fanout-10k, fanout-sat, rooms-2k, rooms-sat, rooms, idle,
# journal, queue, replay (see docs/BENCHMARKS.md).
# Run as root (or with sudo available): it installs packages and starts RabbitMQ as its user.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
command_line="scripts/bench-compare.sh${*:+ $*}"

repeats=3
duration=10
warmup=2
idle_connections=10000
idle_hold=10
rooms_rate=10000
sat_window=200
scenarios=floor,fanout-10k,fanout-sat,rooms-2k,rooms-sat,rooms,idle,journal,queue,replay
write_docs=1

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --repeats) repeats=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --scenarios) scenarios=$2; shift 2 ;;
    --idle-connections) idle_connections=$2; shift 2 ;;
    --idle-hold) idle_hold=$2; shift 2 ;;
    --rooms-rate) rooms_rate=$2; shift 2 ;;
    --no-docs) write_docs=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "bench-compare: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done
for n in "$repeats" "$duration" "$warmup" "$idle_connections" "$idle_hold" "$rooms_rate"; do
  [[ "$n" =~ ^[0-9]+$ ]] || { echo "bench-compare: '$n' is not a whole number" >&2; exit 2; }
done
(( repeats >= 1 && repeats <= 20 && duration >= 1 && duration <= 300 )) ||
  { echo "bench-compare: --repeats 1..20, --duration 1..300" >&2; exit 2; }

# Ports: RabbitMQ keeps the usual ones, stompd takes the next.
rabbit_amqp=5672 rabbit_stomp=61613 rabbit_ws=15674
stompd_tcp=61614 stompd_ws=15675
node=stompd-bench@localhost

sudo=()
[[ $(id -u) -eq 0 ]] || sudo=(sudo)
log() { printf '%s bench-compare: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# --- install -------------------------------------------------------------------------------
scripts/install-deps build
missing=()
for pkg in rabbitmq-server gnuplot-nox python3; do
  [[ $(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true) == installed ]] ||
    missing+=("$pkg")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if [[ -z $(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null) ]]; then
    "${sudo[@]}" apt-get update -q
  fi
  "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# The Debian package may have started a node of its own where an init system exists; it
# would hold the ports. We never stop what we did not start: refuse instead.
for port in $rabbit_amqp $rabbit_stomp $rabbit_ws $stompd_tcp $stompd_ws; do
  if ss -Hltn "sport = :$port" | grep -q .; then
    echo "bench-compare: port $port is in use (a RabbitMQ or stompd already running?); stop it first" >&2
    exit 1
  fi
done

# --- build ---------------------------------------------------------------------------------
build=build/bench-rel
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSTOMPD_BUILD_BENCH=ON \
  -DSTOMPD_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" --target stompd stompd-bench
stompd_bin=$root/$build/broker/stompd
bench_bin=$root/$build/bench/stompd-bench

# --- processes we start, and stopping them whatever happens ---------------------------------
work=$(mktemp -d /tmp/stompd-bench-compare.XXXXXX)
chmod 755 "$work"
out_dir=$root/build/bench-compare/$(date -u +%Y%m%dT%H%M%SZ)
stompd_pid=
rabbit_pid=
rabbit_started=0
epmd_pid=
export RABBITMQ_NODENAME=$node
rabbitmqctl_() { timeout 90 rabbitmqctl -n "$node" "$@"; }

stop_stompd() {
  if [[ -n $stompd_pid ]] && kill -0 "$stompd_pid" 2>/dev/null; then
    kill -TERM "$stompd_pid"
    for _ in $(seq 100); do kill -0 "$stompd_pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$stompd_pid" 2>/dev/null && kill -KILL "$stompd_pid"
  fi
  stompd_pid=
  return 0
}

stop_rabbitmq() {
  if [[ $rabbit_started == 1 ]]; then
    rabbitmqctl_ stop >/dev/null 2>&1
    if [[ -n $rabbit_pid ]]; then
      for _ in $(seq 300); do kill -0 "$rabbit_pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$rabbit_pid" 2>/dev/null && kill -KILL "$rabbit_pid"
    fi
  fi
  rabbit_started=0 rabbit_pid=
  return 0
}

cleanup() {
  local status=$?
  set +e
  trap - EXIT INT TERM
  stop_stompd
  stop_rabbitmq
  # epmd outlives the node; stop it only when this run started it.
  if [[ -n $epmd_pid ]] && kill -0 "$epmd_pid" 2>/dev/null; then kill -TERM "$epmd_pid"; fi
  if [[ -d $work ]]; then
    mkdir -p "$out_dir"
    cp -f "$work"/results.jsonl "$work"/meta.json "$out_dir"/ 2>/dev/null
    rm -rf "$out_dir/logs" && cp -r "$work/logs" "$out_dir/logs" 2>/dev/null
    rm -rf "$work"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Both brokers hold one descriptor per connection: ask for the hard limit (20000 here).
ulimit -n "$(ulimit -Hn)"
fd_limit=$(ulimit -n)

start_rabbitmq() {
  local dir=$work/rabbitmq
  mkdir -p "$dir/mnesia" "$dir/log"
  cat >"$dir/rabbitmq.conf" <<EOF
# Every listener on loopback; the management plugin is not loaded.
listeners.tcp.default = 127.0.0.1:$rabbit_amqp
stomp.listeners.tcp.1 = 127.0.0.1:$rabbit_stomp
web_stomp.tcp.ip = 127.0.0.1
web_stomp.tcp.port = $rabbit_ws
loopback_users.guest = true
EOF
  echo '[rabbitmq_stomp,rabbitmq_web_stomp].' >"$dir/enabled_plugins"
  "${sudo[@]}" chown -R rabbitmq: "$dir"
  # The server's wrapper switches to the rabbitmq user through `su`, whose PAM session runs
  # pam_limits: the open-file limit comes from limits.d (checked in /proc below).
  local want=$(( fd_limit < 65536 ? fd_limit : 65536 ))
  local limits=/etc/security/limits.d/90-stompd-bench-rabbitmq.conf
  local text
  text=$(printf 'rabbitmq soft nofile %s\nrabbitmq hard nofile %s\n' "$want" "$want")
  if [[ ! -f $limits || $(cat "$limits") != "$text" ]]; then
    printf '%s\n' "$text" | "${sudo[@]}" tee "$limits" >/dev/null
  fi
  local epmd_before
  epmd_before=$(pgrep -x epmd || true)
  # su keeps these variables (it resets only HOME, SHELL, USER and LOGNAME).
  export RABBITMQ_CONFIG_FILE=$dir/rabbitmq.conf
  export RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins
  export RABBITMQ_MNESIA_BASE=$dir/mnesia
  export RABBITMQ_LOG_BASE=$dir/log
  export RABBITMQ_PID_FILE=$dir/rabbit.pid
  export ERL_EPMD_ADDRESS=127.0.0.1
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
  log "starting RabbitMQ (node $node, $dir)"
  rabbit_started=1
  if [[ ${#sudo[@]} -gt 0 ]]; then sudo --preserve-env rabbitmq-server -detached; else rabbitmq-server -detached; fi
  local ok=0
  for _ in $(seq 60); do
    if rabbitmqctl_ await_startup --timeout 10 >/dev/null 2>&1; then ok=1; break; fi
    sleep 1
  done
  [[ $ok == 1 ]] || { echo "bench-compare: RabbitMQ did not start; see $dir/log" >&2; return 1; }
  rabbit_pid=$(cat "$dir/rabbit.pid")
  if [[ -z $epmd_before ]]; then epmd_pid=$(pgrep -x epmd || true); fi
  rabbit_fd_limit=$(awk '/Max open files/ {print $4}' "/proc/$rabbit_pid/limits")
  log "RabbitMQ up: beam.smp pid $rabbit_pid, open-file limit $rabbit_fd_limit"
}

start_stompd() {
  mkdir -p "$work/stompd-data"
  "$stompd_bin" --config scripts/bench/stompd-bench.yaml --tcp "127.0.0.1:$stompd_tcp" \
    --ws "127.0.0.1:$stompd_ws" --data "$work/stompd-data" --log-level info \
    2>"$work/stompd.log" &
  stompd_pid=$!
  for _ in $(seq 100); do
    grep -q 'listening transport=websocket' "$work/stompd.log" 2>/dev/null && break
    kill -0 "$stompd_pid" 2>/dev/null || { cat "$work/stompd.log" >&2; return 1; }
    sleep 0.1
  done
  grep -q 'listening transport=websocket' "$work/stompd.log" ||
    { echo "bench-compare: stompd did not start" >&2; return 1; }
  log "stompd up: pid $stompd_pid, open-file limit $(awk '/Max open files/ {print $4}' "/proc/$stompd_pid/limits")"
}

mkdir -p "$work/logs"
: >"$work/results.jsonl"
start_rabbitmq
start_stompd

# --- scenarios -----------------------------------------------------------------------------
# Arguments per scenario (the same for both brokers) and per broker.
scenario_args() {
  case "$1" in
    fanout-10k) echo "fanout --subscribers 100 --rate 100 --warmup $warmup --duration $duration" ;;
    fanout-sat) echo "fanout --subscribers 100 --window $sat_window --body-bytes 128 --warmup $warmup --duration $duration" ;;
    rooms) echo "rooms --rooms 1000 --members 2 --total-rate $rooms_rate --warmup $warmup --duration $duration" ;;
    rooms-2k) echo "rooms --rooms 1000 --members 2 --total-rate 2000 --warmup $warmup --duration $duration" ;;
    rooms-sat) echo "rooms --rooms 1000 --members 2 --window 6 --warmup $warmup --duration $duration" ;;
    idle) echo "idle --connections $idle_connections --hold $idle_hold --heart-beat 10000,10000" ;;
    journal|queue) echo "journal --publishers 1 --inflight 128 --warmup $warmup --duration $duration" ;;
    replay) echo "replay --replay-messages 1000 --count 200 --duration $duration" ;;
    floor) echo "floor --count 1000000 --subscribers 100 --rate 100 --duration $duration" ;;
  esac
}
broker_args() {
  case "$1" in
    stompd) echo "--url ws://127.0.0.1:$stompd_ws/ws --broker-pid $stompd_pid" ;;
    rabbitmq) echo "--url ws://127.0.0.1:$rabbit_ws/ws --login guest --passcode guest --host / --broker-pid $rabbit_pid" ;;
    none) echo "" ;;
  esac
}
# RabbitMQ's counterpart of a journaled topic: a durable queue and persistent messages, whose
# RECEIPTs RabbitMQ sends after the publisher confirm (the message is on disk).
# queue: receipted publishing to a durable queue on both (stompd: stored in its journal before
# the RECEIPT; RabbitMQ: persistent messages, RECEIPT after the publisher confirm).
extra_args() {
  [[ $1 == rabbitmq && $2 == journal ]] &&
    echo "--destination /queue/bench.journal --header persistent:true"
  [[ $1 == rabbitmq && $2 == queue ]] &&
    echo "--destination /queue/bench.durable --header persistent:true"
  [[ $1 == stompd && $2 == queue ]] && echo "--destination /queue/bench.durable"
  # The chat rooms at 2,000 msg/s as the shipped config runs them: every message journaled.
  [[ $1 == stompd && $2 == rooms-2k ]] && echo "--destination /topic/bench.journaled.room"
  return 0
}

run_one() {  # broker scenario repeat
  local broker=$1 scenario=$2 repeat=$3
  # idle reads the broker's RSS growth per connection: a process that served the earlier
  # scenarios reuses the heap they freed and looks smaller than it is (a fresh stompd held
  # 10.9 KiB per session where a reused one showed 3.5), so each idle run gets a fresh one.
  if [[ $scenario == idle && $broker == stompd ]]; then stop_stompd; start_stompd; fi
  if [[ $scenario == idle && $broker == rabbitmq ]]; then stop_rabbitmq; start_rabbitmq; fi
  # queue leaves its messages queued (nobody consumes): each stompd run starts empty, as
  # RabbitMQ's does once its queue is deleted below.
  if [[ $scenario == queue && $broker == stompd ]]; then
    stop_stompd; rm -rf "$work/stompd-data"; start_stompd
  fi
  # shellcheck disable=SC2207
  local args=($(scenario_args "$scenario") $(broker_args "$broker") $(extra_args "$broker" "$scenario"))
  local logf=$work/logs/$scenario-$broker-$repeat.log
  # Every run is bounded: connecting, warm-up, measuring, draining, closing.
  local bound=$(( warmup + duration + idle_hold + idle_connections / 50 + 150 ))
  log "$scenario $broker #$repeat: stompd-bench ${args[*]}"
  local json status=0
  json=$(timeout "$bound" "$bench_bin" "${args[@]}" --json --no-progress 2>"$logf") || status=$?
  if [[ $status -ne 0 || -z $json ]]; then
    local reason
    reason="exit $status: $(tail -n 1 "$logf" 2>/dev/null)"
    log "$scenario $broker #$repeat failed: $reason"
    json=$(python3 -c 'import json,sys; print(json.dumps({"failed": sys.argv[1]}))' "$reason")
  fi
  python3 -c 'import json,sys
print(json.dumps({"broker": sys.argv[1], "scenario": sys.argv[2], "repeat": int(sys.argv[3]),
                  "command": "stompd-bench " + sys.argv[4], "result": json.loads(sys.argv[5])}))' \
    "$broker" "$scenario" "$repeat" "${args[*]}" "$json" >>"$work/results.jsonl"
  if [[ $broker == rabbitmq && $scenario == journal ]]; then
    rabbitmqctl_ delete_queue bench.journal >/dev/null 2>&1 || true
  fi
  if [[ $broker == rabbitmq && $scenario == queue ]]; then
    rabbitmqctl_ delete_queue bench.durable >/dev/null 2>&1 || true
  fi
  sleep 2  # let the broker finish closing the run's connections
}

IFS=, read -r -a wanted <<<"$scenarios"
for scenario in "${wanted[@]}"; do
  case "$scenario" in
    floor) run_one none floor 1 ;;
    replay) for r in $(seq "$repeats"); do run_one stompd replay "$r"; done ;;
    fanout-10k|fanout-sat|rooms-2k|rooms-sat|rooms|idle|journal|queue)
      for r in $(seq "$repeats"); do
        run_one stompd "$scenario" "$r"
        run_one rabbitmq "$scenario" "$r"
      done ;;
    *) echo "bench-compare: unknown scenario '$scenario'" >&2; exit 2 ;;
  esac
done

# --- report --------------------------------------------------------------------------------
cpu_model=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)
mem_gib=$(awk '/MemTotal/ {printf "%.0f", $2 / 1048576}' /proc/meminfo)
rabbit_version=$(rabbitmqctl_ version 2>/dev/null | tail -n 1)
otp_version=$(rabbitmqctl_ eval 'erlang:system_info(otp_release).' 2>/dev/null | tr -d '"')
python3 - "$work/meta.json" <<EOF
import json, sys
json.dump({
  "date": "$(date -u +%Y-%m-%dT%H:%MZ)",
  "machine": "$(nproc) cores ($cpu_model), $mem_gib GiB, Linux $(uname -r), shared and noisy",
  "versions": "stompd $("$stompd_bin" --version 2>&1 | head -n 1 | awk '{print $NF}') (commit $(git describe --always --dirty 2>/dev/null || echo unknown), g++ $(g++ -dumpfullversion), Release), "
              "RabbitMQ $rabbit_version (Erlang/OTP $otp_version, Debian package) with rabbitmq_web_stomp",
  "command": "$command_line",
  "settings": "$repeats repeats, warm-up $warmup s, $duration s measured per run; generator: 1 thread; "
              "stompd: one worker per core, scripts/bench/stompd-bench.yaml (bench topics not journaled except "
              "bench.journal, bench.replay.* and rooms-2k's bench.journaled.room.*); RabbitMQ: package defaults, listeners on 127.0.0.1, "
              "open-file limit $rabbit_fd_limit; every client over WebSocket (v12.stomp), heart-beats off except idle",
}, open(sys.argv[1], "w"), indent=1)
EOF
docs_args=()
[[ $write_docs == 1 ]] && docs_args=(--docs docs/BENCHMARKS.md --charts docs/bench)
python3 scripts/bench/summarize.py "$work/results.jsonl" "$work/meta.json" "${docs_args[@]}"
log "done; raw results in $out_dir"
