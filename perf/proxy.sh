#!/usr/bin/env bash
# perf/proxy.sh — sessiongate as a plain reverse proxy, compared in the same run with nginx
# and haproxy doing the same job in front of the same backend.
#
# What runs (all on 127.0.0.1, every port picked free at start, files under perf/.run/):
#   backend     nginx, 1 worker, `return 200 "hello\n"`, keep-alive on, no access log
#   sessiongate 1 worker, one route /** -> backend, access log off
#   nginx       1 worker, upstream with `keepalive 64`, proxy_http_version 1.1,
#               `proxy_set_header Connection ""`, no access log
#   haproxy     `nbthread 1`, mode http, `http-reuse always`
# Each proxy keeps client and upstream connections open for the whole run (no
# per-N-requests close), so all three are measured in the same steady state.
#
# How the cores are used (2-core machine; fairest layout found):
#   CPU 0: the proxy under test (sessiongate, nginx and haproxy are all pinned here; only
#          the one being measured has work at any moment)
#   CPU 1: wrk and the backend
# Each proxy thus gets exactly one core to itself, and the load generator plus backend
# (identical for all three) share the other one. On a machine with one CPU nothing is
# pinned and the numbers mean little; with more than two, override PROXY_CPU / LOAD_CPUS.
#
# Load: for ROUNDS rounds, `wrk -t1 -c64 -d${DURATION}s --latency` against each proxy in
# turn (interleaved, so drift hits all alike), after one short warm-up per proxy. Prints
# the median req/s and median p99 per proxy and the ratios sessiongate/nginx and
# sessiongate/haproxy (>1 on req/s means sessiongate is faster; <1 on p99 means lower
# latency). It also reports the busy share of the proxy CPU and of the load CPU during each
# run, and from it the proxy's CPU time per request (us/req, lower is better): with both
# cores near saturation, req/s alone can hide a more efficient proxy, us/req does not.
# Any non-2xx response or socket error is counted and shown: a proxy that answers 502
# quickly must not look fast.
#
# Environment:
#   ROUNDS=3 DURATION=10 (seconds) WARMUP=2 (seconds, 0 = none) CONNECTIONS=64 THREADS=1
#   PROXY_CPU=0 LOAD_CPUS=1    taskset CPU lists
#   SKIP_BUILD=1               use the existing target/release/sessiongate
#   SESSIONGATE_BIN=path       binary to test (implies SKIP_BUILD=1)
#   TARGETS="sessiongate nginx haproxy"   subset / order of proxies to measure
#   OTHER_MAX=5                a round in which other programs used more than this % of a
#                              core is marked noisy and left out of the medians
#
# Needs nginx, haproxy, wrk and curl; installs them with apt-get when missing (root).
# Everything started here is stopped on exit (trap).
set -euo pipefail

# shellcheck source=perf/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
RUN="$ROOT/perf/.run"

ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-10}"
WARMUP="${WARMUP:-2}"
CONNECTIONS="${CONNECTIONS:-64}"
THREADS="${THREADS:-1}"
PROXY_CPU="${PROXY_CPU:-0}"
LOAD_CPUS="${LOAD_CPUS:-1}"
TARGETS="${TARGETS:-sessiongate nginx haproxy}"
OTHER_MAX="${OTHER_MAX:-5}"
PERF_TAG=perf

# --- tools, CPU layout, build --------------------------------------------------------------
need_tools nginx haproxy wrk curl
NGINX="$(tool_path nginx)"
HAPROXY="$(tool_path haproxy)"
[[ -x "$NGINX" && -x "$HAPROXY" ]] || die "nginx or haproxy not found after install"

if setup_pinning; then
    layout="proxy on CPU $PROXY_CPU; wrk + backend on CPU $LOAD_CPUS"
else
    layout="no pinning ($NCPU CPU(s) or no taskset): numbers are indicative only"
    log "warning: $layout"
fi
build_gateway "$TARGETS"

# --- processes ---------------------------------------------------------------------------
init_run
free_port BACKEND_PORT SG_PORT NGINX_PORT HAPROXY_PORT

# sessiongate (the backend's configuration is written by start_backend)
gateway_conf "$RUN/sessiongate.yml" "$BACKEND_PORT" <<EOF
server: {address: 127.0.0.1, port: $SG_PORT}
sessiongate: {workers: 1, access-log: false}
EOF

# nginx as reverse proxy
nginx_proxy_conf "$RUN/nginx" "127.0.0.1:$NGINX_PORT reuseport backlog=4096"

# haproxy
cat >"$RUN/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 4096
    pidfile $RUN/haproxy.pid

defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout http-keep-alive 300s

frontend fe
    bind 127.0.0.1:$HAPROXY_PORT
    default_backend be

backend be
    server backend 127.0.0.1:$BACKEND_PORT maxconn 1000
EOF

log "starting backend (nginx) on :$BACKEND_PORT"
start_backend 4096

declare -A PORT_OF=([sessiongate]=$SG_PORT [nginx]=$NGINX_PORT [haproxy]=$HAPROXY_PORT)
declare -A PID_OF

for target in $TARGETS; do
    case "$target" in
    sessiongate)
        log "starting sessiongate on :$SG_PORT"
        start_gateway sessiongate "$RUN/sessiongate.yml"
        ;;
    nginx)
        log "starting nginx proxy on :$NGINX_PORT"
        start_nginx nginx "$RUN/nginx"
        ;;
    haproxy)
        log "starting haproxy on :$HAPROXY_PORT"
        "$HAPROXY" -c -q -f "$RUN/haproxy.cfg" >"$RUN/haproxy.check" 2>&1 \
            || die "haproxy -c refused the config: $(cat "$RUN/haproxy.check")"
        "${pin_proxy[@]}" "$HAPROXY" -db -f "$RUN/haproxy.cfg" \
            >"$RUN/haproxy.out" 2>"$RUN/haproxy.err" &
        PIDS+=($!)
        ;;
    *) die "unknown target '$target' (known: sessiongate nginx haproxy)" ;;
    esac
    PID_OF[$target]=${PIDS[-1]}
    wait_hello "$target" "http://127.0.0.1:${PORT_OF[$target]}/" "${PIDS[-1]}"
done

# --- measure (CPU accounting from /proc, in clock ticks) ------------------------------------
# Per round the script records:
#   proxy cpu   busy share of the proxy's CPU (PROXY_CPU), everything on it included
#   load cpu    busy share of the load CPU (LOAD_CPUS, when it is a single CPU)
#   us/req      proxy CPU time per request: proxy CPU busy time / requests. Independent of
#               which side was the bottleneck, so the fairest single figure on 2 cores.
#   other       CPU time of all other programs (user processes, not kernel threads), in %
#               of one core: what competed with the benchmark. Above OTHER_MAX the round
#               is marked noisy (*) and left out of the medians, unless no round was clean.
declare -A TREE_OF
TREE_OF[backend]="$(tree_of "$BACKEND_PID")"
EXCLUDE="$$ ${TREE_OF[backend]}"
for target in $TARGETS; do
    TREE_OF[$target]="$(tree_of "${PID_OF[$target]}")"
    EXCLUDE+=" ${TREE_OF[$target]}"
done

# every figure per target, all rounds and clean rounds only (C*: other <= OTHER_MAX)
declare -A RPS P99 ERRS PCPU LCPU USREQ OTHER ROUNDLIST
declare -A CRPS CP99 CPCPU CLCPU CUSREQ NCLEAN
if [[ "$WARMUP" != 0 ]]; then
    for target in $TARGETS; do
        log "warm-up $target ${WARMUP}s"
        run_wrk "$WARMUP" "$RUN/wrk-$target-warmup.txt" "http://127.0.0.1:${PORT_OF[$target]}/"
    done
fi

NOISY=0
for round in $(seq "$ROUNDS"); do
    for target in $TARGETS; do
        wrk_measured "$RUN/wrk-$target-$round.txt" "${TREE_OF[$target]}" \
            "http://127.0.0.1:${PORT_OF[$target]}/"
        rps=$W_RPS p99=$W_P99 other=$W_OTHER lcpu=$W_LCPU
        # non-2xx/3xx responses plus socket errors of every kind
        errs=$((W_N2XX + W_SOCK))
        pcpu=$W_PCPU
        # not pinned: the proxy's own time, in % of one core
        [[ -n "$PROXY_CPU_ONE" ]] || pcpu="$(pct_of_core "$W_TICKS" "$W_ELAPSED")"
        usreq="$(us_per_req "$pcpu" "$W_ELAPSED" "$W_REQ")"

        RPS[$target]+="$rps "
        P99[$target]+="$p99 "
        ERRS[$target]=$((${ERRS[$target]:-0} + errs))
        PCPU[$target]+="$pcpu "
        LCPU[$target]+="$lcpu "
        USREQ[$target]+="$usreq "
        OTHER[$target]+="$other "
        log "round $round/$ROUNDS $target: $rps req/s, p99 ${p99} ms, errors $errs," \
            "proxy cpu $pcpu% ($usreq us/req), load cpu $lcpu%, other $other%, steal $W_STEAL%"
        if num_gt "$other" "$OTHER_MAX"; then
            NOISY=1
            ROUNDLIST[$target]+="$(printf '%.0f*' "$rps") "
            log "warning: other programs used $other% of a core during this round"
        else
            ROUNDLIST[$target]+="$(printf '%.0f' "$rps") "
            NCLEAN[$target]=$((${NCLEAN[$target]:-0} + 1))
            CRPS[$target]+="$rps "
            CP99[$target]+="$p99 "
            CPCPU[$target]+="$pcpu "
            CLCPU[$target]+="$lcpu "
            CUSREQ[$target]+="$usreq "
        fi
    done
done

# Every proxy still alive and still answering after the load?
for target in $TARGETS; do
    body="$(curl -fsS --max-time 2 "http://127.0.0.1:${PORT_OF[$target]}/" 2>/dev/null || true)"
    [[ "$body" == hello ]] || log "warning: $target no longer answers hello after the load"
done

# --- report ------------------------------------------------------------------------------
sg_rev="$(git_rev)"
echo
echo "command:  ROUNDS=$ROUNDS DURATION=$DURATION bash perf/proxy.sh   (wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s --latency, medians over the clean rounds)"
echo "machine:  $NCPU CPUs, $(cpu_model), kernel $(uname -r)"
echo "layout:   $layout"
echo "versions: sessiongate $sg_rev; $("$NGINX" -v 2>&1 | sed 's/.*version: //'); $("$HAPROXY" -v 2>&1 | awk 'NR == 1 {print $1, $2, $3}'); $(wrk -v 2>&1 | awk 'NR == 1 {print $1, $2}')"
echo "date:     $(date -u +%Y-%m-%dT%H:%MZ)"
echo
printf '| %-11s | %9s | %8s | %6s | %9s | %12s | %8s | %6s | %6s | %s |\n' "target" \
    "req/s" "p99 ms" "errors" "proxy cpu" "proxy us/req" "load cpu" "other" "clean" \
    "req/s per round"
printf '|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|\n' "-------------" "----------:" "---------:" \
    "-------:" "----------:" "-------------:" "---------:" "-------:" "-------:" \
    "-----------------"
declare -A MED_RPS MED_P99 MED_US
for target in $TARGETS; do
    # medians over the clean rounds; over all rounds when none was clean
    if ((${NCLEAN[$target]:-0} > 0)); then
        rps_l="${CRPS[$target]}" p99_l="${CP99[$target]}" us_l="${CUSREQ[$target]}"
        pcpu_l="${CPCPU[$target]}" lcpu_l="${CLCPU[$target]}"
    else
        rps_l="${RPS[$target]}" p99_l="${P99[$target]}" us_l="${USREQ[$target]}"
        pcpu_l="${PCPU[$target]}" lcpu_l="${LCPU[$target]}"
    fi
    MED_RPS[$target]="$(median "$rps_l" %.3f)"
    MED_P99[$target]="$(median "$p99_l" %.3f)"
    MED_US[$target]="$(median "$us_l" %.3f)"
    lmed="-"
    [[ -n "$LOAD_CPU_ONE" ]] && lmed="$(printf '%.0f%%' "$(median "$lcpu_l" %.3f)")"
    printf '| %-11s | %9.0f | %8.3f | %6d | %8.0f%% | %12.2f | %8s | %5.0f%% | %6s | %s |\n' \
        "$target" "${MED_RPS[$target]}" "${MED_P99[$target]}" "${ERRS[$target]}" \
        "$(median "$pcpu_l" %.3f)" "${MED_US[$target]}" "$lmed" \
        "$(median "${OTHER[$target]}" %.3f)" "${NCLEAN[$target]:-0}/$ROUNDS" \
        "${ROUNDLIST[$target]% }"
done
echo
if [[ -n "${MED_RPS[sessiongate]:-}" ]]; then
    for other in nginx haproxy; do
        [[ -n "${MED_RPS[$other]:-}" ]] || continue
        awk -v a="${MED_RPS[sessiongate]}" -v b="${MED_RPS[$other]}" \
            -v c="${MED_P99[sessiongate]}" -v d="${MED_P99[$other]}" \
            -v e="${MED_US[sessiongate]}" -v f="${MED_US[$other]}" -v o="$other" 'BEGIN {
                printf "sessiongate/%-8s req/s %.2f   p99 %.2f   proxy us/req %.2f\n", o,
                    (b > 0 ? a / b : 0), (d > 0 ? c / d : 0), (f > 0 ? e / f : 0)
            }'
    done
fi
if ((NOISY)); then
    echo
    echo "WARNING: other programs used more than $OTHER_MAX% of a core in the rounds marked *"
    echo "         ('other' column). Medians are over the clean rounds only (all rounds for a"
    echo "         target with none clean); rerun on a quiet machine before drawing conclusions."
fi
echo
echo "raw wrk output: $RUN/wrk-*.txt"
