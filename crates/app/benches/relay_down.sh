#!/usr/bin/env bash
# A dead destination is not hammered (issue 11): the relay accepts TCP and closes at
# once, MESSAGES messages are accepted for it, and for WINDOW seconds from the first
# message the relay counts the connections mailfwd makes; the WARN lines in its log and
# its peak RSS are counted too. Before per-destination scheduling (ADR 0016), 50,000
# pending deliveries made 114,119 connection attempts in 95 s and 144 MB of WARN lines.
#
# usage: relay_down.sh [MAILFWD_BIN]   (default: target/release/mailfwd)
# env:   MESSAGES (50000) WINDOW seconds (95)
# needs: Debian's postfix package for smtp-source (installed if missing), curl, python3.
set -euo pipefail

MAILFWD_BIN=${1:-target/release/mailfwd}
MESSAGES=${MESSAGES:-50000}
WINDOW=${WINDOW:-95}
SMTP=127.0.0.1:2745
HTTP=127.0.0.1:2791
GRPC=127.0.0.1:2762

if ! command -v smtp-source >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq postfix >/dev/null
fi

WORK=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# The dead relay: accepts, counts, closes; writes the count twice a second.
python3 - "$WORK/count" <<'PY' &
import socket, sys, threading, time
out = sys.argv[1]
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", 0))
server.listen(1024)
open(out + ".port", "w").write(str(server.getsockname()[1]))
count = 0
def dump():
    while True:
        open(out, "w").write(str(count))
        time.sleep(0.5)
threading.Thread(target=dump, daemon=True).start()
while True:
    connection, _ = server.accept()
    count += 1
    connection.close()
PY
pids+=($!)
for _ in $(seq 1 50); do [ -s "$WORK/count.port" ] && break; sleep 0.1; done
RELAY=127.0.0.1:$(cat "$WORK/count.port")

MAILFWD_DATA_DIR=$WORK/data MAILFWD_SMTP_LISTEN=$SMTP MAILFWD_HTTP_LISTEN=$HTTP \
  MAILFWD_GRPC_LISTEN=$GRPC MAILFWD_RELAY=$RELAY MAILFWD_HOSTNAME=mailfwd.test \
  "$MAILFWD_BIN" serve >"$WORK/mailfwd.log" 2>&1 &
MF_PID=$!
pids+=("$MF_PID")
for _ in $(seq 1 100); do curl -fs "http://$HTTP/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fs -o /dev/null -X POST "http://$HTTP/v1/forwards" -H 'content-type: application/json' \
  -d '{"email":"alias@example.com","forward":"dest@destination.test"}'

started=$(date +%s)
smtp-source -s 20 -m "$MESSAGES" -f sender@source.test -t alias@example.com "$SMTP"
sent=$(($(date +%s) - started))
left=$((WINDOW - sent))
[ "$left" -gt 0 ] && sleep "$left"
echo "messages: $MESSAGES accepted in $sent s"
echo "connection attempts to the dead relay in $WINDOW s: $(cat "$WORK/count")"
echo "log: $(wc -c <"$WORK/mailfwd.log") bytes, $(grep -c WARN "$WORK/mailfwd.log" || true) WARN lines"
echo "mailfwd peak RSS: $(awk '/VmHWM/ {printf "%.1f MiB", $2 / 1024}' "/proc/$MF_PID/status")"
