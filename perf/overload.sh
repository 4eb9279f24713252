#!/usr/bin/env bash
# perf/overload.sh — sessiongate under overload: live traffic next to 10,000 idle keep-alive
# connections and a slowloris crowd, memory per held connection, and a login storm past
# `cg.maxSessions` while existing sessions are being served.
#
# What runs (127.0.0.1 only, every port picked free at start, files under perf/.run-overload/):
#   backend   nginx, 1 worker, `return 200 "hello\n"`, no access log          (LOAD_CPUS)
#   gateway   sessiongate, `workers: 1`, route /** -> backend, management listener for
#             its metrics; `connection-idle-timeout-ms` and `request-head-timeout-ms` at
#             their defaults (300000 / 10000): the defaults are what operators run, the
#             hold (under a minute) stays far below the idle timeout, and a slowloris
#             connection is cut 10 s after its first byte                      (PROXY_CPU)
#   crowds    perf/overload_clients.py (one Python process, epoll)             (ATTACK_CPUS)
#   provider  tests/oidc/provider.js, for part 3 only                         (LOAD_CPUS)
#   storm     perf/login_storm.py (threads), for part 3 only                  (ATTACK_CPUS)
#
# Part 1, unloaded: a short warm-up, then `wrk -t1 -c64 -dDURATION --latency` against the
#   gateway: the reference live throughput.
# Part 2, held connections: IDLE connections each send one complete request, read the
#   answer and go silent; then SLOW connections send a long request head one byte a second
#   (each one the gateway cuts is replaced at once, so the crowd stays SLOW strong; with the
#   10 s head timeout about one wave of cuts falls into every wrk run). While both crowds
#   are held, the same wrk run again: its req/s must stay >= MIN_RATIO % of part 1, with no
#   errors. The gateway's VmRSS/VmHWM (/proc/PID/status) is recorded before, with the idle
#   crowd, with both crowds, during wrk (highest of one sample a second) and after the
#   crowds are gone; the growth divided by the connections held gives bytes per held
#   connection. Slowloris connections are counted by how they ended (408 answer then
#   close, close without an answer, reset) and by when (seconds after their first byte:
#   must be the head timeout, none still open well past it). At the end every idle
#   connection sends a second request, which must be answered 2xx (they were held, not
#   dropped), and the gateway's `sessiongate_connections_open` must fall back to 0.
# Part 3, login storm: a second gateway with the provider and `cg.maxSessions: 50`. SESSIONS
#   parallel logins (distinct users) fill it; wrk measures cookie-authenticated GETs with
#   the first session (before); then STORM more logins, STORM_PARALLEL at a time, and kept
#   going until the wrk run they overlap has ended, while the same wrk runs again (during).
#   Every storm login must end at the callback with 503 + Retry-After, wrk must see no
#   non-2xx, and afterwards all SESSIONS sessions must still be served (200, not a redirect
#   to the login).
#
# CPU layout on the 2-core reference machine, as in perf/proxy.sh: the gateway alone on
# CPU 0; wrk, the backend, the crowds, the provider and the storm on CPU 1. The attackers
# sit with the load generator so that every cycle of CPU 0 is the gateway's; what they
# take from wrk is small for the crowds (a few thousand one-byte sends a second) but not
# for the storm (the provider's and the browsers' work): compare `gateway us/req` as well
# as req/s, and read `load cpu`. On more cores set ATTACK_CPUS apart.
#
# Noise: `other` is the CPU time of programs outside the benchmark during a wrk run, in %
# of one core (as in perf/proxy.sh). A wrk run with other > OTHER_MAX is repeated, up to
# TRIES times, and the quietest try is kept; a run left noisy is marked `*` and the script
# ends with a warning.
#
# Environment:
#   DURATION=10 WARMUP=2 CONNECTIONS=64 THREADS=1   wrk
#   IDLE=10000 SLOW=2000 MIN_RATIO=80               part 2
#   SESSIONS=50 STORM=200 STORM_PARALLEL=16         part 3 (cg.maxSessions = SESSIONS)
#   PARTS="1 2 3"                                   (2 needs 1)
#   PROXY_CPU=0 LOAD_CPUS=1 ATTACK_CPUS=1           taskset CPU lists
#   OTHER_MAX=5 TRIES=3
#   SKIP_BUILD=1                                    use the existing target/release/sessiongate
#   SESSIONGATE_BIN=path                            binary to test (implies SKIP_BUILD=1)
#   GATEWAY_ENV="NAME=value ..."                    extra environment for the gateways, e.g.
#                                                   MIMALLOC_ALLOW_THP=0 (see RESULTS.md)
#
# Needs nginx, wrk, curl, python3, node (npm ci --prefix tests when node_modules is
# missing); installs nginx/wrk/curl with apt-get when missing (root). Raises the open-file
# limit (ulimit -n 65536, or the hard limit when that is lower). Everything started here is
# stopped on exit (trap), also on Ctrl-C or error.
set -euo pipefail

# shellcheck source=perf/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
RUN="$ROOT/perf/.run-overload"

DURATION="${DURATION:-10}"
WARMUP="${WARMUP:-2}"
CONNECTIONS="${CONNECTIONS:-64}"
THREADS="${THREADS:-1}"
IDLE="${IDLE:-10000}"
SLOW="${SLOW:-2000}"
MIN_RATIO="${MIN_RATIO:-80}"
SESSIONS="${SESSIONS:-50}"
STORM="${STORM:-200}"
STORM_PARALLEL="${STORM_PARALLEL:-16}"
PARTS="${PARTS:-1 2 3}"
PROXY_CPU="${PROXY_CPU:-0}"
LOAD_CPUS="${LOAD_CPUS:-1}"
ATTACK_CPUS="${ATTACK_CPUS:-1}"
OTHER_MAX="${OTHER_MAX:-5}"
TRIES="${TRIES:-3}"
GATEWAY_ENV="${GATEWAY_ENV:-}"
HEAD_TIMEOUT_S=10 # sessiongate.request-head-timeout-ms default, in seconds

PERF_TAG=overload
[[ " $PARTS " == *" 2 "* && " $PARTS " != *" 1 "* ]] && die "part 2 needs part 1 (PARTS)"

# --- tools -------------------------------------------------------------------------------
need_tools nginx wrk curl
NGINX="$(tool_path nginx)"
[[ -x "$NGINX" ]] || die "nginx not found after install"
need_python
if [[ " $PARTS " == *" 3 "* ]]; then
    command -v node >/dev/null 2>&1 || die "node is needed for the provider (part 3)"
    [[ -d "$ROOT/tests/node_modules/oidc-provider" ]] \
        || npm ci --prefix "$ROOT/tests" --no-audit --no-fund >&2
fi

# Every held connection is one descriptor in the gateway and one in the crowd process.
raise_nofile
((NOFILE >= IDLE + SLOW + 1024)) \
    || die "open-file limit $NOFILE is below IDLE + SLOW + 1024 = $((IDLE + SLOW + 1024))"

# --- CPU layout ----------------------------------------------------------------------------
if setup_pinning; then
    layout="gateway on CPU $PROXY_CPU; wrk + backend (+ provider) on CPU $LOAD_CPUS; crowds and storm on CPU $ATTACK_CPUS"
else
    layout="no pinning ($NCPU CPU(s) or no taskset): numbers are indicative only"
    log "warning: $layout"
fi

# --- build -------------------------------------------------------------------------------
build_gateway sessiongate

# --- processes ---------------------------------------------------------------------------
init_run
echo '*' >"$RUN/.gitignore" # the whole run directory stays out of git
free_port BACKEND_PORT GW_PORT MGMT_PORT GW2_PORT MGMT2_PORT PROVIDER_PORT

log "starting backend (nginx) on :$BACKEND_PORT"
start_backend 16384

# Extra environment of the gateways: GATEWAY_ENV's NAME=value words.
read -r -a GW_ENV <<<"$GATEWAY_ENV"

EXCLUDE="$$ $(tree_of "$BACKEND_PID")"

declare -A MEM_RSS MEM_HWM MEM_THP
mem_point() { # label pid
    local r h
    read -r r h < <(mem_of "$2")
    MEM_RSS[$1]=$r MEM_HWM[$1]=$h MEM_THP[$1]=$(thp_of "$2")
    log "gateway memory, $1: VmRSS $(mib "$r") MiB, VmHWM $(mib "$h") MiB"
}

# --- part 1: unloaded ----------------------------------------------------------------------
if [[ " $PARTS " == *" 1 "* ]]; then
    gateway_conf "$RUN/gateway.yml" "$BACKEND_PORT" <<EOF
server: {address: 127.0.0.1, port: $GW_PORT}
management.server: {address: 127.0.0.1, port: $MGMT_PORT}
sessiongate:
  workers: 1
  access-log: false
  connection-idle-timeout-ms: 300000
  request-head-timeout-ms: $((HEAD_TIMEOUT_S * 1000))
EOF
    log "starting sessiongate on :$GW_PORT (1 worker)"
    start_gateway gateway "$RUN/gateway.yml" "sessiongate management on http://"
    SG1_PID=$GW_PID
    EXCLUDE+=" $SG1_PID"
    [[ "$(curl -fsS --max-time 2 "http://127.0.0.1:$GW_PORT/")" == hello ]] \
        || die "the gateway does not answer hello"
    mem_point start "$SG1_PID"
    if [[ "$WARMUP" != 0 ]]; then
        "${pin_load[@]}" wrk -t1 -c"$CONNECTIONS" -d"${WARMUP}s" "http://127.0.0.1:$GW_PORT/" \
            >"$RUN/wrk-warmup.txt" 2>&1
    fi
    measure unloaded "http://127.0.0.1:$GW_PORT/"
    mem_point before "$SG1_PID"
fi

# --- part 2: idle crowd + slowloris crowd ----------------------------------------------
CROWD_PID=""
SAMPLER_PID=""
rss_sampler_start() { # one VmRSS sample a second during the wrk run, bounded
    local pid=$SG1_PID n=$((DURATION + 2)) file="$RUN/rss-during-$1.txt"
    (for _ in $(seq "$n"); do mem_of "$pid" || true; sleep 1; done >"$file") &
    SAMPLER_PID=$!
    EXCLUDE+=" $SAMPLER_PID"
}
rss_sampler_stop() {
    stop_pid "$SAMPLER_PID"
}
if [[ " $PARTS " == *" 2 "* ]]; then
    log "part 2: $IDLE idle keep-alive connections, then $SLOW slowloris connections"
    start_crowd crowds --port "$GW_PORT" --idle "$IDLE" --slow "$SLOW" \
        --head-timeout "$HEAD_TIMEOUT_S" --pause 30 --setup-seconds 120 --max-seconds 240
    ATTACK_PIDS="$CROWD_PID"
    wait_line "$RUN/crowds.out" "^idle " "$CROWD_PID" "the crowd" 150
    sleep 2 # let the gateway settle (and the allocator purge) before reading its memory
    IDLE_HELD="$(awk '/^idle / { sub("idle=", "", $2); print $2 }' "$RUN/crowds.out")"
    OPEN_IDLE="$(metric "$MGMT_PORT" sessiongate_connections_open)"
    mem_point idle "$SG1_PID"
    log "idle crowd: $IDLE_HELD held; gateway connections_open $OPEN_IDLE"
    kill -USR2 "$CROWD_PID"
    wait_line "$RUN/crowds.out" "^ready " "$CROWD_PID" "the crowd" 150
    SLOW_UP="$(awk '/^ready / { sub("slow=", "", $3); print $3 }' "$RUN/crowds.out")"
    # One head timeout, so that the first wave of slowloris cuts (and their replacements)
    # has happened and the crowd churns as it will during wrk.
    log "slowloris crowd: $SLOW_UP standing; waiting $((HEAD_TIMEOUT_S + 2)) s for the first wave of cuts"
    sleep $((HEAD_TIMEOUT_S + 2))
    OPEN_CROWDS="$(metric "$MGMT_PORT" sessiongate_connections_open)"
    mem_point crowds "$SG1_PID"
    log "gateway connections_open with both crowds: $OPEN_CROWDS"
    MEASURE_PRE=rss_sampler_start MEASURE_POST=rss_sampler_stop
    measure loaded "http://127.0.0.1:$GW_PORT/"
    MEASURE_PRE="" MEASURE_POST=""
    # highest sample during the kept wrk run
    read -r DURING_RSS _ < <(sort -n "$RUN/rss-during-${R_TRY[loaded]}.txt" | tail -n 1)
    MEM_RSS[during]=$DURING_RSS
    MEM_THP[during]=$(thp_of "$SG1_PID")
    read -r _ "MEM_HWM[during]" < <(mem_of "$SG1_PID")
    log "gateway memory, during wrk: VmRSS up to $(mib "$DURING_RSS") MiB"
    grep '^t=' "$RUN/crowds.err" | tail -n 1 | sed 's/^/[overload] crowd status: /' >&2
    crowd_result crowds
    sleep 2
    OPEN_AFTER="$(metric "$MGMT_PORT" sessiongate_connections_open)"
    mem_point left "$SG1_PID"
    # The allocator gives freed memory back to the system lazily, on its next calls: a
    # short wrk run, then the memory the gateway keeps.
    "${pin_load[@]}" wrk -t1 -c"$CONNECTIONS" -d2s "http://127.0.0.1:$GW_PORT/" \
        >"$RUN/wrk-after.txt" 2>&1
    sleep 1
    mem_point after "$SG1_PID"
    cj() { json_get "$CROWD_JSON" "$1"; }
    [[ "$(curl -fsS --max-time 2 "http://127.0.0.1:$GW_PORT/")" == hello ]] \
        || log "warning: the gateway no longer answers hello after part 2"
fi
if [[ " $PARTS " == *" 1 "* ]]; then
    stop_gateway
fi

# --- part 3: login storm past cg.maxSessions -------------------------------------------------
STORM_PID=""
storm_start() {
    "${pin_attack[@]}" "$PYTHON" "$ROOT/perf/login_storm.py" "http://127.0.0.1:$GW2_PORT/" \
        --count "$STORM" --parallel "$STORM_PARALLEL" --prefix "storm$1-" \
        --min-seconds "$((DURATION + 2))" --max-seconds 120 \
        >"$RUN/storm-$1.json" 2>"$RUN/storm-$1.err" &
    STORM_PID=$!
    PIDS+=("$STORM_PID")
    EXCLUDE+=" $STORM_PID"
    ATTACK_PIDS="$STORM_PID $PROVIDER_PID"
    sleep 1 # the storm is under way before wrk starts
}
storm_wait() {
    for _ in $(seq 1800); do
        kill -0 "$STORM_PID" 2>/dev/null || break
        sleep 0.1
    done
    wait "$STORM_PID" 2>/dev/null || true
    [[ -s "$RUN/storm-$1.json" ]] || die "the storm gave no result; see $RUN/storm-$1.err"
}
sessions_served() { # how many of the cookies in FILE get 200 from the gateway
    local n=0 c
    while read -r c; do
        [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H 'Accept: text/html' \
            -H "Cookie: SESSION=$c" "http://127.0.0.1:$GW2_PORT/")" == 200 ]] && n=$((n + 1))
    done <"$1"
    echo "$n"
}
if [[ " $PARTS " == *" 3 "* ]]; then
    log "part 3: provider and a gateway with cg.maxSessions: $SESSIONS"
    PORT=$PROVIDER_PORT ISSUER="http://127.0.0.1:$PROVIDER_PORT" ACCESS_TOKEN_TTL=3600 \
        REDIRECT_URI="http://127.0.0.1:$GW2_PORT/login/oauth2/code/demo" \
        KEYS_DIR="$RUN/provider-keys" \
        "${pin_load[@]}" node "$ROOT/tests/oidc/provider.js" \
        >"$RUN/provider.out" 2>"$RUN/provider.err" &
    PROVIDER_PID=$!
    PIDS+=("$PROVIDER_PID")
    EXCLUDE+=" $PROVIDER_PID"
    ATTACK_PIDS="$PROVIDER_PID"
    wait_line "$RUN/provider.out" "provider listening on" "$PROVIDER_PID" "the provider" 30
    gateway_conf "$RUN/gateway-oidc.yml" "$BACKEND_PORT" "$PROVIDER_PORT" <<EOF
server: {address: 127.0.0.1, port: $GW2_PORT}
management.server: {address: 127.0.0.1, port: $MGMT2_PORT}
cg: {useSecureSessionCookie: false, sessionTimeoutSec: 3600, maxSessions: $SESSIONS}
sessiongate: {workers: 1, access-log: false}
EOF
    start_gateway gateway-oidc "$RUN/gateway-oidc.yml" "sessiongate management on http://"
    SG2_PID=$GW_PID
    EXCLUDE+=" $SG2_PID"
    wait_login_redirect "$GW2_PORT"
    "${pin_attack[@]}" "$PYTHON" "$ROOT/perf/login_storm.py" "http://127.0.0.1:$GW2_PORT/" \
        --count "$SESSIONS" --parallel 10 --prefix user --cookies "$RUN/sessions.txt" \
        >"$RUN/fill.json" 2>"$RUN/fill.err" || die "the logins failed: $(cat "$RUN/fill.err")"
    FILLED="$(wc -l <"$RUN/sessions.txt")"
    log "logins: $(cat "$RUN/fill.json")"
    ((FILLED == SESSIONS)) || die "only $FILLED of $SESSIONS logins made a session; see $RUN/fill.*"
    ACTIVE_BEFORE="$(metric "$MGMT2_PORT" sessiongate_sessions_active)"
    COOKIE="$(head -n 1 "$RUN/sessions.txt")"
    HDR="Cookie: SESSION=$COOKIE; theme=dark"
    "${pin_load[@]}" wrk -t1 -c"$CONNECTIONS" -d"${WARMUP}s" -H "$HDR" \
        "http://127.0.0.1:$GW2_PORT/" >"$RUN/wrk-warmup-session.txt" 2>&1
    measure sessions "http://127.0.0.1:$GW2_PORT/" -H "$HDR"
    REJECTED0="$(metric "$MGMT2_PORT" sessiongate_sessions_rejected_total)"
    MEASURE_PRE=storm_start MEASURE_POST=storm_wait
    measure storm "http://127.0.0.1:$GW2_PORT/" -H "$HDR"
    MEASURE_PRE="" MEASURE_POST=""
    # The storm alone (no wrk): its rate, and the gateway's own CPU time per refused login.
    STARTED0="$(metric "$MGMT2_PORT" sessiongate_logins_started_total)"
    g0="$(proc_ticks "$SG2_PID")"
    "${pin_attack[@]}" "$PYTHON" "$ROOT/perf/login_storm.py" "http://127.0.0.1:$GW2_PORT/" \
        --count "$STORM" --parallel "$STORM_PARALLEL" --prefix "alone-" --max-seconds 120 \
        >"$RUN/storm-alone.json" 2>"$RUN/storm-alone.err" || die "storm failed; see $RUN/storm-alone.err"
    g1="$(proc_ticks "$SG2_PID")"
    STARTED1="$(metric "$MGMT2_PORT" sessiongate_logins_started_total)"
    read -r ALONE_N ALONE_S ALONE_503 < <("$PYTHON" -c 'import json, sys
r = json.load(open(sys.argv[1])); print(r["attempts"], r["elapsed_s"], r["by_status"].get("503", 0))' "$RUN/storm-alone.json")
    ALONE_US="$(awk -v t="$((g1 - g0))" -v n="$ALONE_N" -v c="$CLK_TCK" 'BEGIN { printf "%.0f", (n > 0 ? t / c * 1e6 / n : 0) }')"
    ALONE_BUSY="$(awk -v t="$((g1 - g0))" -v s="$ALONE_S" -v c="$CLK_TCK" 'BEGIN { printf "%.0f", (s > 0 ? 100 * t / c / s : 0) }')"
    log "storm alone: $ALONE_N logins ($ALONE_503 answered 503) in $ALONE_S s; gateway $ALONE_US us CPU per login, $ALONE_BUSY% busy; logins started $((STARTED1 - STARTED0))"
    REJECTED1="$(metric "$MGMT2_PORT" sessiongate_sessions_rejected_total)"
    ACTIVE_AFTER="$(metric "$MGMT2_PORT" sessiongate_sessions_active)"
    SERVED_AFTER="$(sessions_served "$RUN/sessions.txt")"
    STORM_JSON="$(cat "$RUN/storm-${R_TRY[storm]}.json")"
    sj() { "$PYTHON" -c 'import json, sys; v = json.loads(sys.argv[1])
for k in sys.argv[2].split("."): v = v.get(k, 0) if isinstance(v, dict) else v
print(v if not isinstance(v, list) else ",".join(v) or "-")' "$STORM_JSON" "$1"; }
    read -r STORM_TOTAL_ALL STORM_503_ALL < <("$PYTHON" -c 'import json, sys
runs = [json.load(open(f)) for f in sys.argv[1:]]
print(sum(r["attempts"] for r in runs), sum(r["by_status"].get("503", 0) for r in runs))' "$RUN"/storm-*.json)
fi

# --- report ------------------------------------------------------------------------------
sg_rev="$(git_rev)"
dirty=""
[[ -n "$(cd "$ROOT" && git status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null)" ]] && dirty=" (+ uncommitted changes in src/)"
pass() { if eval "$1"; then echo pass; else echo FAIL; fi; }
FAILED=0
echo
echo "command:  DURATION=$DURATION IDLE=$IDLE SLOW=$SLOW SESSIONS=$SESSIONS STORM=$STORM STORM_PARALLEL=$STORM_PARALLEL bash perf/overload.sh"
echo "          (wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s --latency; noisy wrk runs repeated up to $TRIES times, quietest kept)"
echo "machine:  $NCPU CPUs, $(cpu_model), kernel $(uname -r), open-file limit $NOFILE"
echo "layout:   $layout"
echo "versions: sessiongate $sg_rev$dirty; $("$NGINX" -v 2>&1 | sed 's/.*version: //'); $(wrk -v 2>&1 | awk 'NR == 1 {print $1, $2}'); $("$PYTHON" -V 2>&1); node $(node -v 2>/dev/null || echo -)"
echo "gateway:  workers 1, connection-idle-timeout-ms 300000, request-head-timeout-ms $((HEAD_TIMEOUT_S * 1000))${GATEWAY_ENV:+, environment $GATEWAY_ENV}"
echo "memory:   transparent huge pages $(grep -o '\[[a-z]*\]' /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null || echo '?'), $(awk '/^MemTotal:/ { printf "%.1f GiB RAM", $2 / 1048576 }' /proc/meminfo)"
echo "date:     $(date -u +%Y-%m-%dT%H:%MZ)"
echo
printf '| %-44s | %8s | %7s | %7s | %6s | %11s | %14s | %8s | %9s | %6s | %5s |\n' "wrk run (live traffic)" \
    "req/s" "p99 ms" "non-2xx" "socket" "gateway cpu" "gateway us/req" "load cpu" "attackers" "other" "tries"
printf '|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|\n' "----------------------------------------------" \
    "---------:" "--------:" "--------:" "-------:" "------------:" "---------------:" \
    "---------:" "----------:" "-------:" "------:"
row() { # label title
    local l=$1 mark=""
    [[ -n "${R_RPS[$l]:-}" ]] || return 0
    num_gt "${R_OTHER[$l]}" "$OTHER_MAX" && mark="*"
    printf '| %-44s | %8.0f | %7.2f | %7d | %6d | %10s%% | %14s | %7s%% | %8s%% | %6s | %5s |\n' "$2" \
        "${R_RPS[$l]}" "${R_P99[$l]}" "${R_N2XX[$l]}" "${R_SOCK[$l]}" "${R_PCPU[$l]}" \
        "${R_US[$l]}" "${R_LCPU[$l]}" "${R_ACPU[$l]}" "${R_OTHER[$l]}%$mark" "${R_TRIES[$l]}"
}
row unloaded "plain proxy, unloaded"
row loaded "plain proxy, $IDLE idle + $SLOW slowloris held"
row sessions "session cookie, $SESSIONS sessions, before storm"
row storm "session cookie, during the login storm"
echo

if [[ " $PARTS " == *" 2 "* ]]; then
    HELD=$((IDLE_HELD + SLOW_UP))
    memrow() { # label title connections
        printf '| %-34s | %9s | %9s | %13s | %16s |\n' "$2" "$(mib "${MEM_RSS[$1]}")" \
            "$(mib "${MEM_HWM[$1]}")" "$(mib "${MEM_THP[$1]}")" "$3"
    }
    printf '| %-34s | %9s | %9s | %13s | %16s |\n' "gateway memory" "VmRSS MiB" "VmHWM MiB" \
        "AnonHuge MiB" "connections open"
    printf '|%s|%s|%s|%s|%s|\n' "------------------------------------" "----------:" "----------:" \
        "--------------:" "-----------------:"
    memrow start "started" 0
    memrow before "after the unloaded wrk run" 0
    memrow idle "$IDLE_HELD idle held" "$OPEN_IDLE"
    memrow crowds "+ $SLOW_UP slowloris held" "$OPEN_CROWDS"
    memrow during "during wrk (highest sample)" "+ $CONNECTIONS"
    memrow left "2 s after the crowds left" "$OPEN_AFTER"
    memrow after "then 2 s of wrk, 1 s idle" "0"
    PER_IDLE="$(awk -v a="${MEM_RSS[idle]}" -v b="${MEM_RSS[before]}" -v n="$IDLE_HELD" 'BEGIN { printf "%.0f", (n > 0 ? (a - b) * 1024 / n : 0) }')"
    PER_HELD="$(awk -v a="${MEM_RSS[crowds]}" -v b="${MEM_RSS[before]}" -v n="$HELD" 'BEGIN { printf "%.0f", (n > 0 ? (a - b) * 1024 / n : 0) }')"
    PER_PEAK="$(awk -v a="${MEM_HWM[during]}" -v b="${MEM_RSS[before]}" -v n="$HELD" 'BEGIN { printf "%.0f", (n > 0 ? (a - b) * 1024 / n : 0) }')"
    echo
    echo "memory per held connection: $PER_IDLE bytes (idle crowd alone), $PER_HELD bytes (both crowds), $PER_PEAK bytes (VmHWM peak over both crowds)"
    echo
fi

printf '| %-58s | %-24s | %-18s | %-6s |\n' "check" "measured" "required" "result"
printf '|%s|%s|%s|%s|\n' "------------------------------------------------------------" \
    "--------------------------" "--------------------" "--------"
check() { # what measured required condition
    local r
    r="$(pass "$4")"
    [[ "$r" == pass ]] || FAILED=1
    printf '| %-58s | %-24s | %-18s | %-6s |\n' "$1" "$2" "$3" "$r"
}
if [[ " $PARTS " == *" 2 "* ]]; then
    RATIO="$(awk -v a="${R_RPS[loaded]}" -v b="${R_RPS[unloaded]}" 'BEGIN { printf "%.1f", (b > 0 ? 100 * a / b : 0) }')"
    check "live req/s with the crowds held / unloaded" "$RATIO %" ">= $MIN_RATIO %" \
        "awk -v r=$RATIO -v m=$MIN_RATIO 'BEGIN { exit !(r >= m) }'"
    check "live wrk errors (non-2xx + socket) with the crowds held" \
        "$((R_N2XX[loaded] + R_SOCK[loaded]))" "0" "((R_N2XX[loaded] + R_SOCK[loaded] == 0))"
    check "idle connections held (one request answered, then silent)" "$IDLE_HELD / $IDLE" "all" "((IDLE_HELD == IDLE))"
    check "idle connections closed by the gateway while held" "$(cj idle_closed)" "0" "(($(cj idle_closed) == 0))"
    check "idle connections answering a 2nd request after the hold" "$(cj verify_2xx) / $IDLE_HELD" "all" "(($(cj verify_2xx) == IDLE_HELD))"
    SLOW_CUT=$(($(cj slow_cut_408) + $(cj slow_cut_close) + $(cj slow_cut_reset)))
    check "slowloris connections opened (crowd + replacements)" "$(cj slow_opened)" "-" "true"
    check "slowloris connections cut: 408 + close / close / reset" \
        "$SLOW_CUT: $(cj slow_cut_408) / $(cj slow_cut_close) / $(cj slow_cut_reset)" "> 0" "((SLOW_CUT > 0))"
    check "seconds from first head byte to cut: min / median / max" \
        "$(cj cut_s_min) / $(cj cut_s_median) / $(cj cut_s_max)" "~ $HEAD_TIMEOUT_S" \
        "awk -v a=$(cj cut_s_min) -v b=$(cj cut_s_max) -v t=$HEAD_TIMEOUT_S 'BEGIN { exit !(a >= t - 0.5 && b <= t + 2) }'"
    check "slowloris still open > head timeout + 2 s at the end" "$(cj slow_overdue)" "0" "(($(cj slow_overdue) == 0))"
    CHURN="$(awk -v a="${MEM_RSS[during]}" -v b="${MEM_RSS[crowds]}" 'BEGIN { printf "%+.1f", (a - b) / 1024 }')"
    # wrk's own connections are new too: 16 MiB of room for them besides 5 % of the growth
    check "VmRSS change while the slowloris crowd churned (wrk run)" "$CHURN MiB" "< 5 % held + 16 MiB" \
        "((MEM_RSS[during] - MEM_RSS[crowds] < (MEM_RSS[crowds] - MEM_RSS[before]) / 20 + 16384))"
    check "gateway connections open 2 s after the crowds left" "$OPEN_AFTER" "0" "[[ '$OPEN_AFTER' == 0 ]]"
    check "gateway VmRSS after the crowds (+ 2 s wrk) / before" "$(mib "${MEM_RSS[after]}") / $(mib "${MEM_RSS[before]}") MiB" "< before + 32 MiB" \
        "((MEM_RSS[after] < MEM_RSS[before] + 32768))"
fi
if [[ " $PARTS " == *" 3 "* ]]; then
    S503=$(sj by_status.503)
    check "sessions created before the storm (cg.maxSessions)" "$FILLED / $SESSIONS (active $ACTIVE_BEFORE)" "$SESSIONS" "((FILLED == SESSIONS))"
    check "storm logins reaching the callback (kept try)" "$(( $(sj attempts) - $(sj failed_before_callback) )) / $(sj attempts)" "all" "(($(sj failed_before_callback) == 0))"
    check "storm callbacks answered 503 with Retry-After" "$(sj r503_retry_after) (Retry-After $(sj retry_after_values))" "all" "(($(sj r503_retry_after) == $(sj attempts)))"
    check "storm callbacks 503 without Retry-After / other status" "$(sj r503_no_retry_after) / $(( $(sj attempts) - S503 - $(sj failed_before_callback) ))" "0 / 0" "(($(sj r503_no_retry_after) == 0 && $(sj attempts) - S503 - $(sj failed_before_callback) == 0))"
    check "sessiongate_sessions_rejected_total, all storm tries" "$((REJECTED1 - REJECTED0))" "= their 503s ($STORM_503_ALL)" "(($((REJECTED1 - REJECTED0)) == STORM_503_ALL))"
    check "live wrk errors (non-2xx + socket) during the storm" "$((R_N2XX[storm] + R_SOCK[storm]))" "0" "((R_N2XX[storm] + R_SOCK[storm] == 0))"
    RATIO3="$(awk -v a="${R_RPS[storm]}" -v b="${R_RPS[sessions]}" 'BEGIN { printf "%.1f", (b > 0 ? 100 * a / b : 0) }')"
    check "live req/s during the storm / before" "$RATIO3 %" "reported" "true"
    check "sessions served after the storm (200 with their cookie)" "$SERVED_AFTER / $SESSIONS (active $ACTIVE_AFTER)" "all" "((SERVED_AFTER == SESSIONS))"
    echo
    echo "storm (kept try ${R_TRY[storm]}): $(sj attempts) logins, $STORM_PARALLEL at a time, in $(sj elapsed_s) s; all tries and the storm alone: $STORM_TOTAL_ALL logins"
    echo "storm alone (no wrk): $ALONE_N logins in $ALONE_S s ($(awk -v n="$ALONE_N" -v s="$ALONE_S" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }')/s), gateway CPU $ALONE_US us per refused login (gateway $ALONE_BUSY% busy)"
fi
echo
echo "raw output: $RUN/ (wrk-*.txt, crowds.out/.err, storm-*.json, gateway logs)"
if ((NOISY)); then
    echo
    echo "WARNING: other programs used more than $OTHER_MAX% of a core in the runs marked *,"
    echo "         in all $TRIES tries; rerun on a quiet machine before drawing conclusions."
fi
if ((FAILED)); then
    echo
    echo "FAILED: at least one check above did not pass."
    exit 1
fi
