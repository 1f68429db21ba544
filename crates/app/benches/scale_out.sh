#!/usr/bin/env bash
# Forwarding throughput on PostgreSQL, one instance and two, next to SQLite and Postfix
# in the same run, under the same load as ../shared/bench/forward-vs-postfix.sh:
# Postfix's smtp-source sends to alias@example.com and every copy goes to smtp-sink.
# The figure is messages per second from the first connection until the sink has
# counted every message.
#
# Each round runs, in order: Postfix (through forward-vs-postfix.sh, ONLY=postfix),
# mailfwd on SQLite, mailfwd on PostgreSQL, and two mailfwd instances on one
# PostgreSQL database and one email store directory, each sent half the messages over
# half the sessions. Every mailfwd run gets a fresh data directory and database.
#
# usage: scale_out.sh [MAILFWD_BIN]   (default: target/release/mailfwd)
# env:   MESSAGES (5000) SESSIONS (20) SIZE bytes (4096) ROUNDS (1)
#        PG (postgres://postgres@127.0.0.1:5432): the server to make databases on
# needs: root, Postfix's smtp-source and smtp-sink (installed by forward-vs-postfix.sh),
#        psql, curl.
set -euo pipefail

MAILFWD_BIN=$(realpath "${1:-target/release/mailfwd}")
MESSAGES=${MESSAGES:-5000}
SESSIONS=${SESSIONS:-20}
SIZE=${SIZE:-4096}
ROUNDS=${ROUNDS:-1}
PG=${PG:-postgres://postgres@127.0.0.1:5432}
HERE=$(cd "$(dirname "$0")" && pwd)
SHARED_BENCH=$HERE/../../../../shared/bench/forward-vs-postfix.sh
SINK_PORT=2626
WORK=$(mktemp -d /tmp/scaleout.XXXXXX)
pids=()
databases=()

cleanup() {
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  for d in "${databases[@]:-}"; do
    [ -n "$d" ] && psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null 2>&1 || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
PATH=$PATH:/usr/sbin

sink_count() { grep -o 'mesg=[0-9]*' "$WORK/sink.log" 2>/dev/null | tail -n 1 | cut -d= -f2 || true; }

# start_instance N DATA_DIR [DATABASE_URL STORE_DIR]: instance N listens on 2725+N
# (SMTP), 2780+N (HTTP) and 2751+N (gRPC).
start_instance() {
  local n=$1 data=$2 url=${3:-} store=${4:-}
  local env=(MAILFWD_SMTP_LISTEN=127.0.0.1:$((2725 + n)) MAILFWD_HTTP_LISTEN=127.0.0.1:$((2780 + n))
    MAILFWD_GRPC_LISTEN=127.0.0.1:$((2751 + n)) MAILFWD_DATA_DIR=$data
    MAILFWD_RELAY=127.0.0.1:$SINK_PORT MAILFWD_HOSTNAME=mailfwd.test
    MAILFWD_SRS_SECRET=shared-by-the-instances MAILFWD_INSTANCE_ID=bench-$n)
  [ -n "$url" ] && env+=(MAILFWD_DATABASE_URL=$url MAILFWD_EMAIL_STORE=file://$store)
  env "${env[@]}" "$MAILFWD_BIN" serve >"$WORK/mailfwd-$n.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$((2780 + n))/healthz" >/dev/null 2>&1 && return
    sleep 0.1
  done
  echo "instance $n did not become healthy (see $WORK/mailfwd-$n.log)" >&2
  exit 1
}

create_rule() {
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:2780/v1/forwards" \
    -H 'content-type: application/json' \
    -d '{"email":"alias@example.com","forward":"dest@destination.test"}')
  [ "$code" = 201 ] || { echo "creating the rule answered HTTP $code" >&2; exit 1; }
}

stop_instances() {
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
  pids=()
}

# run_load INSTANCES -> messages per second, the load split evenly over the instances
run_load() {
  local instances=$1 t0 t1 n=0 i sources=()
  : >"$WORK/sink.log"
  smtp-sink -c -u root 127.0.0.1:$SINK_PORT 1000 >"$WORK/sink.log" 2>&1 &
  local sink=$!
  sleep 0.3
  t0=$(date +%s.%N)
  for i in $(seq 0 $((instances - 1))); do
    smtp-source -m $((MESSAGES / instances)) -s $((SESSIONS / instances)) -l "$SIZE" \
      -f sender@source.test -t alias@example.com "127.0.0.1:$((2725 + i))" \
      >"$WORK/source-$i.log" 2>&1 &
    sources+=($!)
  done
  for s in "${sources[@]}"; do wait "$s" || true; done
  local want=$(((MESSAGES / instances) * instances))
  for _ in $(seq 1 1200); do
    n=$(sink_count); n=${n:-0}
    [ "$n" -ge "$want" ] && break
    sleep 0.05
  done
  t1=$(date +%s.%N)
  kill "$sink" 2>/dev/null || true
  wait "$sink" 2>/dev/null || true
  if [ "${n:-0}" -lt "$want" ]; then
    echo "only $n of $want messages reached the sink" >&2
    echo 0
    return
  fi
  python3 -c "print(round($want / ($t1 - $t0), 1))"
}

# fresh_database NAME -> its URL
fresh_database() {
  psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" >/dev/null
  psql -q "$PG/postgres" -c "CREATE DATABASE $1" >/dev/null
  databases+=("$1")
  echo "$PG/$1"
}

echo "messages=$MESSAGES sessions=$SESSIONS size=$SIZE rounds=$ROUNDS"
for r in $(seq 1 "$ROUNDS"); do
  pf=$(MESSAGES=$MESSAGES SESSIONS=$SESSIONS SIZE=$SIZE ROUNDS=1 ONLY=postfix "$SHARED_BENCH" |
    sed -n 's/.*postfix \([0-9.]*\) msg\/s.*/\1/p')

  start_instance 0 "$WORK/sqlite-$r"
  create_rule
  sqlite=$(run_load 1)
  stop_instances

  url=$(fresh_database "mailfwd_bench_one_$r")
  start_instance 0 "$WORK/pg1-$r" "$url" "$WORK/pg1-store-$r"
  create_rule
  pg1=$(run_load 1)
  stop_instances

  url=$(fresh_database "mailfwd_bench_two_$r")
  start_instance 0 "$WORK/pg2a-$r" "$url" "$WORK/pg2-store-$r"
  start_instance 1 "$WORK/pg2b-$r" "$url" "$WORK/pg2-store-$r"
  create_rule
  pg2=$(run_load 2)
  stop_instances

  echo "round $r: postfix $pf, sqlite $sqlite, postgres $pg1, postgres x2 $pg2 msg/s;" \
    "postgres/postfix $(python3 -c "print(round($pg1 / $pf, 2))")," \
    "postgres x2/postfix $(python3 -c "print(round($pg2 / $pf, 2))")," \
    "sqlite/postfix $(python3 -c "print(round($sqlite / $pf, 2))")"
done
