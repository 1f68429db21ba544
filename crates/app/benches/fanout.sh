#!/usr/bin/env bash
# Forwarding throughput with a rule of DESTINATIONS destinations, mailfwd next to
# Postfix on the same load: ../shared/bench/forward-vs-postfix.sh with one alias that
# expands to DESTINATIONS addresses (dest1@destination.test … destN@) instead of one.
#
# Both relay to Postfix's smtp-sink, and both send one transaction per message with
# every recipient in it (one relay host is one destination: ADR 0017, Postfix's
# smtp_destination_recipient_limit), so the sink counts MESSAGES messages either way.
# The figure is messages per second from the first connection until the sink has
# counted every message; mailfwd's /metrics must also show MESSAGES × DESTINATIONS
# deliveries, each recipient recorded on its own.
#
# usage: fanout.sh [MAILFWD_BIN]   (default: target/release/mailfwd)
# env:   MESSAGES (5000) SESSIONS (20) SIZE bytes (4096) DESTINATIONS (10) ROUNDS (1)
# needs: root, Debian's postfix package (installed if missing), curl, python3.
set -euo pipefail

MAILFWD_BIN=${1:-target/release/mailfwd}
MESSAGES=${MESSAGES:-5000}
SESSIONS=${SESSIONS:-20}
SIZE=${SIZE:-4096}
DESTINATIONS=${DESTINATIONS:-10}
ROUNDS=${ROUNDS:-1}
SINK_PORT=2626
MF_SMTP=127.0.0.1:2725
MF_HTTP=127.0.0.1:2780
WORK=$(mktemp -d /tmp/fanout.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  postfix stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
if ! command -v smtp-source >/dev/null && [ ! -x /usr/sbin/smtp-source ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq postfix >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq postfix >/dev/null; }
fi
PATH=$PATH:/usr/sbin
addresses=$(seq -f 'dest%g@destination.test' 1 "$DESTINATIONS")

sink_count() { grep -o 'mesg=[0-9]*' "$WORK/sink.log" 2>/dev/null | tail -n 1 | cut -d= -f2 || true; }

# run_load PORT -> messages per second, end to end
run_load() {
  local n=0 t0 t1
  : >"$WORK/sink.log"
  smtp-sink -c -u root 127.0.0.1:$SINK_PORT 1000 >"$WORK/sink.log" 2>&1 &
  local sink=$!
  pids+=("$sink")
  sleep 0.3
  t0=$(date +%s.%N)
  smtp-source -m "$MESSAGES" -s "$SESSIONS" -l "$SIZE" -f sender@source.test \
    -t alias@example.com "127.0.0.1:$1" >"$WORK/source.log" 2>&1 || true
  for _ in $(seq 1 2400); do
    n=$(sink_count); n=${n:-0}
    [ "$n" -ge "$MESSAGES" ] && break
    sleep 0.05
  done
  t1=$(date +%s.%N)
  kill "$sink" 2>/dev/null || true
  wait "$sink" 2>/dev/null || true
  if [ "$n" -lt "$MESSAGES" ]; then echo "only $n of $MESSAGES messages reached the sink" >&2; echo 0; return; fi
  python3 -c "print(round($MESSAGES / ($t1 - $t0), 1))"
}

postfix_round() {
  postconf -e "transport_maps =" "inet_interfaces = loopback-only" "inet_protocols = ipv4" \
    "mydestination =" "virtual_alias_domains = example.com" \
    "virtual_alias_maps = hash:/etc/postfix/virtual" "relayhost = [127.0.0.1]:$SINK_PORT" \
    "mynetworks = 127.0.0.0/8" "smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination" \
    "smtp_tls_security_level = none" "smtpd_tls_security_level = none" "message_size_limit = 104857600"
  echo "alias@example.com $(echo $addresses | tr ' ' ',')" >/etc/postfix/virtual
  postmap /etc/postfix/virtual
  postfix stop >/dev/null 2>&1 || true
  postsuper -d ALL >/dev/null 2>&1 || true
  postfix start >/dev/null 2>&1
  sleep 1
  run_load 25
  postfix stop >/dev/null 2>&1 || true
}

mailfwd_round() {
  MAILFWD_SMTP_LISTEN=$MF_SMTP MAILFWD_HTTP_LISTEN=$MF_HTTP MAILFWD_GRPC_LISTEN=127.0.0.1:2751 \
  MAILFWD_DATA_DIR=$WORK/mailfwd-$1 MAILFWD_RELAY=127.0.0.1:$SINK_PORT MAILFWD_HOSTNAME=mailfwd.test \
    "$MAILFWD_BIN" serve >"$WORK/mailfwd.log" 2>&1 &
  local mf=$!
  pids+=("$mf")
  for _ in $(seq 1 100); do curl -fs "http://$MF_HTTP/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
  local forward
  forward=$(printf '"%s",' $addresses)
  curl -fs -o /dev/null -X POST "http://$MF_HTTP/v1/forwards" -H 'content-type: application/json' \
    -d "{\"email\":\"alias@example.com\",\"forward\":[${forward%,}]}" \
    || echo "creating the rule of $DESTINATIONS destinations failed (see $WORK/mailfwd.log)" >&2
  run_load "${MF_SMTP##*:}"
  delivered=$(curl -fs "http://$MF_HTTP/metrics" | awk '$1 == "mailfwd_delivered_total" {print $2}')
  echo "mailfwd recorded ${delivered:-0} deliveries (want $((MESSAGES * DESTINATIONS)))" >&2
  kill "$mf" 2>/dev/null || true
  wait "$mf" 2>/dev/null || true
}

echo "messages=$MESSAGES sessions=$SESSIONS size=$SIZE destinations=$DESTINATIONS rounds=$ROUNDS"
ratios=()
for r in $(seq 1 "$ROUNDS"); do
  pf=$(postfix_round)
  mf=$(mailfwd_round "$r")
  ratio=$(python3 -c "print(round($mf / $pf, 2) if $pf else '-')")
  echo "round $r: postfix $pf msg/s, mailfwd $mf msg/s, mailfwd/postfix $ratio"
  [ "$ratio" != - ] && ratios+=("$ratio")
done
if [ "${#ratios[@]}" -gt 1 ]; then
  echo "median mailfwd/postfix over ${#ratios[@]} rounds: $(printf '%s\n' "${ratios[@]}" | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}')"
fi
