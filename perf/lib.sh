# shellcheck shell=bash disable=SC2034 # (the variables set here are read by the scripts)
# perf/lib.sh — helpers shared by the perf/*.sh scripts; sourced, never run on its own:
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# It sets ROOT (the checkout) and CLK_TCK; the script then sets RUN (its directory of files),
# PERF_TAG (the tag of its log lines) and its knobs before calling anything here.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PERF_TAG=perf
CLK_TCK="$(getconf CLK_TCK 2>/dev/null || echo 100)"
PIDS=()
EXCLUDE="$$"
GW_PID=""
GW_ENV=()

# --- messages ----------------------------------------------------------------------------
# One progress line on stderr, tagged with the script's PERF_TAG.
log() { printf '[%s] %s\n' "$PERF_TAG" "$*" >&2; }
# An error line on stderr, then exit 1.
die() { printf '[%s] error: %s\n' "$PERF_TAG" "$*" >&2; exit 1; }
# True when the decimal number $1 is above $2.
num_gt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a > b) }'; }

# --- tools, pinning, build -----------------------------------------------------------------
# need_tools PACKAGE...: apt-get installs them (sudo if not root) unless all are found.
need_tools() {
    local tool missing=() sudo=""
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 || [[ -x "/usr/sbin/$tool" ]] || missing+=("$tool")
    done
    ((${#missing[@]})) || return 0
    log "missing: ${missing[*]}; installing $* with apt-get"
    if [[ $EUID -ne 0 ]]; then
        command -v sudo >/dev/null 2>&1 || die "not root and no sudo: install $*"
        sudo="sudo"
    fi
    $sudo apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y "$@"
}
# Path of a service binary: Debian puts them under /usr/sbin, which a non-root PATH may lack.
tool_path() { command -v "$1" || echo "/usr/sbin/$1"; }

# Sets NCPU, pin_proxy/pin_load/pin_attack (taskset; pin_attack on ATTACK_CPUS, by default
# LOAD_CPUS) and PROXY_CPU_ONE/LOAD_CPU_ONE; false if unpinned.
setup_pinning() {
    NCPU="$(nproc)"
    pin_proxy=() pin_load=() pin_attack=() PROXY_CPU_ONE="" LOAD_CPU_ONE=""
    if [[ "$NCPU" -lt 2 ]] || ! command -v taskset >/dev/null 2>&1; then
        return 1
    fi
    pin_proxy=(taskset -c "$PROXY_CPU")
    pin_load=(taskset -c "$LOAD_CPUS")
    pin_attack=(taskset -c "${ATTACK_CPUS:-$LOAD_CPUS}")
    if [[ "$PROXY_CPU" =~ ^[0-9]+$ ]]; then PROXY_CPU_ONE="$PROXY_CPU"; fi
    if [[ "$LOAD_CPUS" =~ ^[0-9]+$ ]]; then LOAD_CPU_ONE="$LOAD_CPUS"; fi
}

# build_gateway TARGETS: SG_BIN, built unless SKIP_BUILD=1, required if TARGETS has sessiongate.
build_gateway() {
    local wanted=0
    [[ " $1 " != *" sessiongate "* ]] || wanted=1
    if [[ -n "${SESSIONGATE_BIN:-}" ]]; then
        SG_BIN="$SESSIONGATE_BIN"
    else
        SG_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/sessiongate"
        if [[ "${SKIP_BUILD:-0}" != 1 ]] && ((wanted)); then
            log "cargo build --release"
            (cd "$ROOT" && cargo build --release) >&2
        fi
    fi
    ((!wanted)) || [[ -x "$SG_BIN" ]] || die "no sessiongate binary at $SG_BIN"
}

# --- processes and cleanup ---------------------------------------------------------------
# Stops one process: TERM, up to 5 s to drain, then KILL; reaps it.
stop_pid() {
    local pid=$1
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
# EXIT trap: stops PIDS newest first (clients before servers: their resets leave no TIME_WAIT).
cleanup() {
    local rc=$? i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        stop_pid "${PIDS[i]}"
    done
    exit "$rc"
}
# Empties RUN and arms the traps that run cleanup on exit, also on Ctrl-C or TERM.
init_run() {
    rm -rf "$RUN"
    mkdir -p "$RUN"
    PIDS=()
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# --- crowds of connections (perf/overload_clients.py) ------------------------------------
# need_python: sets PYTHON, the interpreter itself, not a version-manager shim (which would
# fork on every start).
need_python() { PYTHON="$(python3 -c 'import sys; print(sys.executable)')" || die "python3 is needed"; }
# raise_nofile: the open-file limit raised as far as allowed (65536, or the hard limit when
# that is lower; every held connection is a descriptor on both sides); sets NOFILE.
raise_nofile() {
    ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
    NOFILE="$(ulimit -n)"
}
# start_crowd NAME ARG...: perf/overload_clients.py ARG... on the attack CPUs (pin_attack),
# its output in RUN/NAME.out and RUN/NAME.err; sets CROWD_PID (added to PIDS and EXCLUDE).
start_crowd() {
    local name=$1
    shift
    "${pin_attack[@]}" "$PYTHON" "$ROOT/perf/overload_clients.py" "$@" \
        >"$RUN/$name.out" 2>"$RUN/$name.err" &
    CROWD_PID=$!
    PIDS+=("$CROWD_PID")
    EXCLUDE+=" $CROWD_PID"
}
# crowd_result NAME: SIGUSR1 to CROWD_PID, which then sends a second request on every idle
# connection still open, resets them all and prints its JSON result; waits for it (90 s at
# most), sets CROWD_JSON and reaps the crowd.
crowd_result() {
    kill -USR1 "$CROWD_PID"
    for _ in $(seq 900); do
        grep -q '^{' "$RUN/$1.out" && break
        kill -0 "$CROWD_PID" 2>/dev/null || break
        sleep 0.1
    done
    CROWD_JSON="$(grep '^{' "$RUN/$1.out" || true)"
    [[ -n "$CROWD_JSON" ]] || die "the crowd gave no result; see $RUN/$1.*"
    wait "$CROWD_PID" 2>/dev/null || true
    forget_pid "$CROWD_PID"
}
# json_get JSON KEY: one field of a JSON object.
json_get() { "$PYTHON" -c 'import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

# --- ports and readiness -------------------------------------------------------------------
# Ports below the ephemeral range: no client socket, of this run or an earlier one, holds them.
EPHEMERAL_LOW="$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)"
((EPHEMERAL_LOW > 12000)) || EPHEMERAL_LOW=61000
USED_PORTS=" "
# True when a socket uses port $1 or something answers on 127.0.0.1:$1.
port_in_use() {
    local p=$1
    if command -v ss >/dev/null 2>&1 && [[ -n "$(ss -Htan "sport = :$p" 2>/dev/null)" ]]; then
        return 0
    fi
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null
}
# free_port NAME...: sets each NAME to a free port, none twice (no $(...): USED_PORTS persists).
free_port() {
    local name port i
    for name in "$@"; do
        port=""
        for ((i = 0; i < 200; i++)); do
            port=$((10000 + RANDOM % (EPHEMERAL_LOW - 10000)))
            [[ "$USED_PORTS" != *" $port "* ]] && ! port_in_use "$port" && break
            port=""
        done
        [[ -n "$port" ]] || die "no free port found"
        USED_PORTS+="$port "
        printf -v "$name" '%s' "$port"
    done
}
# wait_hello NAME URL PID: waits (30 s) for 200 "hello": the chain works; dies if PID exits.
wait_hello() {
    local name=$1 url=$2 pid=$3
    for _ in $(seq 300); do
        kill -0 "$pid" 2>/dev/null || die "$name exited early; see $RUN/$name.*"
        [[ "$(curl -fksS --max-time 2 "$url" 2>/dev/null)" == hello ]] && return 0
        sleep 0.1
    done
    die "$name did not answer 200 hello at $url within 30 s; see $RUN/$name.*"
}
# wait_line FILE PATTERN PID WHAT SECONDS: waits for PATTERN in FILE; dies if PID exits first.
wait_line() {
    local i
    for ((i = 0; i < $5 * 10; i++)); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        kill -0 "$3" 2>/dev/null || die "$4 exited early; see $1 and ${1%.*}.err"
        sleep 0.1
    done
    die "$4: no '$2' within $5 s; see $1"
}

# --- nginx and the gateway -----------------------------------------------------------------
# nginx_conf DIR BODY [WORKER-CONNECTIONS]: DIR/nginx.conf, 1 worker, its temp paths in DIR.
nginx_conf() {
    local dir=$1 body=$2 conns=${3:-4096} user=""
    [[ $EUID -eq 0 ]] && user="user root;"
    mkdir -p "$dir"
    cat >"$dir/nginx.conf" <<EOF
$user
daemon off;
master_process on;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections $conns; multi_accept on; }
http {
    access_log off;
    client_body_temp_path $dir/client_body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    keepalive_timeout 300s;
    keepalive_requests 100000000;
$body
}
EOF
}
# nginx_proxy_conf DIR LISTEN [SERVER-LINES [WORKER-CONNECTIONS]]: nginx proxying to
# BACKEND_PORT, upstream kept alive.
nginx_proxy_conf() {
    nginx_conf "$1" "    upstream backend {
        server 127.0.0.1:$BACKEND_PORT;
        keepalive 64;
        keepalive_requests 100000000;
        keepalive_timeout 300s;
    }
    server {
        listen $2;${3:+
$3}
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }
    }" "${4:-}"
}
# start_backend WORKER-CONNECTIONS: nginx answering "hello" on BACKEND_PORT; sets BACKEND_PID.
start_backend() {
    nginx_conf "$RUN/backend" "    server {
        listen 127.0.0.1:$BACKEND_PORT reuseport backlog=4096;
        location / {
            default_type text/plain;
            return 200 \"hello\n\";
        }
    }" "$1"
    "${pin_load[@]}" "$NGINX" -p "$RUN/backend" -c "$RUN/backend/nginx.conf" \
        >"$RUN/backend.out" 2>"$RUN/backend.err" &
    BACKEND_PID=$!
    PIDS+=("$BACKEND_PID")
    wait_hello backend "http://127.0.0.1:$BACKEND_PORT/" "$BACKEND_PID"
}

# gateway_conf FILE BACKEND-PORT [PROVIDER-PORT] <KEYS: KEYS, route /**, logins at the provider.
gateway_conf() {
    local route=backend
    {
        cat
        echo "spring:"
        if [[ $# -gt 2 ]]; then
            route=app
            cat <<EOF
  security:
    oauth2:
      client:
        registration:
          demo: {client-id: gateway, client-secret: secret, scope: "openid,profile,email"}
        provider:
          demo: {issuer-uri: "http://127.0.0.1:$3"}
EOF
        fi
        cat <<EOF
  cloud:
    gateway:
      routes:
        - id: $route
          uri: http://127.0.0.1:$2
          predicates: [Path=/**]
logging: {level: {root: WARN}}
EOF
    } >"$1"
}
# start_gateway NAME CONFIG [LINE...]: check, run pinned, wait for the ready LINEs; sets GW_PID.
start_gateway() {
    local name=$1 config=$2 line
    shift 2
    "$SG_BIN" check --config "$config" >"$RUN/$name.check" 2>&1 \
        || die "sessiongate check refused $config: $(cat "$RUN/$name.check")"
    env "${GW_ENV[@]}" "${pin_proxy[@]}" "$SG_BIN" run --config "$config" \
        >"$RUN/$name.out" 2>"$RUN/$name.err" &
    GW_PID=$!
    PIDS+=("$GW_PID")
    for line in "sessiongate listening on " "$@"; do
        wait_line "$RUN/$name.out" "$line" "$GW_PID" "$name" 30
    done
}
# forget_pid PID: drops a process (reaped already) from PIDS.
forget_pid() {
    local keep=() p
    for p in "${PIDS[@]}"; do [[ "$p" == "$1" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}
# stop_started PID: stops a process started here and drops it from PIDS.
stop_started() {
    stop_pid "$1"
    forget_pid "$1"
}
# Stops the gateway GW_PID and drops it from PIDS.
stop_gateway() { stop_started "$GW_PID"; }
# start_nginx NAME DIR: nginx with DIR/nginx.conf on the proxy CPU; sets NGINX_PID (the master).
start_nginx() {
    "${pin_proxy[@]}" "$NGINX" -p "$2" -c "$2/nginx.conf" >"$RUN/$1.out" 2>"$RUN/$1.err" &
    NGINX_PID=$!
    PIDS+=("$NGINX_PID")
}
# wait_port PORT: waits (10 s) until something accepts on 127.0.0.1:PORT.
wait_port() {
    for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done
    die "port $1 never opened"
}
# start_provider PORT GATEWAY-PORT: the test provider (tests/oidc/provider.js) on PORT, for a
# gateway on GATEWAY-PORT, access tokens of an hour, on the load CPUs; waits for its port.
start_provider() {
    PORT=$1 ISSUER="http://127.0.0.1:$1" ACCESS_TOKEN_TTL=3600         REDIRECT_URI="http://127.0.0.1:$2/login/oauth2/code/demo"         "${pin_load[@]}" node "$ROOT/tests/oidc/provider.js" >"$RUN/provider.out" 2>"$RUN/provider.err" &
    PIDS+=($!)
    wait_port "$1"
}
# stop_gateway_freeing PORT: stop_gateway, then waits until PORT is free for the next one.
stop_gateway_freeing() {
    stop_gateway
    for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null || return 0; sleep 0.05; done
}
# wait_login_redirect PORT: waits for the redirect to the provider (503 until its keys load).
wait_login_redirect() {
    local code
    for _ in $(seq 100); do
        code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Accept: text/html' "http://127.0.0.1:$1/")
        [[ "$code" == 302 ]] && return 0
        sleep 0.1
    done
    die "the gateway never redirected to the provider"
}

# --- TLS ---------------------------------------------------------------------------------
# tls_setup DIR PROTO: one ECDSA P-256 certificate for localhost and 127.0.0.1 (DIR/tls.crt,
# DIR/tls.key) for every TLS server, and an OpenSSL configuration (DIR/openssl-client.cnf,
# exported as OPENSSL_CONF, so read by wrk, s_time, curl, Python and nginx alike) pinning
# PROTO: 1.3 = TLS_AES_128_GCM_SHA256, 1.2 = ECDHE-ECDSA-AES128-GCM-SHA256, group X25519 (the
# client lists P-256 after it: TLS 1.2 clients check the certificate's curve against that
# list; the key exchange still uses X25519). Sets TLS_SUITE.
tls_setup() {
    local dir=$1 minmax
    case "$2" in
    1.3) minmax="TLSv1.3" TLS_SUITE="TLS_AES_128_GCM_SHA256" ;;
    1.2) minmax="TLSv1.2" TLS_SUITE="ECDHE-ECDSA-AES128-GCM-SHA256" ;;
    *) die "PROTO must be 1.3 or 1.2" ;;
    esac
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
        -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
        -keyout "$dir/tls.key" -out "$dir/tls.crt" 2>/dev/null || die "openssl req failed"
    cat >"$dir/openssl-client.cnf" <<EOF
openssl_conf = perf_conf
[perf_conf]
ssl_conf = ssl_sect
[ssl_sect]
system_default = pinned
[pinned]
MinProtocol = $minmax
MaxProtocol = $minmax
Ciphersuites = TLS_AES_128_GCM_SHA256
CipherString = ECDHE-ECDSA-AES128-GCM-SHA256
Groups = X25519:P-256
EOF
    export OPENSSL_CONF="$dir/openssl-client.cnf"
}
# nginx_tls_lines DIR: nginx server lines terminating TLS with tls_setup's certificate, the
# same protocol, suite and group pinned; session tickets and cache at their defaults.
nginx_tls_lines() {
    cat <<EOF
        ssl_certificate $1/tls.crt;
        ssl_certificate_key $1/tls.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256;
        ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256;
        ssl_ecdh_curve X25519;
EOF
}
# gateway_tls_yaml DIR: the gateway's `ssl:` block (under `server:`) with that certificate.
gateway_tls_yaml() {
    cat <<EOF
  ssl:
    certificate: $1/tls.crt
    certificate-private-key: $1/tls.key
EOF
}

# --- wrk -----------------------------------------------------------------------------------
# run_wrk SECONDS OUT URL [OPTION...]: wrk -tTHREADS -cCONNECTIONS --latency on the load CPUs.
run_wrk() {
    local secs=$1 out=$2 url=$3
    shift 3
    "${pin_load[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${secs}s" --latency "$@" "$url" \
        >"$out" 2>&1 || die "wrk failed: $(cat "$out")"
}
# Requests per second in a wrk output file.
rps_of() { awk '/^Requests\/sec:/ {print $2}' "$1"; }
# A wrk latency figure (812.00us, 1.23ms, 1.02s, 1.50m) in milliseconds.
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
# median LIST [FORMAT]: median (mean of the middle two if even), printf'd with FORMAT or as is.
median() {
    tr ' ' '\n' <<<"$1" | awk 'NF' | sort -g | awk -v f="${2:-}" '
        { v[NR] = $1 }
        END {
            if (NR == 0) { print "nan"; exit }
            if (NR % 2) m = v[(NR + 1) / 2]; else m = (v[NR / 2] + v[NR / 2 + 1]) / 2
            if (f != "") printf f, m; else print m
        }'
}

# --- CPU accounting (all from /proc, in clock ticks) ----------------------------------------
# "cpuN total idle+iowait" per CPU and "all total steal" for the machine.
cpu_snap() {
    awk '/^cpu[0-9]+ / { t = 0; for (i = 2; i <= NF; i++) t += $i; print $1, t, $5 + $6 }
         /^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print "all", t, $9 }' /proc/stat
}
# snap_field SNAP NAME COLUMN (2 = total, 3 = idle, or steal for "all").
snap_field() { awk -v n="$2" -v c="$3" '$1 == n { print $c }' <<<"$1"; }
# cpu_busy CPU BEFORE AFTER: busy % of cpuN between two cpu_snap outputs.
cpu_busy() {
    local cpu=$1 before=$2 after=$3 t0 t1 i0 i1
    t0="$(snap_field "$before" "cpu$cpu" 2)"
    t1="$(snap_field "$after" "cpu$cpu" 2)"
    i0="$(snap_field "$before" "cpu$cpu" 3)"
    i1="$(snap_field "$after" "cpu$cpu" 3)"
    awk -v dt="$((t1 - t0))" -v di="$((i1 - i0))" \
        'BEGIN { printf "%.1f", (dt > 0 ? 100 * (dt - di) / dt : 0) }'
}
# pct_of_core TICKS ELAPSED: TICKS in % of one core over ELAPSED ticks, one decimal.
pct_of_core() {
    awk -v t="$1" -v e="$2" 'BEGIN { v = (e > 0 ? 100 * t / e : 0); printf "%.1f", (v < 0 ? 0 : v) }'
}
# us_per_req BUSY% ELAPSED REQUESTS: CPU microseconds per request.
us_per_req() {
    awk -v c="$1" -v e="$2" -v t="$CLK_TCK" -v n="$3" \
        'BEGIN { printf "%.2f", (n > 0 ? (c / 100) * e / t * 1e6 / n : 0) }'
}
# The direct children of process $1 (nginx master -> worker), one a line.
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
# A process and its direct children, on one line.
# shellcheck disable=SC2046 # word splitting of the pid list is intended
tree_of() { echo "$1" $(children_of "$1"); }
# utime+stime (all threads) of these processes.
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
# others_snap [PID...]: "pid ticks" of user processes but EXCLUDE and PID (the shell reaping
# the load); reaped children count, so a compiler exiting meanwhile is seen via its parent.
others_snap() {
    # processes come and go while cat reads: a vanished one is not an error
    { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v ex=" $EXCLUDE $* " '{
        pid = $1; sub(/^.*\) /, "")
        if (pid == 2 || $2 == 2 || index(ex, " " pid " ")) next
        print pid, $12 + $13 + $14 + $15
    }'
}
# Ticks of other programs between two others_snap outputs; an exited process's time before the
# first one is taken off (it reappears, whole, in its parent's children time).
others_ticks() {
    awk 'NR == FNR { t0[$1] = $2; next }
         { seen[$1] = 1; d += $2 - ($1 in t0 ? t0[$1] : 0) }
         END { for (p in t0) if (!(p in seen)) d -= t0[p]; print (d > 0 ? d : 0) }' \
        <(echo "$1") <(echo "$2")
}
# wrk_measured OUT PIDS URL [OPTION...]: run_wrk for DURATION with the CPU accounting; sets W_*:
# RPS REQ P99 (ms) N2XX SOCK from OUT; ELAPSED (ticks of a CPU), TICKS (of PIDS), OTHER STEAL
# (% of a core), PCPU LCPU (busy % of PROXY_CPU_ONE / LOAD_CPU_ONE, else "-") from /proc.
wrk_measured() {
    local out=$1 pids=$2 url=$3 t0 t1 o0 o1 snap0 snap1 p99 me=$BASHPID
    shift 3
    # shellcheck disable=SC2086 # pid list
    t0="$(proc_ticks $pids)"
    o0="$(others_snap "$me")"
    snap0="$(cpu_snap)"
    run_wrk "$DURATION" "$out" "$url" "$@"
    snap1="$(cpu_snap)"
    o1="$(others_snap "$me")"
    # shellcheck disable=SC2086 # pid list
    t1="$(proc_ticks $pids)"
    W_RPS="$(rps_of "$out")"
    W_REQ="$(awk '/requests in/ {print $1}' "$out")"
    p99="$(awk '$1 == "99%" {print $2}' "$out")"
    [[ -n "$W_RPS" && -n "$W_REQ" && -n "$p99" ]] || die "could not parse $out"
    W_P99="$(to_ms "$p99")"
    W_N2XX="$(awk '/Non-2xx or 3xx responses:/ { n += $NF } END { print n + 0 }' "$out")"
    W_SOCK="$(awk '/Socket errors:/ { gsub(",", ""); n += $4 + $6 + $8 + $10 } END { print n + 0 }' "$out")"
    W_ELAPSED=$((($(snap_field "$snap1" all 2) - $(snap_field "$snap0" all 2)) / NCPU))
    W_TICKS=$((t1 - t0))
    W_OTHER="$(pct_of_core "$(others_ticks "$o0" "$o1")" "$W_ELAPSED")"
    W_STEAL="$(pct_of_core $(($(snap_field "$snap1" all 3) - $(snap_field "$snap0" all 3))) "$W_ELAPSED")"
    W_PCPU="-" W_LCPU="-"
    if [[ -n "$PROXY_CPU_ONE" ]]; then W_PCPU="$(cpu_busy "$PROXY_CPU_ONE" "$snap0" "$snap1")"; fi
    if [[ -n "$LOAD_CPU_ONE" ]]; then W_LCPU="$(cpu_busy "$LOAD_CPU_ONE" "$snap0" "$snap1")"; fi
}

# measure LABEL URL [wrk options...]: wrk_measured (wrk -tTHREADS -cCONNECTIONS -dDURATION
# --latency with the CPU accounting) into RUN/wrk-LABEL-TRY.txt; repeated (at most TRIES
# times) while other programs used more than OTHER_MAX % of a core; the quietest try is kept
# in the R_* arrays under LABEL (R_RPS, R_P99, R_N2XX, R_SOCK, R_PCPU, R_LCPU, R_US us/req of
# the proxy CPU, R_OTHER, R_ACPU, R_TRY kept, R_TRIES made); a LABEL noisy in every try sets
# NOISY=1. MEASURE_PRE / MEASURE_POST name functions called with the try number right before
# and after each wrk run (a storm, an RSS sampler). ATTACK_PIDS: the attackers' processes,
# whose CPU time is reported (R_ACPU, % of one core).
declare -A R_RPS R_P99 R_N2XX R_SOCK R_PCPU R_LCPU R_US R_OTHER R_TRIES R_TRY R_ACPU
ATTACK_PIDS=""
MEASURE_PRE=""
MEASURE_POST=""
NOISY=0
measure() {
    local label=$1 url=$2 try out rps p99 n2xx sock other pcpu lcpu us best="" acpu
    shift 2
    for try in $(seq "$TRIES"); do
        out="$RUN/wrk-$label-$try.txt"
        [[ -n "$MEASURE_PRE" ]] && "$MEASURE_PRE" "$try"
        wrk_measured "$out" "$ATTACK_PIDS" "$url" "$@"
        [[ -n "$MEASURE_POST" ]] && "$MEASURE_POST" "$try"
        rps=$W_RPS p99=$W_P99 n2xx=$W_N2XX sock=$W_SOCK other=$W_OTHER pcpu=$W_PCPU lcpu=$W_LCPU
        acpu="$(pct_of_core "$W_TICKS" "$W_ELAPSED")"
        us="-"
        [[ "$pcpu" == - ]] || us="$(us_per_req "$pcpu" "$W_ELAPSED" "$W_REQ")"
        log "$label try $try/$TRIES: $rps req/s, p99 $p99 ms, non-2xx $n2xx, socket errors $sock," \
            "proxy cpu $pcpu% ($us us/req), load cpu $lcpu%, attackers $acpu%, other $other%"
        if [[ -z "$best" ]] || awk -v o="$other" -v b="${R_OTHER[$label]}" 'BEGIN { exit !(o < b) }'; then
            best=1
            R_RPS[$label]=$rps R_P99[$label]=$p99 R_N2XX[$label]=$n2xx R_SOCK[$label]=$sock
            R_PCPU[$label]=$pcpu R_LCPU[$label]=$lcpu R_US[$label]=$us R_OTHER[$label]=$other R_ACPU[$label]=$acpu
            R_TRY[$label]=$try
        fi
        R_TRIES[$label]=$try
        num_gt "$other" "$OTHER_MAX" || break
        if ((try < TRIES)); then
            log "other programs used $other% of a core (> $OTHER_MAX %): repeating"
        fi
    done
    if num_gt "${R_OTHER[$label]}" "$OTHER_MAX"; then
        NOISY=1
        log "warning: $label stayed noisy in all $TRIES tries (kept try ${R_TRY[$label]})"
    fi
}

# --- memory, metrics -----------------------------------------------------------------------
# mem_of PID: its VmRSS and VmHWM, in kB.
mem_of() { awk '/^VmRSS:/ { r = $2 } /^VmHWM:/ { h = $2 } END { print r + 0, h + 0 }' "/proc/$1/status"; }
# thp_of PID: its anonymous memory in transparent huge pages, in kB.
thp_of() { awk '/^AnonHugePages:/ { print $2 + 0 }' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }
# mib KB: in MiB, one decimal.
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
# metric PORT NAME: one value from the gateway's /actuator/prometheus on PORT ("?" if none).
metric() {
    curl -fsS --max-time 5 "http://127.0.0.1:$1/actuator/prometheus" 2>/dev/null \
        | awk -v n="$2" '$1 == n { print $2; found = 1 } END { if (!found) print "?" }'
}

# --- report --------------------------------------------------------------------------------
# The CPU model, as lscpu names it.
cpu_model() { lscpu 2>/dev/null | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2; exit}'; }
# The checkout's short commit, or "none".
git_rev() { (cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null) || echo none; }
