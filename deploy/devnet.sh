#!/usr/bin/env bash
# Local devnet on the IPv6 loopback [::1].
#
# The devnet is: build; a TrustChain CA of 3 members (2-of-3) with its
# transparency logs, HTTP views and DNS; a node enrolled with a token and
# its certificate verified against the logs; a HyperMesh node (single
# validator) enrolled the same way, committing a transfer sent over STOQ;
# and a STOQ server and client exchanging messages over a post-quantum
# (X25519MLKEM768 + FN-DSA-1024) handshake. Each component has its own
# functions (setup_*, start_*, demo_*), so that later layers (Caesar, apps)
# can be added the same way.
#
# Usage: deploy/devnet.sh [--once] [--port N] [--metrics-port N] [--tc-port N] [--hm-port N] [--dir DIR]
#   --once            run the demo, stop everything and exit (CI)
#   --port N          QUIC port of the STOQ node-1 (default 4433)
#   --metrics-port N  Prometheus /metrics port of node-1 (default 9464)
#   --tc-port N       STOQ port of TrustChain member 0 (default 7400; member
#                     i uses N+i, HTTP N+80+i, DNS N-2047+i, DoQ N+1453+i)
#   --hm-port N       STOQ port of the HyperMesh node (default 7600; its
#                     JSON-RPC and /metrics on N+80)
#   --dir DIR         state directory (default .devnet in the repository)
# Needs only Rust (cargo) and an IPv6 loopback.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEVNET_DIR="$ROOT/.devnet"
ONCE=0
STOQ_PORT=4433
STOQ_METRICS_PORT=9464
TC_PORT=7400
TC_MEMBERS=3
HM_PORT=7600

# Processes this script started: PIDS[i] is named NAMES[i].
PIDS=()
NAMES=()

log() { printf '==> %s\n' "$*"; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}

parse_args() {
    while [ $# -gt 0 ]; do
        case "$1" in
            --once) ONCE=1 ;;
            --port)
                [ $# -ge 2 ] || die "--port needs a number"
                STOQ_PORT=$2
                shift
                ;;
            --metrics-port)
                [ $# -ge 2 ] || die "--metrics-port needs a number"
                STOQ_METRICS_PORT=$2
                shift
                ;;
            --tc-port)
                [ $# -ge 2 ] || die "--tc-port needs a number"
                TC_PORT=$2
                shift
                ;;
            --hm-port)
                [ $# -ge 2 ] || die "--hm-port needs a number"
                HM_PORT=$2
                shift
                ;;
            --dir)
                [ $# -ge 2 ] || die "--dir needs a path"
                DEVNET_DIR=$2
                shift
                ;;
            -h | --help)
                usage
                exit 0
                ;;
            *) die "unknown option $1 (see --help)" ;;
        esac
        shift
    done
    [[ "$TC_PORT" =~ ^[0-9]+$ ]] && [ "$TC_PORT" -ge 2100 ] && [ "$TC_PORT" -le 64000 ] || die "invalid --tc-port $TC_PORT (2100-64000)"
    for p in "$STOQ_PORT" "$STOQ_METRICS_PORT"; do
        [[ "$p" =~ ^[0-9]+$ ]] && [ "$p" -ge 1 ] && [ "$p" -le 65535 ] || die "invalid port $p (1-65535)"
    done
    [ "$STOQ_PORT" != "$STOQ_METRICS_PORT" ] || die "--port and --metrics-port must differ"
    [[ "$HM_PORT" =~ ^[0-9]+$ ]] && [ "$HM_PORT" -ge 1024 ] && [ "$HM_PORT" -le 65000 ] || die "invalid --hm-port $HM_PORT (1024-65000)"
    HM_HTTP_PORT=$((HM_PORT + 80))
    mkdir -p "$DEVNET_DIR"
    DEVNET_DIR=$(cd "$DEVNET_DIR" && pwd)
    PKI="$DEVNET_DIR/pki"
    LOGS="$DEVNET_DIR/logs"
}

# ---------------------------------------------------------------- checks --

check_prerequisites() {
    command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust from https://rustup.rs and retry"
    if [ -r /proc/net/if_inet6 ] && ! grep -q '^0\{31\}1 ' /proc/net/if_inet6; then
        die "the IPv6 loopback [::1] is not configured: STOQ is IPv6-only (try: sudo sysctl -w net.ipv6.conf.lo.disable_ipv6=0)"
    fi
}

# ----------------------------------------------------------------- build --

build_all() {
    log "building (cargo build --release -p stoq -p trustchain -p hypermesh-node)"
    (cd "$ROOT" && cargo build --release -p stoq -p trustchain -p hypermesh-node)
    STOQ="${CARGO_TARGET_DIR:-$ROOT/target}/release/stoq"
    TC="${CARGO_TARGET_DIR:-$ROOT/target}/release/trustchain"
    HM="${CARGO_TARGET_DIR:-$ROOT/target}/release/hypermesh"
    [ -x "$STOQ" ] || die "build finished but $STOQ is missing"
    [ -x "$TC" ] || die "build finished but $TC is missing"
    [ -x "$HM" ] || die "build finished but $HM is missing"
}

# ------------------------------------------------------------ processes --

# start NAME LOGBASE CMD...: runs CMD in the background, stdout to
# LOGBASE.out, stderr to LOGBASE.log, and remembers its pid.
start() {
    local name=$1 base=$2
    shift 2
    "$@" >"$base.out" 2>"$base.log" &
    PIDS+=("$!")
    NAMES+=("$name")
}

# show_log FILE: the error a component printed (without a backtrace), or
# the end of its log.
show_log() {
    if grep -q '^Error' "$1" 2>/dev/null; then
        sed -n '/^Error/,/^Stack backtrace/p' "$1" | grep -v '^Stack backtrace' >&2
    else
        tail -n 20 "$1" >&2 || true
    fi
}

# wait_for_line PID FILE PATTERN WHAT: waits until FILE has a line matching
# PATTERN; fails if the process exits first or after 60 s.
wait_for_line() {
    local pid=$1 file=$2 pattern=$3 what=$4 i
    for i in $(seq 1 600); do
        if grep -q "$pattern" "$file" 2>/dev/null; then
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            printf 'error: %s exited during startup; its log (%s):\n' "$what" "${file%.out}.log" >&2
            show_log "${file%.out}.log"
            printf 'hint: if a port is in use (another devnet?), choose others with --port N --metrics-port N\n' >&2
            exit 1
        fi
        sleep 0.1
    done
    die "$what did not start within 60 s (see ${file%.out}.log)"
}

# stop_all: SIGTERM to every process started here (newest first), SIGKILL
# after 10 s. Prints a warning for a process that exited with an error.
stop_all() {
    local i pid name status t
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        pid=${PIDS[$i]}
        name=${NAMES[$i]}
        kill -0 "$pid" 2>/dev/null || continue
        log "stopping $name (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        for t in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            printf 'warning: %s did not stop within 10 s: killing it\n' "$name" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
        status=0
        wait "$pid" 2>/dev/null || status=$?
        if [ "$status" -ne 0 ]; then
            printf 'warning: %s exited with status %s (see %s)\n' "$name" "$status" "$LOGS" >&2
            STOP_FAILED=1
        fi
    done
    PIDS=()
    NAMES=()
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_all || true
    exit "$rc"
}

# ------------------------------------------------------------ TrustChain --

# pki_trustchain: the key ceremony, once (kept across runs).
pki_trustchain() {
    TCDIR="$DEVNET_DIR/trustchain"
    if [ ! -f "$TCDIR/bundle.toml" ]; then
        log "TrustChain key ceremony: $TC_MEMBERS members, 2 signatures needed"
        "$TC" init --members "$TC_MEMBERS" --threshold 2 --out "$TCDIR" \
            --base-port "$TC_PORT" --http-base-port $((TC_PORT + 80)) \
            --dns-base-port $((TC_PORT - 2047)) --doq-base-port $((TC_PORT + 1453)) | sed 's/^/    /'
    else
        log "TrustChain CA in $TCDIR (kept from a previous run)"
    fi
}

start_trustchain() {
    mkdir -p "$LOGS"
    local i pid
    for i in $(seq 0 $((TC_MEMBERS - 1))); do
        start "trustchain member $i" "$LOGS/trustchain-$i" "$TC" --log "info,hickory_server=warn" serve \
            --config "$TCDIR/member-$i/trustchain.toml"
        pid=${PIDS[-1]}
        wait_for_line "$pid" "$LOGS/trustchain-$i.out" '^trustchain member .* listening on ' "trustchain member $i"
        sed 's/^/    /' "$LOGS/trustchain-$i.out"
    done
}

# demo_trustchain: an admin creates a token, a node enrolls with it (2 of 3
# members sign), and the certificate is verified against the logs.
demo_trustchain() {
    local node="$DEVNET_DIR/trustchain-node" token
    mkdir -p "$node"
    log "TrustChain: token, enrollment of node-1.mesh, verification"
    token=$("$TC" --log warn token create --bundle "$TCDIR/bundle.toml" --admin-key "$TCDIR/admin.key" \
        --names node-1.mesh --ttl 10m) || die "token creation failed (see $LOGS/trustchain-0.log)"
    "$TC" --log warn issue --bundle "$TCDIR/bundle.toml" --token "$token" --key "$node/node.key" \
        --out "$node/node.pem" --names node-1.mesh --service _stoq._udp:"$STOQ_PORT" | sed 's/^/    /' ||
        die "enrollment failed (see $LOGS/trustchain-*.log)"
    "$TC" --log warn verify --bundle "$TCDIR/bundle.toml" --cert "$node/node.pem" | sed 's/^/    /' ||
        die "the issued certificate does not verify"
    "$TC" --log warn log head --bundle "$TCDIR/bundle.toml" | sed 's/^/    /'
}

# ------------------------------------------------------------- HyperMesh --

# setup_hypermesh: the node's key (kept), a fresh certificate from
# TrustChain (every run), a wallet and a genesis funding it (kept: the
# chain resumes where the last run stopped).
setup_hypermesh() {
    HMDIR="$DEVNET_DIR/hypermesh"
    mkdir -p "$HMDIR"
    local token
    token=$("$TC" --log warn token create --bundle "$TCDIR/bundle.toml" --admin-key "$TCDIR/admin.key" \
        --names hypermesh-1.mesh --ttl 10m) || die "token creation for the HyperMesh node failed"
    log "HyperMesh: enrolling hypermesh-1.mesh with TrustChain"
    "$HM" --log warn init --dir "$HMDIR" --bundle "$TCDIR/bundle.toml" --token "$token" --name hypermesh-1 \
        --listen "[::1]:$HM_PORT" --http "[::1]:$HM_HTTP_PORT" | sed 's/^/    /' ||
        die "HyperMesh node enrollment failed (see $LOGS/trustchain-*.log)"
    [ -f "$HMDIR/wallet.key" ] || "$HM" --log warn keys new "$HMDIR/wallet.key" | sed 's/^/    /'
    [ -f "$HMDIR/bob.key" ] || "$HM" --log warn keys new "$HMDIR/bob.key" | sed 's/^/    /'
    if [ ! -f "$HMDIR/genesis.toml" ]; then
        "$HM" --log warn genesis --out "$HMDIR/genesis.toml" --validator "$HMDIR/node.key=1000000" \
            --balance "$HMDIR/wallet.key=1000000000" | sed 's/^/    /'
    fi
}

start_hypermesh() {
    log "starting the HyperMesh node on [::1]:$HM_PORT (JSON-RPC and metrics on http://[::1]:$HM_HTTP_PORT)"
    start "hypermesh node" "$LOGS/hypermesh-1" "$HM" start --config "$HMDIR/hypermesh.toml"
    HM_PID=${PIDS[-1]}
    wait_for_line "$HM_PID" "$LOGS/hypermesh-1.out" '^hypermesh node .* listening on ' "hypermesh node"
    sed 's/^/    /' "$LOGS/hypermesh-1.out"
}

# demo_hypermesh: a transfer from the wallet, signed, with its proof of
# work, submitted over STOQ and committed; then the account and the block.
demo_hypermesh() {
    log "HyperMesh: a transfer over STOQ, committed"
    local cfg="$HMDIR/hypermesh.toml"
    "$HM" --log warn tx send --config "$cfg" --key "$HMDIR/wallet.key" --to "$HMDIR/bob.key" --amount 25 |
        sed 's/^/    /' || die "the transfer failed (see $LOGS/hypermesh-1.log)"
    "$HM" --log warn query account "$HMDIR/bob.key" --config "$cfg" | sed 's/^/    /' || die "query failed"
    "$HM" --log warn block latest --config "$cfg" | sed 's/^/    /' || die "block query failed"
}

# ------------------------------------------------------------------ STOQ --

# pki_stoq: a development root (kept across runs), node and client keys
# (kept), and their certificates (re-issued on every run, valid a week).
pki_stoq() {
    log "development PKI in $PKI"
    mkdir -p "$PKI"
    if [ ! -f "$PKI/ca/ca.pem" ]; then
        "$STOQ" ca init --dir "$PKI/ca" --name "STOQ Devnet Root" --force
    fi
    local who name
    for who in node-1 client-1; do
        name="$who.mesh"
        if [ ! -f "$PKI/$who.key" ]; then
            "$STOQ" keygen --out "$PKI/$who.key" --force >/dev/null
        fi
        "$STOQ" ca issue --ca-dir "$PKI/ca" --key "$PKI/$who.pub" --name "$name" \
            --hours 168 --out "$PKI/$who.pem" --force >/dev/null
        printf '    %-9s %s (%s.pem, %s.key)\n' "$who" "$name" "$PKI/$who" "$PKI/$who"
    done
}

start_stoq() {
    mkdir -p "$LOGS"
    log "starting stoq serve (node-1.mesh) on [::1]:$STOQ_PORT"
    start "stoq node-1" "$LOGS/stoq-node-1" "$STOQ" serve \
        --listen "[::1]:$STOQ_PORT" \
        --cert "$PKI/node-1.pem" --key "$PKI/node-1.key" --trust "$PKI/ca/ca.pem" \
        --metrics "[::1]:$STOQ_METRICS_PORT"
    STOQ_PID=${PIDS[-1]}
    wait_for_line "$STOQ_PID" "$LOGS/stoq-node-1.out" '^listening on ' "stoq serve"
    sed 's/^/    /' "$LOGS/stoq-node-1.out"
}

demo_stoq() {
    log "stoq ping: 5 round trips and one message over a post-quantum handshake"
    if ! "$STOQ" ping "[::1]:$STOQ_PORT" --name node-1.mesh \
        --cert "$PKI/client-1.pem" --key "$PKI/client-1.key" --trust "$PKI/ca/ca.pem" \
        --count 5 --message "hello over post-quantum QUIC"; then
        printf 'error: stoq ping failed; server log (%s):\n' "$LOGS/stoq-node-1.log" >&2
        show_log "$LOGS/stoq-node-1.log"
        exit 1
    fi
}

# check_stoq_metrics: GET /metrics with bash's /dev/tcp (no curl needed).
check_stoq_metrics() {
    local response line
    exec 3<>"/dev/tcp/::1/$STOQ_METRICS_PORT" || die "cannot connect to the metrics endpoint [::1]:$STOQ_METRICS_PORT"
    printf 'GET /metrics HTTP/1.1\r\nHost: [::1]:%s\r\n\r\n' "$STOQ_METRICS_PORT" >&3
    response=$(cat <&3)
    exec 3<&-
    line=$(printf '%s\n' "$response" | grep '^stoq_connections_established' || true)
    [ -n "$line" ] || die "/metrics did not report stoq_connections_established"
    log "metrics: $line"
}

# ------------------------------------------------------------------ main --

summary() {
    cat <<EOF
==> devnet is up
    TrustChain      members quic://[::1]:$TC_PORT..$((TC_PORT + TC_MEMBERS - 1)) (2 of $TC_MEMBERS sign)
                    log and metrics http://[::1]:$((TC_PORT + 80))/log/checkpoint, /metrics
                    DNS [::1]:$((TC_PORT - 2047)) (udp/tcp), DoQ [::1]:$((TC_PORT + 1453)); try: dig @::1 -p $((TC_PORT - 2047)) AAAA node-1.mesh
                    bundle $TCDIR/bundle.toml, admin key $TCDIR/admin.key
    HyperMesh       quic://[::1]:$HM_PORT (name hypermesh-1.mesh), JSON-RPC and metrics http://[::1]:$HM_HTTP_PORT
                    config $HMDIR/hypermesh.toml, wallet $HMDIR/wallet.key
                    try: $HM query status --config $HMDIR/hypermesh.toml
    STOQ node-1     quic://[::1]:$STOQ_PORT  (name node-1.mesh, post-quantum)
    metrics         http://[::1]:$STOQ_METRICS_PORT/metrics
    PKI             $PKI  (root: ca/ca.pem; client identity: client-1.pem/.key)
    logs            $LOGS
    try:            $STOQ ping '[::1]:$STOQ_PORT' --name node-1.mesh --cert $PKI/client-1.pem --key $PKI/client-1.key --trust $PKI/ca/ca.pem
EOF
}

main() {
    parse_args "$@"
    check_prerequisites
    STOP_FAILED=0
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    build_all
    pki_trustchain
    start_trustchain
    demo_trustchain
    setup_hypermesh
    start_hypermesh
    demo_hypermesh
    pki_stoq
    start_stoq
    demo_stoq
    check_stoq_metrics
    summary
    if [ "$ONCE" = 1 ]; then
        stop_all
        [ "$STOP_FAILED" = 0 ] || die "a component did not shut down cleanly"
        log "demo done, devnet stopped"
        return 0
    fi
    log "running; press Ctrl-C to stop"
    local status=0
    wait "$STOQ_PID" || status=$?
    die "stoq node-1 exited unexpectedly (status $status); see $LOGS/stoq-node-1.log"
}

main "$@"
