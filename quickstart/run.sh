#!/usr/bin/env bash
# quickstart/run.sh — build sessiongate, start an OpenID provider (the npm package
# oidc-provider, the same one the tests use) on 127.0.0.1:9100, the demo backend on
# 127.0.0.1:9000 and the gateway with config/application.yml on 127.0.0.1:8080, then wait.
# Ctrl-C stops all three.
#
# Run from anywhere:  bash quickstart/run.sh
# Needs cargo (https://rustup.rs) and Node.js >= 18 (Debian: apt-get install -y nodejs).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

CONFIG="${CONFIG:-config/application.yml}"
BACKEND_PORT=9000  # the port config/application.yml routes to
PROVIDER_PORT=9100 # the issuer-uri in config/application.yml

say() { printf '[quickstart] %s\n' "$*" >&2; }
die() { printf '[quickstart] error: %s\n' "$*" >&2; exit 1; }

command -v cargo >/dev/null 2>&1 \
    || die "cargo not found. Install Rust from https://rustup.rs, then run this again."
if ! command -v node >/dev/null 2>&1; then
    die "node not found. Install Node.js 18 or newer, e.g. on Debian/Ubuntu:
    sudo apt-get update && sudo apt-get install -y nodejs
then run this again."
fi
[[ -f "$CONFIG" ]] || die "$CONFIG not found (run from a full checkout of the repository)"

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port_busy "$BACKEND_PORT" && die "port $BACKEND_PORT is in use; stop what listens there first"
port_busy 8080 && die "port 8080 is in use; stop what listens there first"
port_busy "$PROVIDER_PORT" && die "port $PROVIDER_PORT is in use; stop what listens there first"

if [[ ! -d tests/node_modules/oidc-provider ]]; then
    command -v npm >/dev/null 2>&1 || die "npm not found (Debian: apt-get install -y npm)"
    say "installing the OpenID provider (npm ci --prefix tests) ..."
    npm ci --prefix tests --no-audit --no-fund
fi

say "building (cargo build --release) ..."
cargo build --release
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/sessiongate"
[[ -x "$BIN" ]] || die "build produced no $BIN"

LOGDIR="$(mktemp -d "${TMPDIR:-/tmp}/sessiongate-quickstart.XXXXXX")"
BACKEND_PID=""
PROVIDER_PID=""
GATEWAY_PID=""
TAIL_PID=""

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM
    for pid in $GATEWAY_PID $BACKEND_PID $PROVIDER_PID; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in $GATEWAY_PID $BACKEND_PID $PROVIDER_PID; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ -n "$TAIL_PID" ]]; then
        sleep 0.2 # let tail show the gateway's last lines
        kill -TERM "$TAIL_PID" 2>/dev/null || true
        wait "$TAIL_PID" 2>/dev/null || true
    fi
    rm -rf "$LOGDIR"
    say "stopped"
    exit "$rc"
}
trap cleanup EXIT
trap 'echo >&2; exit 0' INT TERM

say "starting the OpenID provider on http://127.0.0.1:$PROVIDER_PORT"
PORT="$PROVIDER_PORT" ISSUER="http://127.0.0.1:$PROVIDER_PORT" \
    CLIENT_ID=gateway CLIENT_SECRET="${CLIENT_SECRET:-quickstart-secret}" \
    REDIRECT_URI="http://127.0.0.1:8080/login/oauth2/code/demo" \
    POST_LOGOUT_REDIRECT_URI="http://127.0.0.1:8080/" \
    BACKCHANNEL_LOGOUT_URI="http://127.0.0.1:8080/backchannel/logout" \
    node tests/oidc/provider.js >"$LOGDIR/provider.out" 2>"$LOGDIR/provider.err" &
PROVIDER_PID=$!
for _ in $(seq 100); do
    grep -q 'provider listening on' "$LOGDIR/provider.out" 2>/dev/null && break
    kill -0 "$PROVIDER_PID" 2>/dev/null || { cat "$LOGDIR/provider.err" >&2; die "the provider exited"; }
    sleep 0.1
done

say "starting demo backend on http://127.0.0.1:$BACKEND_PORT"
PORT="$BACKEND_PORT" node quickstart/demo-backend.js &
BACKEND_PID=$!

# Wait for the backend to accept connections.
for _ in $(seq 100); do
    port_busy "$BACKEND_PORT" && break
    kill -0 "$BACKEND_PID" 2>/dev/null || die "demo backend exited"
    sleep 0.1
done

say "starting sessiongate: $BIN run --config $CONFIG"
# The gateway writes to a file, where we look for its "sessiongate listening on
# http://IP:PORT" lines (one per listener); tail shows it on the terminal. (Not a pipe:
# Ctrl-C would end the reader and leave the gateway writing into a closed pipe.)
"$BIN" run --config "$CONFIG" >"$LOGDIR/gateway.out" 2>&1 &
GATEWAY_PID=$!
tail -n +1 -f "$LOGDIR/gateway.out" &
TAIL_PID=$!

for _ in $(seq 300); do
    grep -q 'sessiongate listening on http://' "$LOGDIR/gateway.out" 2>/dev/null && break
    kill -0 "$GATEWAY_PID" 2>/dev/null || die "sessiongate exited; see its output above"
    sleep 0.1
done
grep -q 'sessiongate listening on http://' "$LOGDIR/gateway.out" \
    || die "sessiongate did not report listening within 30 s"
sleep 0.3 # let the other listeners report too

# The proxy listener is on 8080 in config/application.yml; if that file was changed,
# show the first listener the gateway reported instead.
url="$(grep -o 'sessiongate listening on http://[^ ]*' "$LOGDIR/gateway.out" \
    | sed 's/.*listening on //' | grep ':8080$' | head -n 1 || true)"
if [[ -z "$url" ]]; then
    url="$(grep -o 'sessiongate listening on http://[^ ]*' "$LOGDIR/gateway.out" \
        | sed 's/.*listening on //' | head -n 1)"
fi

echo
echo "Open ${url%/}/ and log in at the provider with any user name and any password"
echo "(the demo provider accepts every login, e.g. alice / alice). The demo page shows the"
echo "Authorization: Bearer token the backend received. To log out, POST ${url%/}/logout"
echo "(the demo page has a button). Ctrl-C stops the gateway, the provider and the backend."
echo

# Wait until Ctrl-C, or until one of the two stops on its own.
set +e
wait -n "$GATEWAY_PID" "$BACKEND_PID" "$PROVIDER_PID"
rc=$?
set -e
if ! kill -0 "$PROVIDER_PID" 2>/dev/null; then
    say "the provider stopped (exit $rc)"
elif kill -0 "$GATEWAY_PID" 2>/dev/null; then
    say "the demo backend stopped (exit $rc)"
else
    say "sessiongate stopped (exit $rc)"
fi
exit 1
