#!/usr/bin/env bash
# quickstart/run.sh — build sessiongate, start an OpenID provider (the npm package
# oidc-provider, the same one the tests use) as http://localhost:9100, the demo backend on
# 127.0.0.1:9000 and the gateway with config/application.yml on 127.0.0.1:8080, then wait.
# Ctrl-C stops all three.
#
# The provider is named localhost and the gateway 127.0.0.1 on purpose: browsers keep
# cookies per host name, not per port, so with one name for both the provider's own
# _session cookies would travel through the gateway to the backend and show on its page.
#
# Run from anywhere:  bash quickstart/run.sh
# Needs cargo (https://rustup.rs), a C compiler and npm (Debian: apt-get install -y
# build-essential npm). oidc-provider needs Node >= 20.18; on Linux `npm ci --prefix tests`
# installs one (see .ci/provider-node), so Debian 12's Node 18 is enough to start.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

CONFIG="${CONFIG:-config/application.yml}"
BACKEND_PORT=9000  # the port config/application.yml routes to
PROVIDER_PORT=9100 # the issuer-uri in config/application.yml
GATEWAY="http://127.0.0.1:8080" # server.address/port in config/application.yml
# The gateway takes the issuer from ISSUER_URI (a placeholder in config/application.yml);
# the provider binds 127.0.0.1, which localhost reaches too.
ISSUER="http://localhost:$PROVIDER_PORT"

say() { printf '[quickstart] %s\n' "$*" >&2; }
die() { printf '[quickstart] error: %s\n' "$*" >&2; exit 1; }

command -v cargo >/dev/null 2>&1 \
    || die "cargo not found. Install Rust from https://rustup.rs, then run this again."
command -v cc >/dev/null 2>&1 || die "no C compiler (cc) found, needed to build ring and mimalloc.
Debian/Ubuntu: sudo apt-get update && sudo apt-get install -y build-essential"
[[ -f "$CONFIG" ]] || die "$CONFIG not found (run from a full checkout of the repository)"

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port_busy "$BACKEND_PORT" && die "port $BACKEND_PORT is in use; stop what listens there first"
port_busy 8080 && die "port 8080 is in use; stop what listens there first"
port_busy "$PROVIDER_PORT" && die "port $PROVIDER_PORT is in use; stop what listens there first"

# Installs the provider and, on Linux, the Node.js it runs on (tests/package.json); again
# when the Node found is too old, e.g. after an update of tests/package.json.
if [[ ! -d tests/node_modules/oidc-provider ]] || ! .ci/provider-node >/dev/null 2>&1; then
    command -v npm >/dev/null 2>&1 || die "npm not found. Debian/Ubuntu:
    sudo apt-get update && sudo apt-get install -y npm"
    say "installing the OpenID provider (npm ci --prefix tests) ..."
    npm ci --prefix tests --no-audit --no-fund
fi
NODE="$(.ci/provider-node)" || die "no Node.js new enough for the OpenID provider (see above)"
say "Node.js for the provider and the demo backend: $NODE $("$NODE" --version)"

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

say "starting the OpenID provider on $ISSUER"
# Redirect URIs: the gateway builds its callback from the Host the browser used, so both
# loopback names are registered; the post-logout one is sessiongate.post-logout-redirect-uri.
PORT="$PROVIDER_PORT" ISSUER="$ISSUER" \
    CLIENT_ID=gateway CLIENT_SECRET="${CLIENT_SECRET:-quickstart-secret}" \
    REDIRECT_URIS="$GATEWAY/login/oauth2/code/demo,http://localhost:8080/login/oauth2/code/demo" \
    POST_LOGOUT_REDIRECT_URI="$GATEWAY/sessiongate/signed-out" \
    BACKCHANNEL_LOGOUT_URI="$GATEWAY/backchannel/logout" \
    "$NODE" tests/oidc/provider.js >"$LOGDIR/provider.out" 2>"$LOGDIR/provider.err" &
PROVIDER_PID=$!
for _ in $(seq 100); do
    grep -q 'provider listening on' "$LOGDIR/provider.out" 2>/dev/null && break
    kill -0 "$PROVIDER_PID" 2>/dev/null || { cat "$LOGDIR/provider.err" >&2; die "the provider exited"; }
    sleep 0.1
done

say "starting demo backend on http://127.0.0.1:$BACKEND_PORT"
PORT="$BACKEND_PORT" PROVIDER="$ISSUER" "$NODE" quickstart/demo-backend.js &
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
ISSUER_URI="$ISSUER" "$BIN" run --config "$CONFIG" >"$LOGDIR/gateway.out" 2>&1 &
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
echo "Open ${url%/}/ : the gateway sends you to the provider at $ISSUER. Sign in there with"
echo "any user name and any password (e.g. alice / alice), then press Continue on its consent"
echo "page (\"Authorize\"). The demo page shows what the backend received, e.g. the"
echo "Authorization: Bearer token. Its Log out button (POST ${url%/}/logout) ends the session;"
echo "the provider then asks \"Do you want to sign-out ...?\": press \"Yes, sign me out\"."
echo "Ctrl-C stops the gateway, the provider and the backend."
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
