#!/usr/bin/env bash
# perf/tls.sh — sessiongate terminating TLS, compared in the same run with nginx doing the same
# job (TLS termination + keep-alive reverse proxy) in front of the same backend.
#
# Two measurements per target, interleaved over ROUNDS rounds:
#   handshakes  full TLS handshakes per second: PARALLEL `openssl s_time -new` clients (a
#               new session for every connection, so never a resumption), each connection
#               one `GET /` answered by the backend through the proxy, then closed.
#               (wrk with `Connection: close` is not used here: it reuses its SSL object
#               with SSL_clear, which resumes the session, so it would time resumptions.)
#   keepalive   HTTPS requests per second over kept-alive connections:
#               `wrk -t1 -c64 -d${DURATION}s --latency`.
# Both also report the proxy's CPU time per handshake / per request (`us/handshake`,
# `us/req`, from /proc/PID/stat of the proxy process and its children) and the busy share
# of its core (`hs cpu%`, `ka cpu%`): when that share is well below 100 % the load side
# (one core for the clients and the backend) is the bottleneck, the rates measure the
# clients, and only the CPU time per operation tells the proxies apart.
#
# Same certificate (ECDSA P-256, made here with openssl), same protocol, cipher suite and
# key-exchange group on both sides, forced on the client through an OpenSSL configuration
# (OPENSSL_CONF) that wrk and s_time both read, and on nginx in its own configuration:
#   TLS 1.3: TLS_AES_128_GCM_SHA256, group X25519      (PROTO=1.3, the default)
#   TLS 1.2: ECDHE-ECDSA-AES128-GCM-SHA256, X25519      (PROTO=1.2)
# (the client lists P-256 after X25519: TLS 1.2 clients check the certificate's curve
# against that list; the key exchange still uses X25519.)
# sessiongate (rustls, ring) offers its defaults; the client's pinning decides. Before the
# measurement, one connection to each target prints the negotiated protocol and cipher.
#
# Layout (2-core machine): the proxy under test on CPU 0 (PROXY_CPU), load generators and
# the backend (nginx, `return 200 "hello\n"`) on CPU 1 (LOAD_CPUS). One worker each.
#
# Environment:
#   ROUNDS=3 DURATION=10 PARALLEL=4 PROTO=1.3 PROXY_CPU=0 LOAD_CPUS=1
#   SKIP_BUILD=1 / SESSIONGATE_BIN=path   use an existing binary
#   TARGETS="sessiongate nginx"
#
# Needs nginx, wrk, openssl and curl; installs them with apt-get when missing (root).
# Everything started here is stopped on exit (trap). Files go to perf/.run-tls/ (git-ignored).
# `other%` is CPU time of programs outside the benchmark in % of one core (maximum over the
# rounds); above a few % the run is void (a warning is printed).
set -euo pipefail

# shellcheck source=perf/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
RUN="$ROOT/perf/.run-tls"

ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-10}"
PARALLEL="${PARALLEL:-4}"
PROTO="${PROTO:-1.3}"
PROXY_CPU="${PROXY_CPU:-0}"
LOAD_CPUS="${LOAD_CPUS:-1}"
TARGETS="${TARGETS:-sessiongate nginx}"

PERF_TAG=perf-tls

[[ "$PROTO" == 1.[23] ]] || die "PROTO must be 1.3 or 1.2"

# --- tools, CPU layout, build, processes --------------------------------------------------
need_tools nginx wrk openssl curl
NGINX="$(tool_path nginx)"
setup_pinning || log "warning: $NCPU CPU(s) or no taskset: no pinning, numbers are indicative only"
build_gateway "$TARGETS"
init_run

# --- certificate and client TLS settings (OPENSSL_CONF) -----------------------------------
tls_setup "$RUN" "$PROTO"

free_port BACKEND_PORT SG_PORT NGINX_PORT

# nginx as TLS-terminating proxy: same certificate, protocol, suite and group; session
# tickets and cache at their defaults (s_time -new never resumes anyway).
nginx_proxy_conf "$RUN/nginx" "127.0.0.1:$NGINX_PORT ssl reuseport backlog=4096" "$(nginx_tls_lines "$RUN")"

gateway_conf "$RUN/sessiongate.yml" "$BACKEND_PORT" <<EOF
server:
  address: 127.0.0.1
  port: $SG_PORT
$(gateway_tls_yaml "$RUN")
sessiongate: {workers: 1, access-log: false}
EOF

start_backend 4096

declare -A PORT_OF=([sessiongate]=$SG_PORT [nginx]=$NGINX_PORT)
declare -A PID_OF
for target in $TARGETS; do
    case "$target" in
    sessiongate)
        start_gateway sessiongate "$RUN/sessiongate.yml"
        ;;
    nginx)
        start_nginx nginx "$RUN/nginx"
        ;;
    *) die "unknown target '$target' (known: sessiongate nginx)" ;;
    esac
    PID_OF[$target]=${PIDS[-1]}
    wait_hello "$target" "https://127.0.0.1:${PORT_OF[$target]}/" "${PIDS[-1]}"
    # What a pinned client negotiates with this target.
    negotiated="$(openssl s_client -connect "127.0.0.1:${PORT_OF[$target]}" -servername localhost \
        </dev/null 2>/dev/null | awk '/^New, / { print $2, $NF } /Server Temp Key/ { sub(/.*Key: /, ""); print }' | tr '\n' ' ')"
    log "$target on :${PORT_OF[$target]} negotiates: $negotiated"
    echo "$negotiated" >"$RUN/$target.negotiated"
done

declare -A TREE_OF
EXCLUDE="$$ $(tree_of "$BACKEND_PID")"
for target in $TARGETS; do
    TREE_OF[$target]="$(tree_of "${PID_OF[$target]}")"
    EXCLUDE+=" ${TREE_OF[$target]}"
done
# other% (of one core over DURATION) between two others_snap outputs. The measurements run
# in a subshell (me) that runs and reaps the load generators: others_snap leaves it out.
other_pct() {
    awk -v t="$(others_ticks "$1" "$2")" -v hz="$CLK_TCK" -v d="$DURATION" \
        'BEGIN { printf "%.1f", t / hz / d * 100 }'
}

# handshakes TARGET ROUND -> "conns_per_s us_per_conn other% proxy_cpu%"
handshakes() {
    local target=$1 round=$2 port=${PORT_OF[$1]} i t0 t1 o0 o1 total=0 n me=$BASHPID
    # shellcheck disable=SC2086 # pid lists
    t0="$(proc_ticks ${TREE_OF[$target]})"
    o0="$(others_snap "$me")"
    for i in $(seq "$PARALLEL"); do
        "${pin_load[@]}" openssl s_time -connect "127.0.0.1:$port" -new -www / \
            -time "$DURATION" >"$RUN/s_time-$target-$round-$i.txt" 2>&1 &
    done
    wait # the s_time clients: this runs in a subshell whose only children they are
    o1="$(others_snap "$me")"
    # shellcheck disable=SC2086 # pid lists
    t1="$(proc_ticks ${TREE_OF[$target]})"
    for i in $(seq "$PARALLEL"); do
        n="$(awk '/connections in [0-9.]+ real seconds/ { print $1; exit }' "$RUN/s_time-$target-$round-$i.txt")"
        [[ -n "$n" ]] || die "s_time gave no count; see $RUN/s_time-$target-$round-$i.txt"
        total=$((total + n))
    done
    awk -v n="$total" -v d="$DURATION" -v ticks="$((t1 - t0))" -v hz="$CLK_TCK" \
        -v o="$(other_pct "$o0" "$o1")" \
        'BEGIN { printf "%.0f %.1f %s %.0f\n", n / d, (n > 0 ? ticks / hz * 1e6 / n : 0), o, ticks / hz / d * 100 }'
}

# keepalive TARGET ROUND -> "req_per_s p99_ms us_per_req errors other% proxy_cpu%"
keepalive() {
    local target=$1 round=$2 port=${PORT_OF[$1]} t0 t1 o0 o1 out me=$BASHPID
    out="$RUN/wrk-$target-$round.txt"
    # shellcheck disable=SC2086 # pid lists
    t0="$(proc_ticks ${TREE_OF[$target]})"
    o0="$(others_snap "$me")"
    "${pin_load[@]}" wrk -t1 -c64 -d"${DURATION}s" --latency "https://127.0.0.1:$port/" >"$out" 2>&1
    o1="$(others_snap "$me")"
    # shellcheck disable=SC2086 # pid lists
    t1="$(proc_ticks ${TREE_OF[$target]})"
    awk -v ticks="$((t1 - t0))" -v hz="$CLK_TCK" -v o="$(other_pct "$o0" "$o1")" -v d="$DURATION" '
        /^Requests\/sec:/ { rps = $2 }
        /requests in/ { reqs = $1 }
        /^ +99%/ { p99 = $2 }
        /Non-2xx or 3xx responses:/ { err += $NF }
        /Socket errors:/ { for (i = 3; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) err += $i + 0 }
        END {
            v = p99 + 0
            if (p99 ~ /us$/) v = v / 1000; else if (p99 ~ /ms$/) v = v; else if (p99 ~ /s$/) v = v * 1000
            printf "%.0f %.2f %.1f %d %s %.0f\n", rps, v, (reqs > 0 ? ticks / hz * 1e6 / reqs : 0), err, o, ticks / hz / d * 100
        }' "$out"
}

declare -A HS_RATE HS_US HS_CPU KA_RATE KA_P99 KA_US KA_CPU KA_ERR OTHER_MAX
NOISY=0
note_other() {
    local o=$1 target=$2
    if num_gt "$o" 5; then NOISY=1; fi
    OTHER_MAX[$target]="$(awk -v a="${OTHER_MAX[$target]:-0}" -v b="$o" 'BEGIN { print (b > a ? b : a) }')"
}
for target in $TARGETS; do
    HS_RATE[$target]=""; HS_US[$target]=""; HS_CPU[$target]=""
    KA_RATE[$target]=""; KA_P99[$target]=""; KA_US[$target]=""; KA_CPU[$target]=""; KA_ERR[$target]=0
done
log "warm-up"
for target in $TARGETS; do
    "${pin_load[@]}" wrk -t1 -c16 -d2s "https://127.0.0.1:${PORT_OF[$target]}/" >/dev/null 2>&1 || true
done
for round in $(seq "$ROUNDS"); do
    for target in $TARGETS; do
        read -r rate us other pcpu < <(handshakes "$target" "$round")
        HS_RATE[$target]+="$rate "
        HS_US[$target]+="$us "
        HS_CPU[$target]+="$pcpu "
        note_other "$other" "$target"
        log "round $round $target handshakes: $rate/s, $us us/handshake, proxy cpu $pcpu%, other $other%"
        read -r rps p99 us err other pcpu < <(keepalive "$target" "$round")
        KA_RATE[$target]+="$rps "
        KA_P99[$target]+="$p99 "
        KA_US[$target]+="$us "
        KA_CPU[$target]+="$pcpu "
        KA_ERR[$target]=$((KA_ERR[$target] + err))
        note_other "$other" "$target"
        log "round $round $target keep-alive: $rps req/s, p99 $p99 ms, $us us/req, proxy cpu $pcpu%, errors $err, other $other%"
    done
done

printf '\nTLS %s (%s), %s rounds x %ss, %s s_time clients, wrk -t1 -c64\n' "$PROTO" "$TLS_SUITE" "$ROUNDS" "$DURATION" "$PARALLEL"
printf '| %-11s | %12s | %12s | %8s | %10s | %8s | %9s | %8s | %6s | %6s | %-18s | %-18s |\n' \
    target "handshakes/s" "us/handshake" "hs cpu%" "req/s" "p99 ms" "us/req" "ka cpu%" errors "other%" "handshakes/s, rounds" "req/s, rounds"
printf '|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|\n' ------------- -------------: -------------: ---------: -----------: ---------: ----------: ---------: -------: -------: -------------------- --------------------
for target in $TARGETS; do
    printf '| %-11s | %12s | %12s | %8s | %10s | %8s | %9s | %8s | %6s | %6s | %-18s | %-18s |\n' "$target" \
        "$(median "${HS_RATE[$target]}")" "$(median "${HS_US[$target]}")" "$(median "${HS_CPU[$target]}")" \
        "$(median "${KA_RATE[$target]}")" "$(median "${KA_P99[$target]}")" "$(median "${KA_US[$target]}")" \
        "$(median "${KA_CPU[$target]}")" "${KA_ERR[$target]}" "${OTHER_MAX[$target]}" \
        "${HS_RATE[$target]% }" "${KA_RATE[$target]% }"
done
if ((NOISY)); then
    log "warning: programs outside the benchmark used more than 5% of a core in some round (other%: the maximum over the rounds); repeat on a quiet machine"
fi
if [[ " $TARGETS " == *" sessiongate "* && " $TARGETS " == *" nginx "* ]]; then
    awk -v a="$(median "${HS_RATE[sessiongate]}")" -v b="$(median "${HS_RATE[nginx]}")" \
        -v c="$(median "${HS_US[sessiongate]}")" -v d="$(median "${HS_US[nginx]}")" \
        -v e="$(median "${KA_RATE[sessiongate]}")" -v f="$(median "${KA_RATE[nginx]}")" \
        -v g="$(median "${KA_US[sessiongate]}")" -v h="$(median "${KA_US[nginx]}")" \
        'BEGIN { printf "\nsessiongate/nginx: handshakes/s %.2f, us/handshake %.2f; keep-alive req/s %.2f, us/req %.2f\n", a / b, c / d, e / f, g / h }'
fi
printf 'negotiated:'
for target in $TARGETS; do printf ' %s: %s;' "$target" "$(cat "$RUN/$target.negotiated")"; done
printf '\nmachine: %s CPUs, %s, kernel %s; %s; %s; wrk %s\n' "$NCPU" \
    "$(cpu_model)" "$(uname -r)" \
    "$("$NGINX" -v 2>&1)" "$(openssl version)" "$(wrk -v 2>&1 | awk 'NR == 1 { print $2 }')"
