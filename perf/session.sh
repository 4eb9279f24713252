#!/usr/bin/env bash
# perf/session.sh — cookie-authenticated GETs through sessiongate (SESSION cookie looked up
# in the worker's session table, `Authorization: Bearer` added, the cookie stripped) against
# nginx as a plain reverse proxy on the same backend, in the same run; then the cost of the
# cross-worker hand-off of a connection whose session lives on another worker.
#
# What runs (127.0.0.1 only, free ports, files under perf/.run-session/):
#   backend   nginx, 1 worker, `return 200 "hello\n"`           (LOAD_CPUS)
#   provider  tests/oidc/provider.js (only for the one login)    (LOAD_CPUS)
#   gateway   sessiongate, 1 worker, route /** -> backend        (PROXY_CPU)
#   nginx     1 worker, upstream keepalive 64, same backend      (PROXY_CPU)
# Part 1: ROUNDS x `wrk -t1 -c64 -dDURATION --latency -H 'Cookie: SESSION=..; theme=dark'`
# against the gateway and nginx in turn; medians and the ratio.
# Part 2 (hand-off): a 2-worker gateway, one new connection per request
# (`Connection: close`), so about half the connections land on the worker that does not own
# the session and are handed over (fd + buffered bytes over the owner's inbox). The gateway's CPU time
# per request against the same run with 1 worker (no hand-off) gives the cost of one hop.
#
# Environment: ROUNDS=3 DURATION=10 CONNECTIONS=64 PROXY_CPU=0 LOAD_CPUS=1 SKIP_BUILD=1
#   SESSIONGATE_BIN=path (binary to test; implies SKIP_BUILD=1)
# Needs nginx, wrk, node (npm ci --prefix tests) and python3; installs nginx/wrk if missing.
set -euo pipefail

# shellcheck source=perf/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
RUN="$ROOT/perf/.run-session"
ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-10}"
CONNECTIONS="${CONNECTIONS:-64}"
PROXY_CPU="${PROXY_CPU:-0}"
LOAD_CPUS="${LOAD_CPUS:-1}"
THREADS=1 # for run_wrk: one wrk thread, not a knob here
PERF_TAG=perf

need_tools nginx wrk
setup_pinning || log "warning: no pinning ($NCPU CPU(s) or no taskset): numbers are indicative only"
command -v node >/dev/null || die "node is needed for the provider"
[[ -d "$ROOT/tests/node_modules/oidc-provider" ]] || npm ci --prefix "$ROOT/tests" --no-audit --no-fund
build_gateway sessiongate
init_run

free_port BACKEND NGINX PROVIDER GW
cat >"$RUN/backend.conf" <<EOF
worker_processes 1; daemon off; pid $RUN/backend.pid; error_log $RUN/backend.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$BACKEND; location / { return 200 "hello\n"; } } }
EOF
cat >"$RUN/nginx.conf" <<EOF
worker_processes 1; daemon off; pid $RUN/nginx.pid; error_log $RUN/nginx.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  upstream backend { server 127.0.0.1:$BACKEND; keepalive 64; }
  server { listen 127.0.0.1:$NGINX; location / { proxy_pass http://backend;
    proxy_http_version 1.1; proxy_set_header Connection ""; } } }
EOF
"${pin_load[@]}" nginx -c "$RUN/backend.conf" & PIDS+=($!)
"${pin_proxy[@]}" nginx -c "$RUN/nginx.conf" & PIDS+=($!)
start_provider "$PROVIDER" "$GW"
wait_port "$BACKEND"; wait_port "$NGINX"

start_session_gateway() { # workers
    gateway_conf "$RUN/gateway-$1.yml" "$BACKEND" "$PROVIDER" <<EOF
server: {address: 127.0.0.1, port: $GW}
cg: {useSecureSessionCookie: false, sessionTimeoutSec: 3600}
sessiongate: {workers: $1}
EOF
    start_gateway "gateway-$1" "$RUN/gateway-$1.yml"
    wait_login_redirect "$GW"
}
# The next gateway binds the same port.
stop_session_gateway() { stop_gateway_freeing "$GW"; }
p99_of() { awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' "$1"; }
non2xx() { awk '/Non-2xx/ {print $5}' | head -1; }

# ---- part 1: cookie-authenticated throughput --------------------------------------------
start_session_gateway 1
COOKIE=$(python3 "$ROOT/perf/login.py" "http://127.0.0.1:$GW/" perf)
log "logged in; SESSION=${COOKIE:0:6}..."
HDR="Cookie: SESSION=$COOKIE; theme=dark"
for r in $(seq "$ROUNDS"); do
    run_wrk "$DURATION" "$RUN/gw-$r.txt" "http://127.0.0.1:$GW/" -H "$HDR"
    run_wrk "$DURATION" "$RUN/nginx-$r.txt" "http://127.0.0.1:$NGINX/" -H "$HDR"
    log "round $r: sessiongate $(rps_of "$RUN/gw-$r.txt") req/s, nginx $(rps_of "$RUN/nginx-$r.txt") req/s"
done
for t in gw nginx; do
    [[ -z "$(cat "$RUN"/$t-*.txt | non2xx)" ]] || die "$t answered non-2xx: see $RUN"
done
GW_RPS=$(median "$(for r in $(seq "$ROUNDS"); do rps_of "$RUN/gw-$r.txt"; done)")
NG_RPS=$(median "$(for r in $(seq "$ROUNDS"); do rps_of "$RUN/nginx-$r.txt"; done)")
GW_P99=$(median "$(for r in $(seq "$ROUNDS"); do p99_of "$RUN/gw-$r.txt"; done)")
NG_P99=$(median "$(for r in $(seq "$ROUNDS"); do p99_of "$RUN/nginx-$r.txt"; done)")
stop_session_gateway

# ---- part 2: hand-off cost ----------------------------------------------------------------
# One connection per request; the gateway's own CPU time per request, 1 worker vs 2.
handoff_run() { # workers label
    start_session_gateway "$1"
    local cookie t0 t1 n
    cookie=$(python3 "$ROOT/perf/login.py" "http://127.0.0.1:$GW/" perf)
    t0=$(proc_ticks "$GW_PID")
    run_wrk "$DURATION" "$RUN/close-$2.txt" "http://127.0.0.1:$GW/" -H "Cookie: SESSION=$cookie" -H "Connection: close"
    t1=$(proc_ticks "$GW_PID")
    n=$(awk '/requests in/ {print $1}' "$RUN/close-$2.txt")
    stop_session_gateway
    # clock ticks (1/100 s) -> microseconds per request
    echo "$(rps_of "$RUN/close-$2.txt") $(( (t1 - t0) * 10000 / n ))" >"$RUN/handoff-$2.txt"
}
# Not in a subshell: the gateways it starts must stay known to the cleanup trap.
handoff_run 1 one
handoff_run 2 two
read -r ONE_RPS ONE_US <"$RUN/handoff-one.txt"
read -r TWO_RPS TWO_US <"$RUN/handoff-two.txt"

printf '\n%-28s %12s %10s\n' "cookie-authenticated GET" "req/s" "p99 ms"
printf '%-28s %12s %10s\n' "sessiongate (session)" "$GW_RPS" "$GW_P99"
printf '%-28s %12s %10s\n' "nginx (plain proxy)" "$NG_RPS" "$NG_P99"
awk -v a="$GW_RPS" -v b="$NG_RPS" -v c="$GW_P99" -v d="$NG_P99" \
    'BEGIN {printf "sessiongate/nginx: req/s %.2f, p99 %.2f\n", a/b, c/d}'
printf '\nnew connection per request (Connection: close), gateway CPU per request:\n'
printf '  1 worker  (no hand-off):          %8s req/s  %5s us/req\n' "$ONE_RPS" "$ONE_US"
printf '  2 workers (about half handed off): %8s req/s  %5s us/req\n' "$TWO_RPS" "$TWO_US"
awk -v a="$ONE_US" -v b="$TWO_US" 'BEGIN {printf "  cost of one hand-off: about %d us (2 x the difference)\n", (b-a)*2}'
