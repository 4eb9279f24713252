#!/usr/bin/env bash
# perf/store.sh — cookie-authenticated GETs with the memory store and with the shared Redis
# store, in the same run, on the same backend: CPU per request of the gateway, req/s, and
# Redis commands per request on the cache-hit path (target about 0); then the miss path
# (a session not cached by the gateway that serves it: one load from Redis) as latency per
# request, first pass (all misses) against second pass (all hits).
#
# What runs (127.0.0.1 only, free ports, files under perf/.run-store/):
#   backend   nginx, 1 worker, `return 200 "hello\n"`         (LOAD_CPUS)
#   provider  tests/oidc/provider.js (logins only)             (LOAD_CPUS)
#   redis     redis-server, no persistence                     (LOAD_CPUS)
#   gateway   sessiongate, 1 worker, route /** -> backend      (PROXY_CPU)
#
# Environment: ROUNDS=3 DURATION=10 CONNECTIONS=64 MISSES=300 PROXY_CPU=0 LOAD_CPUS=1
#   SKIP_BUILD=1 SESSIONGATE_BIN=path
# Needs nginx, wrk, redis-server, node (npm ci --prefix tests) and python3.
set -euo pipefail

# shellcheck source=perf/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
RUN="$ROOT/perf/.run-store"
ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-10}"
CONNECTIONS="${CONNECTIONS:-64}"
MISSES="${MISSES:-300}"
PROXY_CPU="${PROXY_CPU:-0}"
LOAD_CPUS="${LOAD_CPUS:-1}"
THREADS=1
PERF_TAG=store
KEY="MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

need_tools nginx wrk redis-server
setup_pinning || log "warning: no pinning ($NCPU CPU(s) or no taskset): numbers are indicative only"
command -v node >/dev/null || die "node is needed for the provider"
[[ -d "$ROOT/tests/node_modules/oidc-provider" ]] || npm ci --prefix "$ROOT/tests" --no-audit --no-fund
build_gateway sessiongate
init_run

NGINX="$(tool_path nginx)"
free_port BACKEND_PORT PROVIDER REDIS GW
BACKEND=$BACKEND_PORT
start_backend 4096
"${pin_load[@]}" redis-server --port "$REDIS" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$RUN" >"$RUN/redis.out" 2>&1 & PIDS+=($!)
start_provider "$PROVIDER" "$GW"
wait_port "$REDIS"

redis_commands() { redis-cli -p "$REDIS" INFO stats | awk -F: '/^total_commands_processed/ {print $2+0}'; }

start_store_gateway() { # memory|redis
    local store_yaml=""
    [[ $1 == memory ]] || store_yaml="
  session-store: redis
  session-encryption-keys: [\"$KEY\"]"
    printf '%s\n' "server: {address: 127.0.0.1, port: $GW}" \
        "cg: {useSecureSessionCookie: false, sessionTimeoutSec: 3600, maxSessions: 100000}" \
        "sessiongate:" "  workers: 1$store_yaml" "spring.data.redis.port: $REDIS" |
        gateway_conf "$RUN/gateway-$1.yml" "$BACKEND" "$PROVIDER"
    start_gateway "gateway-$1" "$RUN/gateway-$1.yml"
    wait_login_redirect "$GW"
}
stop_store_gateway() { stop_gateway_freeing "$GW"; }

# ---- part 1: the hit path, memory store against redis store ------------------------------
declare -A US RPS CMDS
for store in memory redis; do
    start_store_gateway "$store"
    cookie=$(python3 "$ROOT/perf/login.py" "http://127.0.0.1:$GW/" perf)
    hdr="Cookie: SESSION=$cookie"
    # Warm up; on a fresh cache the session's first request is its only miss.
    run_wrk 2 "$RUN/warm-$store.txt" "http://127.0.0.1:$GW/" -H "$hdr"
    for r in $(seq "$ROUNDS"); do
        c0=$(redis_commands); t0=$(proc_ticks "$GW_PID")
        run_wrk "$DURATION" "$RUN/$store-$r.txt" "http://127.0.0.1:$GW/" -H "$hdr"
        t1=$(proc_ticks "$GW_PID"); c1=$(redis_commands)
        n=$(awk '/requests in/ {print $1}' "$RUN/$store-$r.txt")
        # Clock ticks (1/100 s) -> us per request; the INFO call itself counts one command.
        awk -v rps="$(rps_of "$RUN/$store-$r.txt")" -v t=$((t1 - t0)) -v c=$((c1 - c0 - 1)) -v n="$n" \
            'BEGIN {printf "%s %.2f %.5f\n", rps, t * 10000 / n, c / n}' >"$RUN/$store-$r.res"
        log "$store round $r: $(cat "$RUN/$store-$r.res") (req/s, us/req, redis commands/req)"
    done
    [[ -z "$(awk '/Non-2xx/ {print $5}' "$RUN"/"$store"-*.txt | head -1)" ]] || die "$store: non-2xx answers, see $RUN"
    RPS[$store]=$(median "$(for r in $(seq "$ROUNDS"); do awk '{print $1}' "$RUN/$store-$r.res"; done)")
    US[$store]=$(median "$(for r in $(seq "$ROUNDS"); do awk '{print $2}' "$RUN/$store-$r.res"; done)")
    CMDS[$store]=$(median "$(for r in $(seq "$ROUNDS"); do awk '{print $3}' "$RUN/$store-$r.res"; done)")
    stop_store_gateway
done

# ---- part 2: the miss path ----------------------------------------------------------------
start_store_gateway redis
log "logging $MISSES users in"
(cd "$ROOT/perf" && python3 store_miss.py login "http://127.0.0.1:$GW/" "$MISSES" "$RUN/cookies")
stop_store_gateway
start_store_gateway redis # an empty cache: every session is a miss once
c0=$(redis_commands)
read -r MISS_US HIT_US N < <(cd "$ROOT/perf" && python3 store_miss.py passes "http://127.0.0.1:$GW/" "$RUN/cookies")
c1=$(redis_commands)
stop_store_gateway

printf '\n%-34s %10s %10s %14s\n' "cookie-authenticated GET" "req/s" "us/req" "redis cmd/req"
for store in memory redis; do
    printf '%-34s %10s %10s %14s\n' "sessiongate, $store store" "${RPS[$store]}" "${US[$store]}" "${CMDS[$store]}"
done
awk -v a="${US[redis]}" -v b="${US[memory]}" 'BEGIN {printf "redis/memory CPU per request (hit path): %.2f\n", a/b}'
printf '\nmiss path, %s sessions, one client connection, median latency:\n' "$N"
printf '  first request of each (a load from Redis): %6s us\n  second request (cached):                    %6s us\n' "$MISS_US" "$HIT_US"
awk -v c=$((c1 - c0 - 1)) -v n="$N" 'BEGIN {printf "  redis commands over both passes: %.2f per session (the loads; the uses are written back in the next second, after this window)\n", c / n}'
