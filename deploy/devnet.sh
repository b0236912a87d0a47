#!/usr/bin/env bash
# Local devnet on the IPv6 loopback [::1].
#
# The devnet is: build; a TrustChain CA of 3 members (2-of-3) with its
# transparency logs, HTTP views and DNS; a node enrolled with a token and
# its certificate verified against the logs; a HyperMesh chain of N
# validators (BFT consensus over STOQ, each enrolled the same way with its
# own certificate hypermesh-i.mesh), committing a transfer sent over STOQ
# to validator 1 and agreeing on the resulting state; and a STOQ server
# and client exchanging messages over a post-quantum (X25519MLKEM768 +
# FN-DSA-1024) handshake. Each component has its own functions (setup_*,
# start_*, demo_*), so that later layers (Caesar, apps) can be added the
# same way.
#
# Usage: deploy/devnet.sh [--once] [--validators N] [--port N] [--metrics-port N] [--tc-port N] [--hm-port N] [--dir DIR]
#   --once            run the demo, stop everything and exit (CI)
#   --validators N    HyperMesh validators, 1-16 (default 4); a chain kept
#                     from a run with other validators is replaced
#   --port N          QUIC port of the STOQ node-1 (default 4433)
#   --metrics-port N  Prometheus /metrics port of node-1 (default 9464)
#   --tc-port N       STOQ port of TrustChain member 0 (default 7400; member
#                     i uses N+i, HTTP N+80+i, DNS N-2047+i, DoQ N+1453+i)
#   --hm-port N       STOQ port of HyperMesh validator 1 (default 7600;
#                     validator i uses N+i-1, its JSON-RPC and /metrics
#                     N+80+i-1)
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
HM_VALIDATORS=4
# Leaves (log2) of each validator's storage plot: 2^20 x 32 bytes = 64 MiB.
HM_PLOT_LOG2=20

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
            --validators)
                [ $# -ge 2 ] || die "--validators needs a number"
                HM_VALIDATORS=$2
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
    [[ "$HM_VALIDATORS" =~ ^[0-9]+$ ]] && [ "$HM_VALIDATORS" -ge 1 ] && [ "$HM_VALIDATORS" -le 16 ] ||
        die "invalid --validators $HM_VALIDATORS (1-16)"
    HM_HTTP_PORT=$((HM_PORT + 80))
    HM_NVAL="$HM_VALIDATORS validators"
    [ "$HM_VALIDATORS" != 1 ] || HM_NVAL="1 validator"
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

# hm_dir I: the directory of validator I (1-based).
hm_dir() {
    printf '%s/node-%s' "$HMDIR" "$1"
}

# hm_state_problem: prints why the HyperMesh state kept in $HMDIR cannot
# be resumed with the current validators (nothing if it can): the shared
# genesis must exist in the current format and list exactly the keys of
# node-1..node-N.
hm_state_problem() {
    local g="$HMDIR/genesis.toml" i key want have
    if [ -e "$HMDIR/hypermesh.toml" ] || [ -e "$HMDIR/node.key" ]; then
        echo "it has the single-node layout of an older devnet"
        return 0
    fi
    if [ ! -f "$g" ]; then
        echo "it has no genesis (an interrupted setup?)"
        return 0
    fi
    if ! grep -q '^\[consensus\]' "$g" || ! "$HM" --log warn genesis --show --out "$g" >/dev/null 2>&1; then
        echo "its genesis is in an older format"
        return 0
    fi
    if ! grep -qx "plot_log2_leaves = $HM_PLOT_LOG2" "$g"; then
        echo "its genesis has plots of another size"
        return 0
    fi
    want=""
    for i in $(seq 1 "$HM_VALIDATORS"); do
        key="$(hm_dir "$i")/node.key"
        if [ ! -f "$key" ]; then
            echo "validator $i has no key"
            return 0
        fi
        want+="$("$HM" --log warn keys show "$key" | sed -n 's/^account //p')"$'\n'
    done
    want=$(printf '%s' "$want" | sort)
    have=$(awk '/^\[/ { section = $0; next }
        section == "[[validators]]" && $1 == "account" { gsub(/"/, "", $3); print $3 }' "$g" | sort)
    if [ "$have" != "$want" ]; then
        echo "its genesis lists $(printf '%s\n' "$have" | grep -c .) validators, not exactly the keys of node-1..node-$HM_VALIDATORS"
    fi
}

# setup_hypermesh: per validator i, its key (kept), a fresh certificate for
# hypermesh-i.mesh from TrustChain (every run) and a config listing the
# other validators as peers; a wallet and one genesis with every validator
# (equal stakes) funding it (kept: the chain resumes where the last run
# stopped). A kept state that does not match the validators is replaced.
setup_hypermesh() {
    HMDIR="$DEVNET_DIR/hypermesh"
    local i j token dir cfg problem
    local -a peers validators
    if [ -d "$HMDIR" ] && [ -n "$(ls -A "$HMDIR")" ]; then
        problem=$(hm_state_problem)
        if [ -n "$problem" ]; then
            log "HyperMesh: $HMDIR cannot be resumed with $HM_NVAL ($problem): removing it and starting a new chain"
            rm -rf "$HMDIR"
        else
            log "HyperMesh: resuming the chain of $HM_NVAL kept in $HMDIR"
        fi
    fi
    mkdir -p "$HMDIR"
    log "HyperMesh: enrolling $HM_NVAL with TrustChain"
    for i in $(seq 1 "$HM_VALIDATORS"); do
        dir=$(hm_dir "$i")
        cfg="$dir/hypermesh.toml"
        # A config written for other ports (another --hm-port) is written again.
        if [ -f "$cfg" ] && ! { grep -qxF "listen = \"[::1]:$((HM_PORT + i - 1))\"" "$cfg" &&
            grep -qxF "http_listen = \"[::1]:$((HM_HTTP_PORT + i - 1))\"" "$cfg"; }; then
            log "HyperMesh: validator $i's ports changed: writing its config again"
            rm -f "$cfg"
        fi
        peers=()
        for j in $(seq 1 "$HM_VALIDATORS"); do
            [ "$j" = "$i" ] || peers+=(--peer "[::1]:$((HM_PORT + j - 1))=hypermesh-$j.mesh")
        done
        token=$("$TC" --log warn token create --bundle "$TCDIR/bundle.toml" --admin-key "$TCDIR/admin.key" \
            --names "hypermesh-$i.mesh" --ttl 10m) || die "token creation for HyperMesh validator $i failed"
        "$HM" --log warn init --dir "$dir" --bundle "$TCDIR/bundle.toml" --token "$token" --name "hypermesh-$i" \
            --listen "[::1]:$((HM_PORT + i - 1))" --http "[::1]:$((HM_HTTP_PORT + i - 1))" ${peers[@]+"${peers[@]}"} \
            2>&1 | sed 's/^/    /' || die "enrollment of HyperMesh validator $i failed (see $LOGS/trustchain-*.log)"
    done
    [ -f "$HMDIR/wallet.key" ] || "$HM" --log warn keys new "$HMDIR/wallet.key" | sed 's/^/    /'
    [ -f "$HMDIR/bob.key" ] || "$HM" --log warn keys new "$HMDIR/bob.key" | sed 's/^/    /'
    if [ ! -f "$HMDIR/genesis.toml" ]; then
        validators=()
        for i in $(seq 1 "$HM_VALIDATORS"); do
            validators+=(--validator "$(hm_dir "$i")/node.key=1000000@::1")
        done
        log "HyperMesh: genesis of $HM_NVAL (computing their plot roots)"
        "$HM" --log warn genesis --out "$HMDIR/genesis.toml" --plot-log2-leaves "$HM_PLOT_LOG2" \
            "${validators[@]}" --balance "$HMDIR/wallet.key=1000000000" 2>&1 | sed 's/^/    /' ||
            die "writing the HyperMesh genesis failed"
    fi
    for i in $(seq 1 "$HM_VALIDATORS"); do
        cp "$HMDIR/genesis.toml" "$(hm_dir "$i")/genesis.toml"
    done
}

# start_hypermesh: every validator at once (each creates its storage plot
# at its first start), then waits for each to listen.
start_hypermesh() {
    local i
    HM_PIDS=()
    log "HyperMesh: starting $HM_NVAL (STOQ from [::1]:$HM_PORT, HTTP from [::1]:$HM_HTTP_PORT)"
    for i in $(seq 1 "$HM_VALIDATORS"); do
        start "hypermesh validator $i" "$LOGS/hypermesh-$i" "$HM" start --config "$(hm_dir "$i")/hypermesh.toml"
        HM_PIDS+=("${PIDS[-1]}")
    done
    for i in $(seq 1 "$HM_VALIDATORS"); do
        wait_for_line "${HM_PIDS[$((i - 1))]}" "$LOGS/hypermesh-$i.out" '^hypermesh node .* listening on ' \
            "hypermesh validator $i"
        sed 's/^/    /' "$LOGS/hypermesh-$i.out"
    done
}

# hm_height I: the height of validator I's last block (`query status`).
hm_height() {
    "$HM" --log warn query status --config "$(hm_dir "$1")/hypermesh.toml" 2>/dev/null |
        sed -n 's/^height \([0-9]*\) .*/\1/p'
}

# demo_hypermesh: a transfer from the wallet, signed, with its proof of
# work, submitted over STOQ to validator 1 and committed by consensus;
# then the account, the block, and every validator's view of that block.
demo_hypermesh() {
    log "HyperMesh: a transfer over STOQ to validator 1, committed by consensus"
    local cfg i deadline out height tip hash root first="" agree=1
    cfg="$(hm_dir 1)/hypermesh.toml"
    if ! out=$("$HM" --log warn tx send --config "$cfg" --key "$HMDIR/wallet.key" --to "$HMDIR/bob.key" \
        --amount 25 2>&1); then
        printf '%s\n' "$out" | sed 's/^/    /' >&2
        die "the transfer failed (see $LOGS/hypermesh-*.log)"
    fi
    printf '%s\n' "$out" | sed 's/^/    /'
    height=$(printf '%s\n' "$out" | sed -n 's/^committed in block \([0-9]*\).*/\1/p')
    [ -n "$height" ] || die "the transfer's block is not in its output"
    "$HM" --log warn query account "$HMDIR/bob.key" --config "$cfg" | sed 's/^/    /' || die "query failed"
    "$HM" --log warn block "$height" --config "$cfg" | sed 's/^/    /' || die "block query failed"

    log "HyperMesh: every validator at height $height or above, with the same block and state"
    for i in $(seq 1 "$HM_VALIDATORS"); do
        deadline=$((SECONDS + 60))
        while :; do
            tip=$(hm_height "$i")
            [ -n "$tip" ] && [ "$tip" -ge "$height" ] && break
            [ "$SECONDS" -lt "$deadline" ] ||
                die "validator $i did not reach height $height within 60 s (at ${tip:-?}; see $LOGS/hypermesh-$i.log)"
            sleep 0.5
        done
        out=$("$HM" --log warn block "$height" --config "$(hm_dir "$i")/hypermesh.toml") ||
            die "validator $i has no block $height (see $LOGS/hypermesh-$i.log)"
        hash=$(printf '%s\n' "$out" | sed -n "s/^block $height \([0-9a-f]*\)$/\1/p")
        root=$(printf '%s\n' "$out" | sed -n 's/^  state root *\([0-9a-f]*\)$/\1/p')
        printf '    %-18s at height %s; block %s %s, state root %s\n' "hypermesh-$i.mesh" "$tip" "$height" "$hash" "$root"
        [ -n "$first" ] || first="$hash $root"
        [ "$hash $root" = "$first" ] || agree=0
    done
    [ "$agree" = 1 ] || die "the validators disagree on block $height"
    log "HyperMesh: block $height and its state root are the same on $HM_NVAL"
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

# hm_summary: one line per validator.
hm_summary() {
    local i
    for i in $(seq 1 "$HM_VALIDATORS"); do
        printf '    validator %-6squic://[::1]:%s (hypermesh-%s.mesh), JSON-RPC and metrics http://[::1]:%s, config %s\n' \
            "$i" "$((HM_PORT + i - 1))" "$i" "$((HM_HTTP_PORT + i - 1))" "$(hm_dir "$i")/hypermesh.toml"
    done
}

summary() {
    cat <<EOF
==> devnet is up
    TrustChain      members quic://[::1]:$TC_PORT..$((TC_PORT + TC_MEMBERS - 1)) (2 of $TC_MEMBERS sign)
                    log and metrics http://[::1]:$((TC_PORT + 80))/log/checkpoint, /metrics
                    DNS [::1]:$((TC_PORT - 2047)) (udp/tcp), DoQ [::1]:$((TC_PORT + 1453)); try: dig @::1 -p $((TC_PORT - 2047)) AAAA node-1.mesh
                    bundle $TCDIR/bundle.toml, admin key $TCDIR/admin.key
    HyperMesh       $HM_NVAL (BFT), genesis $HMDIR/genesis.toml, wallet $HMDIR/wallet.key
$(hm_summary)
                    try: $HM query status --config $HMDIR/node-1/hypermesh.toml
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
