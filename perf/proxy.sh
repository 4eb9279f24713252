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

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
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

log() { printf '[perf] %s\n' "$*" >&2; }
die() { printf '[perf] error: %s\n' "$*" >&2; exit 1; }

# --- tools -------------------------------------------------------------------------------
missing=()
for tool in nginx haproxy wrk curl; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
    log "missing: ${missing[*]}; installing nginx haproxy wrk curl with apt-get"
    SUDO=""
    if [[ $EUID -ne 0 ]]; then
        command -v sudo >/dev/null 2>&1 || die "not root and no sudo: install nginx haproxy wrk curl"
        SUDO="sudo"
    fi
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y nginx haproxy wrk curl
fi
# Debian installs the service binaries under /usr/sbin, which a non-root PATH may lack.
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
HAPROXY="$(command -v haproxy || echo /usr/sbin/haproxy)"
[[ -x "$NGINX" && -x "$HAPROXY" ]] || die "nginx or haproxy not found after install"

# --- CPU layout ----------------------------------------------------------------------------
NCPU="$(nproc)"
if [[ "$NCPU" -ge 2 ]] && command -v taskset >/dev/null 2>&1; then
    pin_proxy=(taskset -c "$PROXY_CPU")
    pin_load=(taskset -c "$LOAD_CPUS")
    layout="proxy on CPU $PROXY_CPU; wrk + backend on CPU $LOAD_CPUS"
else
    pin_proxy=()
    pin_load=()
    layout="no pinning ($NCPU CPU(s) or no taskset): numbers are indicative only"
    log "warning: $layout"
fi

# --- build -------------------------------------------------------------------------------
if [[ -n "${SESSIONGATE_BIN:-}" ]]; then
    SG_BIN="$SESSIONGATE_BIN"
else
    SG_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/sessiongate"
    if [[ "${SKIP_BUILD:-0}" != 1 && " $TARGETS " == *" sessiongate "* ]]; then
        log "cargo build --release"
        (cd "$ROOT" && cargo build --release)
    fi
fi
if [[ " $TARGETS " == *" sessiongate "* ]]; then
    [[ -x "$SG_BIN" ]] || die "no sessiongate binary at $SG_BIN"
fi

# --- processes and cleanup ---------------------------------------------------------------
rm -rf "$RUN"
mkdir -p "$RUN"
PIDS=()

cleanup() {
    local rc=$?
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        # give each a moment to drain, then make sure it is gone
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A free TCP port on 127.0.0.1: random candidates below the kernel's ephemeral range (so
# no client socket of this or an earlier run can be holding it), refused if any socket uses
# it or something answers there, or if we already handed it out in this run.
EPHEMERAL_LOW="$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)"
((EPHEMERAL_LOW > 12000)) || EPHEMERAL_LOW=61000
USED_PORTS=" "
port_in_use() {
    local p=$1
    if command -v ss >/dev/null 2>&1 && [[ -n "$(ss -Htan "sport = :$p" 2>/dev/null)" ]]; then
        return 0
    fi
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null
}
free_port() {
    local p
    for _ in $(seq 200); do
        p=$((10000 + RANDOM % (EPHEMERAL_LOW - 10000)))
        [[ "$USED_PORTS" == *" $p "* ]] && continue
        if ! port_in_use "$p"; then
            USED_PORTS+="$p "
            echo "$p"
            return 0
        fi
    done
    die "no free port found"
}

# Wait until http://127.0.0.1:PORT/ answers 200 "hello" (proves the whole chain works).
wait_hello() {
    local name=$1 port=$2 pid=$3 body
    for _ in $(seq 300); do
        kill -0 "$pid" 2>/dev/null || die "$name exited early; see $RUN/$name.*"
        if body="$(curl -fsS --max-time 2 "http://127.0.0.1:$port/" 2>/dev/null)" \
            && [[ "$body" == hello ]]; then
            return 0
        fi
        sleep 0.1
    done
    die "$name on port $port did not answer 200 hello within 30 s; see $RUN/$name.*"
}

BACKEND_PORT="$(free_port)"
SG_PORT="$(free_port)"
NGINX_PORT="$(free_port)"
HAPROXY_PORT="$(free_port)"

NGINX_USER=""
[[ $EUID -eq 0 ]] && NGINX_USER="user root;"

# nginx wants every temp path writable; keep them all under its own prefix.
nginx_common() {
    local dir=$1
    cat <<EOF
$NGINX_USER
daemon off;
master_process on;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; multi_accept on; }
EOF
}
nginx_http_common() {
    local dir=$1
    cat <<EOF
    access_log off;
    client_body_temp_path $dir/client_body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    keepalive_timeout 300s;
    keepalive_requests 100000000;
EOF
}

# (a) backend
mkdir -p "$RUN/backend"
{
    nginx_common "$RUN/backend"
    echo "http {"
    nginx_http_common "$RUN/backend"
    cat <<EOF
    server {
        listen 127.0.0.1:$BACKEND_PORT reuseport backlog=4096;
        location / {
            default_type text/plain;
            return 200 "hello\n";
        }
    }
}
EOF
} >"$RUN/backend/nginx.conf"

# (b) sessiongate
cat >"$RUN/sessiongate.yml" <<EOF
server: {address: 127.0.0.1, port: $SG_PORT}
spring:
  cloud:
    gateway:
      routes:
        - id: backend
          uri: http://127.0.0.1:$BACKEND_PORT
          predicates: [Path=/**]
sessiongate: {workers: 1, access-log: false}
logging: {level: {root: WARN}}
EOF

# (c) nginx as reverse proxy
mkdir -p "$RUN/nginx"
{
    nginx_common "$RUN/nginx"
    echo "http {"
    nginx_http_common "$RUN/nginx"
    cat <<EOF
    upstream backend {
        server 127.0.0.1:$BACKEND_PORT;
        keepalive 64;
        keepalive_requests 100000000;
        keepalive_timeout 300s;
    }
    server {
        listen 127.0.0.1:$NGINX_PORT reuseport backlog=4096;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
} >"$RUN/nginx/nginx.conf"

# (d) haproxy
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
"${pin_load[@]}" "$NGINX" -p "$RUN/backend" -c "$RUN/backend/nginx.conf" \
    >"$RUN/backend.out" 2>"$RUN/backend.err" &
PIDS+=($!)
BACKEND_PID=$!
wait_hello backend "$BACKEND_PORT" "$BACKEND_PID"

declare -A PORT_OF=([sessiongate]=$SG_PORT [nginx]=$NGINX_PORT [haproxy]=$HAPROXY_PORT)
declare -A PID_OF

for target in $TARGETS; do
    case "$target" in
    sessiongate)
        log "starting sessiongate on :$SG_PORT"
        "$SG_BIN" check --config "$RUN/sessiongate.yml" >"$RUN/sessiongate.check" 2>&1 \
            || die "sessiongate check refused the config: $(cat "$RUN/sessiongate.check")"
        "${pin_proxy[@]}" "$SG_BIN" run --config "$RUN/sessiongate.yml" \
            >"$RUN/sessiongate.out" 2>"$RUN/sessiongate.err" &
        PIDS+=($!)
        for _ in $(seq 300); do
            grep -q "sessiongate listening on http://" "$RUN/sessiongate.out" 2>/dev/null && break
            kill -0 "${PIDS[-1]}" 2>/dev/null \
                || die "sessiongate exited early: $(tail -n 20 "$RUN/sessiongate.err")"
            sleep 0.1
        done
        ;;
    nginx)
        log "starting nginx proxy on :$NGINX_PORT"
        "${pin_proxy[@]}" "$NGINX" -p "$RUN/nginx" -c "$RUN/nginx/nginx.conf" \
            >"$RUN/nginx.out" 2>"$RUN/nginx.err" &
        PIDS+=($!)
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
    wait_hello "$target" "${PORT_OF[$target]}" "${PIDS[-1]}"
done

# --- measure -----------------------------------------------------------------------------
# wrk latency figures come as 812.00us / 1.23ms / 1.02s; normalise to milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) n = n / 1000
        else if (v ~ /ms$/) n = n
        else if (v ~ /m$/) n = n * 60000
        else if (v ~ /s$/) n = n * 1000
        printf "%.3f", n
    }'
}

# --- CPU accounting (all from /proc, in clock ticks) ----------------------------------------
# Per round the script records:
#   proxy cpu   busy share of the proxy's CPU (PROXY_CPU), everything on it included
#   load cpu    busy share of the load CPU (LOAD_CPUS, when it is a single CPU)
#   us/req      proxy CPU time per request: proxy CPU busy time / requests. Independent of
#               which side was the bottleneck, so the fairest single figure on 2 cores.
#   other       CPU time of all other programs (user processes, not kernel threads), in %
#               of one core: what competed with the benchmark. Above OTHER_MAX the round
#               is marked noisy (*) and left out of the medians, unless no round was clean.
CLK_TCK="$(getconf CLK_TCK 2>/dev/null || echo 100)"

# "cpuN total idle+iowait" per CPU and "all total" for the machine
cpu_snap() {
    awk '/^cpu[0-9]+ / { t = 0; for (i = 2; i <= NF; i++) t += $i; print $1, t, $5 + $6 }
         /^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print "all", t, $9 }' /proc/stat
}
# snap_field SNAP NAME COLUMN (2 = total, 3 = idle, or steal for "all")
snap_field() {
    awk -v n="$2" -v c="$3" '$1 == n { print $c }' <<<"$1"
}
# busy% of cpuN between two snapshots
cpu_busy() {
    local cpu=$1 before=$2 after=$3 t0 t1 i0 i1
    t0="$(snap_field "$before" "cpu$cpu" 2)"
    t1="$(snap_field "$after" "cpu$cpu" 2)"
    i0="$(snap_field "$before" "cpu$cpu" 3)"
    i1="$(snap_field "$after" "cpu$cpu" 3)"
    awk -v dt="$((t1 - t0))" -v di="$((i1 - i0))" \
        'BEGIN { printf "%.1f", (dt > 0 ? 100 * (dt - di) / dt : 0) }'
}

# utime+stime of a process and its direct children (nginx master + worker)
children_of() {
    local f line rest fields
    for f in /proc/[0-9]*/stat; do
        { line="$(<"$f")"; } 2>/dev/null || continue
        rest="${line##*) }"
        read -r -a fields <<<"$rest"
        [[ "${fields[1]}" == "$1" ]] && { f="${f#/proc/}"; echo "${f%/stat}"; }
    done
    return 0
}
proc_ticks() {
    local pid line rest fields sum=0
    for pid in "$@"; do
        { line="$(<"/proc/$pid/stat")"; } 2>/dev/null || continue
        rest="${line##*) }"
        read -r -a fields <<<"$rest"
        sum=$((sum + fields[11] + fields[12]))
    done
    echo "$sum"
}
# "pid ticks" for every user process except ours (EXCLUDE) and kernel threads, ticks
# including reaped children, so a compiler that ran and exited during a round still counts
# (through its parent).
others_snap() {
    # processes come and go while cat reads: a vanished one is not an error
    { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v ex=" $EXCLUDE " '{
        pid = $1; sub(/^.*\) /, "")
        if (pid == 2 || $2 == 2 || index(ex, " " pid " ")) next
        print pid, $12 + $13 + $14 + $15
    }'
}
# ticks used by other programs between two others_snap outputs. A process that exited in
# between reappears, whole, in its parent's children time; take off what it had used
# before the first snapshot so that only the time inside the window counts.
others_ticks() {
    awk 'NR == FNR { t0[$1] = $2; next }
         { seen[$1] = 1; d += $2 - ($1 in t0 ? t0[$1] : 0) }
         END { for (p in t0) if (!(p in seen)) d -= t0[p]; print (d > 0 ? d : 0) }' \
        <(echo "$1") <(echo "$2")
}
declare -A TREE_OF
# shellcheck disable=SC2046 # word splitting of the pid list is intended
tree_of() { echo "$1" $(children_of "$1"); }
TREE_OF[backend]="$(tree_of "$BACKEND_PID")"
EXCLUDE="$$ ${TREE_OF[backend]}"
for target in $TARGETS; do
    TREE_OF[$target]="$(tree_of "${PID_OF[$target]}")"
    EXCLUDE+=" ${TREE_OF[$target]}"
done

# every figure per target, all rounds and clean rounds only (C*: other <= OTHER_MAX)
declare -A RPS P99 ERRS PCPU LCPU USREQ OTHER ROUNDLIST
declare -A CRPS CP99 CPCPU CLCPU CUSREQ NCLEAN
run_wrk() {
    local target=$1 secs=$2 out=$3
    "${pin_load[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${secs}s" --latency \
        "http://127.0.0.1:${PORT_OF[$target]}/" >"$out" 2>&1 || die "wrk failed: $(cat "$out")"
}
# CPU whose load is reported as "load cpu%": the single LOAD_CPUS entry, if it is one.
LOAD_CPU_ONE=""
[[ "$LOAD_CPUS" =~ ^[0-9]+$ ]] && LOAD_CPU_ONE="$LOAD_CPUS"
PROXY_CPU_ONE=""
[[ "$PROXY_CPU" =~ ^[0-9]+$ && ${#pin_proxy[@]} -gt 0 ]] && PROXY_CPU_ONE="$PROXY_CPU"

if [[ "$WARMUP" != 0 ]]; then
    for target in $TARGETS; do
        log "warm-up $target ${WARMUP}s"
        run_wrk "$target" "$WARMUP" "$RUN/wrk-$target-warmup.txt"
    done
fi

NOISY=0
for round in $(seq "$ROUNDS"); do
    for target in $TARGETS; do
        out="$RUN/wrk-$target-$round.txt"
        # shellcheck disable=SC2086 # pid lists
        {
            p0="$(proc_ticks ${TREE_OF[$target]})"
            o0="$(others_snap)"
            snap0="$(cpu_snap)"
            run_wrk "$target" "$DURATION" "$out"
            snap1="$(cpu_snap)"
            o1="$(others_snap)"
            p1="$(proc_ticks ${TREE_OF[$target]})"
        }
        rps="$(awk '/^Requests\/sec:/ {print $2}' "$out")"
        requests="$(awk '/requests in/ {print $1}' "$out")"
        p99raw="$(awk '$1 == "99%" {print $2}' "$out")"
        [[ -n "$rps" && -n "$requests" && -n "$p99raw" ]] || die "could not parse $out"
        p99="$(to_ms "$p99raw")"
        # non-2xx/3xx responses plus socket errors of every kind
        errs="$(awk '
            /Non-2xx or 3xx responses:/ { n += $NF }
            /Socket errors:/ { gsub(",", ""); n += $4 + $6 + $8 + $10 }
            END { print n + 0 }' "$out")"

        # ticks of one CPU that passed during the round
        elapsed=$(( ($(snap_field "$snap1" all 2) - $(snap_field "$snap0" all 2)) / NCPU ))
        other="$(awk -v o="$(others_ticks "$o0" "$o1")" -v e="$elapsed" \
            'BEGIN { v = (e > 0 ? 100 * o / e : 0); printf "%.1f", (v < 0 ? 0 : v) }')"
        if [[ -n "$PROXY_CPU_ONE" ]]; then
            pcpu="$(cpu_busy "$PROXY_CPU_ONE" "$snap0" "$snap1")"
        else
            # not pinned: the proxy's own time, in % of one core
            pcpu="$(awk -v p="$((p1 - p0))" -v e="$elapsed" \
                'BEGIN { printf "%.1f", (e > 0 ? 100 * p / e : 0) }')"
        fi
        lcpu="-"
        [[ -n "$LOAD_CPU_ONE" ]] && lcpu="$(cpu_busy "$LOAD_CPU_ONE" "$snap0" "$snap1")"
        # time the hypervisor gave to other guests, in % of one core (VMs only)
        steal="$(awk -v s="$(( $(snap_field "$snap1" all 3) - $(snap_field "$snap0" all 3) ))" \
            -v e="$elapsed" 'BEGIN { printf "%.1f", (e > 0 ? 100 * s / e : 0) }')"
        usreq="$(awk -v c="$pcpu" -v e="$elapsed" -v t="$CLK_TCK" -v n="$requests" \
            'BEGIN { printf "%.2f", (n > 0 ? (c / 100) * e / t * 1e6 / n : 0) }')"

        RPS[$target]+="$rps "
        P99[$target]+="$p99 "
        ERRS[$target]=$((${ERRS[$target]:-0} + errs))
        PCPU[$target]+="$pcpu "
        LCPU[$target]+="$lcpu "
        USREQ[$target]+="$usreq "
        OTHER[$target]+="$other "
        log "round $round/$ROUNDS $target: $rps req/s, p99 ${p99} ms, errors $errs," \
            "proxy cpu $pcpu% ($usreq us/req), load cpu $lcpu%, other $other%, steal $steal%"
        if awk -v o="$other" -v m="$OTHER_MAX" 'BEGIN { exit !(o > m) }'; then
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

median() {
    tr ' ' '\n' <<<"$1" | awk 'NF' | sort -g | awk '
        { v[NR] = $1 }
        END {
            if (NR == 0) { print "nan"; exit }
            if (NR % 2) m = v[(NR + 1) / 2]; else m = (v[NR / 2] + v[NR / 2 + 1]) / 2
            printf "%.3f", m
        }'
}

# --- report ------------------------------------------------------------------------------
sg_rev="$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo none)"
echo
echo "command:  ROUNDS=$ROUNDS DURATION=$DURATION bash perf/proxy.sh   (wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s --latency, medians over the clean rounds)"
echo "machine:  $NCPU CPUs, $(lscpu 2>/dev/null | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2; exit}'), kernel $(uname -r)"
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
    MED_RPS[$target]="$(median "$rps_l")"
    MED_P99[$target]="$(median "$p99_l")"
    MED_US[$target]="$(median "$us_l")"
    lmed="-"
    [[ -n "$LOAD_CPU_ONE" ]] && lmed="$(printf '%.0f%%' "$(median "$lcpu_l")")"
    printf '| %-11s | %9.0f | %8.3f | %6d | %8.0f%% | %12.2f | %8s | %5.0f%% | %6s | %s |\n' \
        "$target" "${MED_RPS[$target]}" "${MED_P99[$target]}" "${ERRS[$target]}" \
        "$(median "$pcpu_l")" "${MED_US[$target]}" "$lmed" \
        "$(median "${OTHER[$target]}")" "${NCLEAN[$target]:-0}/$ROUNDS" \
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
