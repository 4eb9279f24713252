#!/usr/bin/env bash
# perf/idle.sh — what an idle keep-alive connection costs, sessiongate and nginx side by side
# in the same run, plain HTTP and TLS: the serving process's memory per idle connection, and
# live throughput with N idle connections held against the same target unloaded.
#
# What runs (127.0.0.1 only, every port picked free, files under perf/.run-idle/):
#   backend   nginx, 1 worker, `return 200 "hello\n"`, no access log         (LOAD_CPUS)
#   targets, one at a time, each started fresh for its case and stopped after it (PROXY_CPU):
#     sessiongate         `workers: 1`, route /** -> backend, access log off, the default
#                         300 s idle timeout, `max-connections` N + CONNECTIONS + 1024 (its
#                         default 9000 is below N); TLS: `server.ssl`. Binary SESSIONGATE_BIN
#                         (or target/release/sessiongate), environment GATEWAY_ENV.
#     sessiongate-nothp   the same with NOTHP_ENV (MIMALLOC_ALLOW_THP=0) added
#     before, before-nothp  the same two with BEFORE_BIN (the build before a change)
#     nginx               1 worker, upstream `keepalive 64`, keepalive_timeout 300 s,
#                         worker_connections N + CONNECTIONS + BURST + 1024; TLS: `ssl`
#   crowd     perf/overload_clients.py --slow 0 [--tls], one Python process  (ATTACK_CPUS)
# TLS: one ECDSA P-256 certificate and the client's protocol, suite and group pinned through
# OPENSSL_CONF, as perf/tls.sh does (lib.sh tls_setup); PROTO=1.3 TLS_AES_128_GCM_SHA256.
#
# Each case (CASES, TARGET:MODE with MODE plain or tls):
#   1. WARMUP s of wrk, then `wrk -tTHREADS -cCONNECTIONS -dDURATION --latency`: unloaded.
#   2. SETTLE s, then VmRSS of the serving process (the gateway; nginx's worker): "before".
#   3. N idle connections, each after exactly one answered request (BURST of them in flight
#      at once: the gateway's buffer pool then peaks no higher than with wrk's 64, so what is
#      measured is the connections, not the pool's high-water mark).
#   4. SETTLE s, then VmRSS "held" (and AnonHugePages), and the connections the server has
#      established on its port (ss); for sessiongate also its connections_open and
#      io_buffers_lent gauges (the latter only in builds that have it).
#   5. The same wrk run with the crowd held: live req/s held / unloaded.
#   6. Every idle connection sends a second request: all must be answered 2xx (they were
#      held, not dropped), none may have been closed by the server during the hold.
#   bytes per idle connection = (VmRSS held - VmRSS before) / connections held.
# Kernel socket memory is in no process's VmRSS and so in neither figure. nginx allocates its
# connection and event structures for all worker_connections when its worker starts, so they
# are in its "before" figure, not in the difference.
#
# Targets it reports against (met / NOT met): sessiongate plain idle <= PLAIN_MAX_BYTES
# (2048) per connection; sessiongate TLS idle <= nginx TLS idle; live req/s with N held >=
# MIN_RATIO (90) % of unloaded, for sessiongate plain and TLS. Exits 1 when a check fails
# (a connection not held, closed by the server or not answering its second request, or wrk
# errors), not when a target is missed.
#
# Noise: `other` is the CPU time of programs outside the benchmark during a wrk run, in % of
# one core (lib.sh others_snap); a run above OTHER_MAX is repeated up to TRIES times and the
# quietest try kept; one noisy in every try is marked `*`. Run on a quiet machine.
#
# Environment:
#   N=15000                  idle connections per case (lowered, with a note, to what the
#                            open-file limit and the ephemeral port range allow)
#   BURST=64 SETTLE=2 SETUP=120   connections in flight while the crowd opens; seconds of
#                            settling before each VmRSS reading; seconds allowed for the crowd
#   DURATION=10 WARMUP=2 CONNECTIONS=64 THREADS=1   wrk
#   CASES="sessiongate:plain [before:plain] nginx:plain sessiongate-nothp:plain
#          [before-nothp:plain] sessiongate:tls nginx:tls"   (before* only with BEFORE_BIN)
#   PROTO=1.3                TLS 1.3 or 1.2 (as perf/tls.sh)
#   PROXY_CPU=0 LOAD_CPUS=1 ATTACK_CPUS=1   taskset CPU lists
#   OTHER_MAX=5 TRIES=3 MIN_RATIO=90 PLAIN_MAX_BYTES=2048
#   SKIP_BUILD=1             use the existing target/release/sessiongate
#   SESSIONGATE_BIN=path     binary to test (implies SKIP_BUILD=1)
#   BEFORE_BIN=path          a second binary ("before"), measured in the same run
#   GATEWAY_ENV="NAME=value ..."   extra environment for every gateway
#   NOTHP_ENV="MIMALLOC_ALLOW_THP=0"   what the *-nothp cases add to it
#
# Needs nginx, wrk, curl, openssl, ss and python3; installs nginx/wrk/curl/openssl with
# apt-get when missing (root). Raises the open-file limit as far as allowed (ulimit -n 65536
# or the hard limit). Everything started here is stopped on exit (trap), also on Ctrl-C or
# error; the crowds close their sockets with a reset, so no TIME_WAIT is left behind.
set -euo pipefail

# shellcheck source=perf/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
RUN="$ROOT/perf/.run-idle"

N="${N:-15000}"
BURST="${BURST:-64}"
SETTLE="${SETTLE:-2}"
SETUP="${SETUP:-120}"
DURATION="${DURATION:-10}"
WARMUP="${WARMUP:-2}"
CONNECTIONS="${CONNECTIONS:-64}"
THREADS="${THREADS:-1}"
PROTO="${PROTO:-1.3}"
PROXY_CPU="${PROXY_CPU:-0}"
LOAD_CPUS="${LOAD_CPUS:-1}"
ATTACK_CPUS="${ATTACK_CPUS:-1}"
OTHER_MAX="${OTHER_MAX:-5}"
TRIES="${TRIES:-3}"
MIN_RATIO="${MIN_RATIO:-90}"
PLAIN_MAX_BYTES="${PLAIN_MAX_BYTES:-2048}"
BEFORE_BIN="${BEFORE_BIN:-}"
GATEWAY_ENV="${GATEWAY_ENV:-}"
NOTHP_ENV="${NOTHP_ENV:-MIMALLOC_ALLOW_THP=0}"
if [[ -n "$BEFORE_BIN" ]]; then
    CASES="${CASES:-sessiongate:plain before:plain nginx:plain sessiongate-nothp:plain before-nothp:plain sessiongate:tls nginx:tls}"
else
    CASES="${CASES:-sessiongate:plain nginx:plain sessiongate-nothp:plain sessiongate:tls nginx:tls}"
fi
PERF_TAG=idle

[[ "$PROTO" == 1.[23] ]] || die "PROTO must be 1.3 or 1.2"
for c in $CASES; do
    [[ "$c" =~ ^(sessiongate|sessiongate-nothp|before|before-nothp|nginx):(plain|tls)$ ]] \
        || die "unknown case '$c' (TARGET:MODE, TARGET sessiongate, sessiongate-nothp, before, before-nothp or nginx; MODE plain or tls)"
    [[ "$c" != before* || -n "$BEFORE_BIN" ]] || die "case $c needs BEFORE_BIN"
done
[[ -z "$BEFORE_BIN" || -x "$BEFORE_BIN" ]] || die "no binary at BEFORE_BIN=$BEFORE_BIN"

# --- tools, limits, CPU layout, build --------------------------------------------------------
need_tools nginx wrk curl openssl
NGINX="$(tool_path nginx)"
[[ -x "$NGINX" ]] || die "nginx not found after install"
command -v ss >/dev/null 2>&1 || die "ss (iproute2) is needed to count the server's connections"
need_python

# Every idle connection is a descriptor in the crowd and one in the target (besides its
# upstream sockets and wrk's connections), and a client port of the ephemeral range.
raise_nofile
read -r PORT_LOW PORT_HIGH </proc/sys/net/ipv4/ip_local_port_range
N_WANTED=$N
N_WHY=""
by_files=$((NOFILE - CONNECTIONS - BURST - 1024))
by_ports=$((PORT_HIGH - PORT_LOW + 1 - CONNECTIONS - 1024))
if ((N > by_files)); then
    N=$by_files N_WHY="open-file limit $NOFILE (N + $CONNECTIONS wrk + $BURST in flight + 1024 spare)"
fi
if ((N > by_ports)); then
    N=$by_ports N_WHY="ephemeral port range $PORT_LOW-$PORT_HIGH"
fi
((N > 0)) || die "no room for idle connections: $N_WHY"
[[ -z "$N_WHY" ]] || log "warning: N lowered from $N_WANTED to $N by the $N_WHY"
MAXCONN=$((N + CONNECTIONS + 1024))

if setup_pinning; then
    layout="target on CPU $PROXY_CPU; wrk + backend on CPU $LOAD_CPUS; crowd on CPU $ATTACK_CPUS"
else
    layout="no pinning ($NCPU CPU(s) or no taskset): numbers are indicative only"
    log "warning: $layout"
fi

build_gateway sessiongate
AFTER_BIN=$SG_BIN

# --- processes -------------------------------------------------------------------------------
init_run
echo '*' >"$RUN/.gitignore" # the whole run directory stays out of git
if [[ " $CASES " == *":tls "* ]]; then tls_setup "$RUN" "$PROTO"; fi
free_port BACKEND_PORT
log "starting backend (nginx) on :$BACKEND_PORT"
start_backend 8192
BACKEND_TREE="$(tree_of "$BACKEND_PID")"

# BIN, when it was built and the commit its checkout (BIN in CHECKOUT/target/release) is at
# now: the build may be older than that commit.
bin_info() {
    echo "$1 (built $(date -u -r "$1" +%Y-%m-%dT%H:%MZ), checkout at $(git -C "$(dirname "$1")" rev-parse --short HEAD 2>/dev/null || echo "?"))"
}
# Connections established on 127.0.0.1:PORT, the server's side.
established() { ss -Htn state established "( sport = :$1 )" | wc -l; }

# start_target TARGET MODE PORT MGMT: starts it; sets SERVE_PID (whose VmRSS is read),
# STOP_PID (what to stop) and TREE (its processes, for the CPU accounting).
start_target() {
    local target=$1 mode=$2 port=$3 mgmt=$4 env=$GATEWAY_ENV dir tls_lines=""
    case "$target" in
    nginx)
        dir="$RUN/nginx-$mode"
        if [[ $mode == tls ]]; then tls_lines="$(nginx_tls_lines "$RUN")"; fi
        nginx_proxy_conf "$dir" "127.0.0.1:$port${tls_lines:+ ssl} reuseport backlog=4096" "$tls_lines" \
            $((N + CONNECTIONS + BURST + 1024))
        start_nginx "nginx-$mode" "$dir"
        STOP_PID=$NGINX_PID
        wait_hello "nginx-$mode" "$SCHEME://127.0.0.1:$port/" "$NGINX_PID"
        SERVE_PID="$(children_of "$NGINX_PID" | head -n 1)"
        [[ -n "$SERVE_PID" ]] || die "no nginx worker under $NGINX_PID"
        ;;
    *)
        SG_BIN=$AFTER_BIN
        [[ "$target" != before* ]] || SG_BIN=$BEFORE_BIN
        [[ "$target" != *-nothp ]] || env+=" $NOTHP_ENV"
        read -r -a GW_ENV <<<"$env"
        {
            printf 'server:\n  address: 127.0.0.1\n  port: %s\n' "$port"
            if [[ $mode == tls ]]; then gateway_tls_yaml "$RUN"; fi
            cat <<EOF
management.server: {address: 127.0.0.1, port: $mgmt}
sessiongate:
  workers: 1
  access-log: false
  max-connections: $MAXCONN
EOF
        } | gateway_conf "$RUN/$target-$mode.yml" "$BACKEND_PORT"
        start_gateway "$target-$mode" "$RUN/$target-$mode.yml" "sessiongate management on http://"
        STOP_PID=$GW_PID SERVE_PID=$GW_PID
        wait_hello "$target-$mode" "$SCHEME://127.0.0.1:$port/" "$GW_PID"
        ;;
    esac
    TREE="$(tree_of "$STOP_PID")"
}

# --- the cases -------------------------------------------------------------------------------
declare -A C_HELD C_BEFORE C_AFTER C_THP C_BYTES C_EST C_OPEN C_LENT C_CLOSED C_2XX C_UNEXP C_TLS C_START
for c in $CASES; do
    target=${c%%:*} mode=${c##*:}
    SCHEME=http
    [[ $mode == plain ]] || SCHEME=https
    free_port CASE_PORT CASE_MGMT
    url="$SCHEME://127.0.0.1:$CASE_PORT/"
    log "== $target, $mode, on :$CASE_PORT"
    start_target "$target" "$mode" "$CASE_PORT" "$CASE_MGMT"
    read -r "C_START[$c]" _ < <(mem_of "$SERVE_PID")
    EXCLUDE="$$ $BACKEND_TREE $TREE"
    ATTACK_PIDS=""
    if [[ "$WARMUP" != 0 ]]; then run_wrk "$WARMUP" "$RUN/wrk-$target-$mode-warmup.txt" "$url"; fi
    measure "$target-$mode-unloaded" "$url"
    sleep "$SETTLE"
    read -r "C_BEFORE[$c]" _ < <(mem_of "$SERVE_PID")

    crowd_args=(--port "$CASE_PORT" --idle "$N" --slow 0 --burst "$BURST" --setup-seconds "$SETUP"
        --max-seconds $((SETUP + 2 * SETTLE + TRIES * (DURATION + 5) + 60)))
    [[ $mode == plain ]] || crowd_args+=(--tls --server-name localhost)
    start_crowd "crowd-$target-$mode" "${crowd_args[@]}"
    wait_line "$RUN/crowd-$target-$mode.out" "^ready " "$CROWD_PID" "the crowd" $((SETUP + 30))
    C_HELD[$c]="$(awk '/^ready / { sub("idle=", "", $2); print $2 }' "$RUN/crowd-$target-$mode.out")"
    sleep "$SETTLE"
    read -r "C_AFTER[$c]" _ < <(mem_of "$SERVE_PID")
    C_THP[$c]="$(thp_of "$SERVE_PID")"
    C_EST[$c]="$(established "$CASE_PORT")"
    C_OPEN[$c]="-" C_LENT[$c]="-"
    if [[ $target != nginx ]]; then
        C_OPEN[$c]="$(metric "$CASE_MGMT" sessiongate_connections_open)"
        C_LENT[$c]="$(metric "$CASE_MGMT" sessiongate_io_buffers_lent)"
    fi
    C_BYTES[$c]="$(awk -v a="${C_AFTER[$c]}" -v b="${C_BEFORE[$c]}" -v n="${C_HELD[$c]}" \
        'BEGIN { printf "%.0f", (n > 0 ? (a - b) * 1024 / n : 0) }')"
    log "$target $mode: ${C_HELD[$c]} idle held; VmRSS $(mib "${C_START[$c]}") at start, $(mib "${C_BEFORE[$c]}") -> $(mib "${C_AFTER[$c]}") MiB" \
        "(${C_BYTES[$c]} bytes each, AnonHugePages $(mib "${C_THP[$c]}") MiB); server established ${C_EST[$c]}," \
        "connections_open ${C_OPEN[$c]}, io_buffers_lent ${C_LENT[$c]}"

    ATTACK_PIDS=$CROWD_PID
    measure "$target-$mode-held" "$url"
    crowd_result "crowd-$target-$mode"
    C_CLOSED[$c]="$(json_get "$CROWD_JSON" idle_closed)"
    C_2XX[$c]="$(json_get "$CROWD_JSON" verify_2xx)"
    C_UNEXP[$c]="$(json_get "$CROWD_JSON" idle_unexpected)"
    C_TLS[$c]="$(json_get "$CROWD_JSON" tls)"
    log "$target $mode: closed by the server while held ${C_CLOSED[$c]}, second request answered 2xx" \
        "${C_2XX[$c]} / ${C_HELD[$c]}${C_TLS[$c]:+, crowd negotiated ${C_TLS[$c]}}"
    stop_started "$STOP_PID"
done

# --- report ------------------------------------------------------------------------------
label_of() { # TARGET: the name in the tables
    case "$1" in
    sessiongate) echo "sessiongate${BEFORE_BIN:+ after}" ;;
    sessiongate-nothp) echo "sessiongate${BEFORE_BIN:+ after}, $NOTHP_ENV" ;;
    before) echo "sessiongate before" ;;
    before-nothp) echo "sessiongate before, $NOTHP_ENV" ;;
    nginx) "$NGINX" -v 2>&1 | sed 's/.*version: //; s|/| |' ;;
    esac
}
ratio_of() { awk -v a="${R_RPS[$1-held]}" -v b="${R_RPS[$1-unloaded]}" 'BEGIN { printf "%.1f", (b > 0 ? 100 * a / b : 0) }'; }
mark_of() { if num_gt "${R_OTHER[$1]}" "$OTHER_MAX"; then echo "*"; fi; }

n_line="N=$N"
[[ -z "$N_WHY" ]] || n_line="N=$N (asked $N_WANTED; lowered by the $N_WHY)"
echo
echo "command:  $n_line BURST=$BURST DURATION=$DURATION CASES=\"$CASES\" bash perf/idle.sh"
echo "          (wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s --latency; noisy wrk runs repeated up to $TRIES times, quietest kept)"
echo "machine:  $NCPU CPUs, $(cpu_model), kernel $(uname -r), open-file limit $NOFILE, ephemeral ports $PORT_LOW-$PORT_HIGH"
echo "layout:   $layout"
echo "binaries: ${BEFORE_BIN:+after }$(bin_info "$AFTER_BIN")"
[[ -z "$BEFORE_BIN" ]] || echo "          before $(bin_info "$BEFORE_BIN")"
echo "versions: $("$NGINX" -v 2>&1 | sed 's/.*version: //'); $(openssl version | awk '{print $1, $2}'); $(wrk -v 2>&1 | awk 'NR == 1 {print $1, $2}'); $("$PYTHON" -V 2>&1)"
echo "gateway:  workers 1, access-log off, max-connections $MAXCONN, connection-idle-timeout-ms 300000 (default)${GATEWAY_ENV:+, environment $GATEWAY_ENV}"
echo "memory:   transparent huge pages $(grep -o '\[[a-z]*\]' /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null || echo '?'), $(awk '/^MemTotal:/ { printf "%.1f GiB RAM", $2 / 1048576 }' /proc/meminfo)"
[[ " $CASES " != *":tls "* ]] || echo "tls:      TLS $PROTO, $TLS_SUITE, X25519 (pinned by OPENSSL_CONF), ECDSA P-256 certificate"
echo "date:     $(date -u +%Y-%m-%dT%H:%MZ)"
echo
printf '| %-40s | %-5s | %6s | %14s | %-26s | %12s | %11s | %11s | %6s | %-16s | %11s | %6s |\n' \
    target mode N "bytes per idle" "VmRSS MiB (AnonHuge)" "req/s unload" "req/s held" "held/unload" \
    errors "us/req" "2nd answer" other
printf '|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|\n' "------------------------------------------" \
    "-------" "-------:" "---------------:" "----------------------------" "-------------:" \
    "------------:" "------------:" "-------:" "------------------" "------------:" "-------:"
for c in $CASES; do
    target=${c%%:*} mode=${c##*:}
    k="$target-$mode"
    printf '| %-40s | %-5s | %6s | %14s | %-26s | %11.0f%-1s | %10.0f%-1s | %9s %% | %6s | %-16s | %11s | %6s |\n' \
        "$(label_of "$target")" "$mode" "${C_HELD[$c]}" "${C_BYTES[$c]}" \
        "$(mib "${C_BEFORE[$c]}") -> $(mib "${C_AFTER[$c]}") ($(mib "${C_THP[$c]}"))" \
        "${R_RPS[$k-unloaded]}" "$(mark_of "$k-unloaded")" "${R_RPS[$k-held]}" "$(mark_of "$k-held")" \
        "$(ratio_of "$k")" "$((R_N2XX[$k-unloaded] + R_SOCK[$k-unloaded] + R_N2XX[$k-held] + R_SOCK[$k-held]))" \
        "${R_US[$k-unloaded]} -> ${R_US[$k-held]}" "${C_2XX[$c]}/${C_HELD[$c]}" \
        "${R_OTHER[$k-held]}%"
done
echo
echo "bytes per idle: (VmRSS held - VmRSS before the crowd) / connections held, of the serving process (nginx: its worker);"
echo "VmRSS MiB: before the crowd -> held (AnonHugePages held); us/req: the target CPU's busy time per request, unloaded -> held;"
echo "2nd answer: idle connections answering a second request 2xx after the hold / held."
echo

# verdicts TITLE YES NO: starts a table of verdicts (rows from verdict), YES / NO its words.
verdicts() {
    VERDICT_YES=$2 VERDICT_NO=$3
    printf '| %-72s | %-30s | %-18s | %-7s |\n' "$1" "measured" "required" "result"
    printf '|%s|%s|%s|%s|\n' "--------------------------------------------------------------------------" \
        "--------------------------------" "--------------------" "---------"
}
# verdict WHAT MEASURED REQUIRED CONDITION: one row; a false CONDITION (eval'd) sets MISSED=1.
verdict() {
    local r=$VERDICT_YES
    if ! eval "$4"; then r=$VERDICT_NO MISSED=1; fi
    printf '| %-72s | %-30s | %-18s | %-7s |\n' "$1" "$2" "$3" "$r"
}
MISSED=0
verdicts check pass FAIL
check() { verdict "$@"; }
for c in $CASES; do
    target=${c%%:*} mode=${c##*:}
    k="$target-$mode"
    check "$k: idle connections held (one answered request each)" "${C_HELD[$c]} / $N" "all" "((C_HELD[\$c] == N))"
    check "$k: established on the server's port while held" "${C_EST[$c]}" ">= ${C_HELD[$c]}" "((C_EST[\$c] >= C_HELD[\$c]))"
    check "$k: closed by the server / talked on while held" "${C_CLOSED[$c]} / ${C_UNEXP[$c]}" "0 / 0" "((C_CLOSED[\$c] + C_UNEXP[\$c] == 0))"
    check "$k: answering a second request after the hold" "${C_2XX[$c]} / ${C_HELD[$c]}" "all" "((C_2XX[\$c] == C_HELD[\$c]))"
    check "$k: wrk errors (non-2xx + socket), unloaded and held" \
        "$((R_N2XX[$k-unloaded] + R_SOCK[$k-unloaded] + R_N2XX[$k-held] + R_SOCK[$k-held]))" "0" \
        "((R_N2XX[\$k-unloaded] + R_SOCK[\$k-unloaded] + R_N2XX[\$k-held] + R_SOCK[\$k-held] == 0))"
done
FAILED=$MISSED # the checks fail the run; a missed target does not
echo

verdicts target met "NOT met"
goal() { verdict "$@"; }
if [[ -n "${C_BYTES[sessiongate:plain]:-}" ]]; then
    goal "sessiongate plain: bytes per idle connection" "${C_BYTES[sessiongate:plain]} B" "<= $PLAIN_MAX_BYTES B" \
        "((C_BYTES[sessiongate:plain] <= PLAIN_MAX_BYTES))"
fi
if [[ -n "${C_BYTES[sessiongate:tls]:-}" && -n "${C_BYTES[nginx:tls]:-}" ]]; then
    goal "sessiongate TLS: bytes per idle connection, against nginx TLS" \
        "${C_BYTES[sessiongate:tls]} B vs ${C_BYTES[nginx:tls]} B" "<= nginx" "((C_BYTES[sessiongate:tls] <= C_BYTES[nginx:tls]))"
fi
for mode in plain tls; do
    [[ -n "${R_RPS[sessiongate-$mode-held]:-}" ]] || continue
    goal "sessiongate $mode: live req/s with $N idle held / unloaded" "$(ratio_of "sessiongate-$mode") %" \
        ">= $MIN_RATIO %" "! num_gt $MIN_RATIO $(ratio_of "sessiongate-$mode")"
done
echo
echo "raw output: $RUN/ (wrk-*.txt, crowd-*.out/.err, configurations and logs)"
if ((NOISY)); then
    echo
    echo "WARNING: other programs used more than $OTHER_MAX% of a core in the wrk runs marked *,"
    echo "         in all $TRIES tries; rerun on a quiet machine before drawing conclusions."
fi
if ((FAILED)); then
    echo
    echo "FAILED: at least one check above did not pass."
    exit 1
fi
