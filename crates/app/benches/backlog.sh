#!/usr/bin/env bash
# How fast mailfwd drains a backlog, next to how fast it forwards fresh mail.
#
# 1. Fresh: MESSAGES messages from Postfix's smtp-source while the destination (Postfix's
#    smtp-sink) is up; the rate is messages per second from the first connection until
#    the sink has counted every message.
# 2. Backlog: a new data directory, the destination down (nothing listens on its port,
#    so every attempt is refused and deferred), the same MESSAGES accepted; then the sink
#    starts, and the drain is the time from then until it has counted every message.
#    Retries are due RETRY after a failed attempt, so the drain includes up to RETRY of
#    waiting for the first retries to fall due.
# Meanwhile /metrics is sampled every second (queue and unevaluated-email gauges) and
# the peak RSS of mailfwd is read from /proc (VmHWM).
#
# usage: backlog.sh [MAILFWD_BIN]   (default: target/release/mailfwd)
# env:   MESSAGES (50000) SESSIONS (20) SIZE bytes (4096) RETRY (2s)
# needs: Debian's postfix package for smtp-source and smtp-sink (installed if missing),
#        curl, python3, about 1 GB free under TMPDIR.
set -euo pipefail

MAILFWD_BIN=${1:-target/release/mailfwd}
MESSAGES=${MESSAGES:-50000}
SESSIONS=${SESSIONS:-20}
SIZE=${SIZE:-4096}
RETRY=${RETRY:-2s}
SINK=127.0.0.1:2636
SMTP=127.0.0.1:2735
HTTP=127.0.0.1:2790
GRPC=127.0.0.1:2761
# Two data directories of MESSAGES bodies each (about 1 GB at the defaults): set TMPDIR
# to a roomy file system if /tmp is a small tmpfs.
WORK=$(mktemp -d "${TMPDIR:-/tmp}/backlog.XXXXXX")
pids=()

cleanup() {
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

if ! command -v smtp-source >/dev/null && [ ! -x /usr/sbin/smtp-source ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq postfix >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq postfix >/dev/null; }
fi
PATH=$PATH:/usr/sbin

start_sink() {
  : >"$WORK/sink.log"
  smtp-sink -c -u root "$SINK" 1000 >"$WORK/sink.log" 2>&1 &
  SINK_PID=$!
  pids+=("$SINK_PID")
  sleep 0.3
}

sink_count() {
  local n
  n=$(grep -o 'mesg=[0-9]*' "$WORK/sink.log" 2>/dev/null | tail -n 1 | cut -d= -f2 || true)
  echo "${n:-0}"
}

wait_for_sink() {
  for _ in $(seq 1 12000); do
    [ "$(sink_count)" -ge "$MESSAGES" ] && return 0
    sleep 0.05
  done
  echo "only $(sink_count) of $MESSAGES messages reached the sink" >&2
  return 1
}

start_mailfwd() {
  MAILFWD_SMTP_LISTEN=$SMTP MAILFWD_HTTP_LISTEN=$HTTP MAILFWD_GRPC_LISTEN=$GRPC \
  MAILFWD_DATA_DIR=$WORK/$1 MAILFWD_RELAY=$SINK MAILFWD_HOSTNAME=mailfwd.test \
  MAILFWD_RETRY_SCHEDULE=$RETRY MAILFWD_RETRY_EVERY=$RETRY MAILFWD_LOG=warn \
    "$MAILFWD_BIN" serve >"$WORK/$1.log" 2>&1 &
  MF_PID=$!
  pids+=("$MF_PID")
  for _ in $(seq 1 100); do
    curl -fs "http://$HTTP/healthz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -fs -o /dev/null -X POST "http://$HTTP/v1/forwards" -H 'content-type: application/json' \
    -d '{"email":"alias@example.com","forward":"dest@destination.test"}'
}

stop_mailfwd() {
  kill "$MF_PID" 2>/dev/null || true
  wait "$MF_PID" 2>/dev/null || true
}

peak_rss_mib() { awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$MF_PID/status"; }

gauge() { awk -v name="$1" '$1 == name {printf "%d", $2}' "$WORK/metrics"; }

# sample PHASE: one line of gauges, and the largest values seen, every second.
sample() {
  while :; do
    curl -fs "http://$HTTP/metrics" >"$WORK/metrics" 2>/dev/null || true
    echo "$1 t=$(date +%s) unevaluated=$(gauge mailfwd_unevaluated_emails) oldest_unevaluated_s=$(gauge mailfwd_oldest_unevaluated_age_seconds) pending=$(gauge mailfwd_queue_pending) due=$(gauge mailfwd_queue_due) oldest_due_s=$(gauge mailfwd_queue_oldest_due_age_seconds) oldest_pending_s=$(gauge mailfwd_queue_oldest_pending_age_seconds) delivered=$(gauge mailfwd_delivered_total) sink=$(sink_count)"
    sleep 1
  done
}

load() {
  smtp-source -m "$MESSAGES" -s "$SESSIONS" -l "$SIZE" -f sender@source.test \
    -t alias@example.com "$SMTP" >"$WORK/source.log" 2>&1
}

now() { date +%s.%N; }
rate() { python3 -c "print(round($MESSAGES / ($2 - $1), 1))"; }

echo "messages=$MESSAGES sessions=$SESSIONS size=$SIZE retry=$RETRY"

# Fresh mail.
start_sink
start_mailfwd fresh
t0=$(now)
load
wait_for_sink
t1=$(now)
fresh_rate=$(rate "$t0" "$t1")
echo "fresh: $MESSAGES messages in $(python3 -c "print(round($t1 - $t0, 1))") s: $fresh_rate msg/s; peak RSS $(peak_rss_mib) MiB"
stop_mailfwd
kill "$SINK_PID" 2>/dev/null || true
wait "$SINK_PID" 2>/dev/null || true
: >"$WORK/sink.log"

# The backlog: accepted while the destination is down, drained once it is back.
start_mailfwd backlog
sample down >"$WORK/samples" &
SAMPLER=$!
pids+=("$SAMPLER")
t0=$(now)
load
t1=$(now)
echo "accepted with the destination down: $MESSAGES in $(python3 -c "print(round($t1 - $t0, 1))") s ($(rate "$t0" "$t1") msg/s)"
sleep 5
kill "$SAMPLER" 2>/dev/null || true
wait "$SAMPLER" 2>/dev/null || true
echo "metrics 5 s after the last 250: $(tail -n 1 "$WORK/samples")"
start_sink
sample draining >>"$WORK/samples" &
SAMPLER=$!
pids+=("$SAMPLER")
t0=$(now)
wait_for_sink
t1=$(now)
kill "$SAMPLER" 2>/dev/null || true
wait "$SAMPLER" 2>/dev/null || true
drain_rate=$(rate "$t0" "$t1")
echo "drain: $MESSAGES messages in $(python3 -c "print(round($t1 - $t0, 1))") s: $drain_rate msg/s (fresh: $fresh_rate msg/s, drain/fresh $(python3 -c "print(round($drain_rate / $fresh_rate, 2))")); peak RSS $(peak_rss_mib) MiB"
awk '{for (i = 3; i <= NF; i++) {split($i, kv, "="); if (kv[2] + 0 > max[kv[1]]) max[kv[1]] = kv[2] + 0}} END {printf "largest values seen:"; for (k in max) printf " %s=%d", k, max[k]; print ""}' "$WORK/samples"
echo "metrics samples (every second):"
cat "$WORK/samples"
stop_mailfwd
