#!/usr/bin/env bash
# Installs what the DNS part of `trustchain bench` measures with and against:
#   - dnsperf (Debian package), the load generator;
#   - the stock hickory-dns 0.26.3 server from crates.io, built with
#     `cargo install --locked` into .bench-tools/ in the repository
#     (.bench-tools/bin/hickory-dns, where the bench looks first).
# Both steps are skipped when already done, so the script can be re-run.
#
# Usage: deploy/bench-dns.sh [--check] [--run]
#   --check  only report what is installed; exit 1 if something is missing
#   --run    then run the DNS part: cargo run --release -p trustchain -- bench --only dns
# Environment:
#   HICKORY_TARGET_DIR  cargo's build directory for hickory-dns, kept between
#                       runs (default ${TMPDIR:-/tmp}/hickory-dns-target);
#                       building it the first time takes several minutes
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS="$ROOT/.bench-tools"
HICKORY_VERSION=0.26.3
HICKORY_BIN="$TOOLS/bin/hickory-dns"
HICKORY_TARGET_DIR=${HICKORY_TARGET_DIR:-${TMPDIR:-/tmp}/hickory-dns-target}
CHECK=0
RUN=0

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
        --check) CHECK=1 ;;
        --run) RUN=1 ;;
        -h | --help)
            usage
            exit 0
            ;;
        *) die "unknown argument $1 (see --help)" ;;
        esac
        shift
    done
}

have_dnsperf() { command -v dnsperf >/dev/null 2>&1; }

# The installed hickory-dns version, or nothing.
hickory_version() {
    [ -x "$HICKORY_BIN" ] || return 0
    "$HICKORY_BIN" --version 2>/dev/null | awk '{print $NF}'
}

install_dnsperf() {
    if have_dnsperf; then
        log "dnsperf: $(command -v dnsperf) (already installed)"
        return
    fi
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || die "dnsperf is missing and this is not root: run 'apt-get install -y dnsperf' as root"
        sudo=(sudo)
    fi
    command -v apt-get >/dev/null 2>&1 || die "dnsperf is missing and there is no apt-get: install dnsperf with your package manager"
    log "dnsperf: apt-get install -y dnsperf"
    if ! "${sudo[@]}" apt-get install -y dnsperf; then
        log "dnsperf: refreshing the package lists first"
        "${sudo[@]}" apt-get update
        "${sudo[@]}" apt-get install -y dnsperf
    fi
    have_dnsperf || die "dnsperf was installed but is not in PATH"
}

install_hickory() {
    if [ "$(hickory_version)" = "$HICKORY_VERSION" ]; then
        log "hickory-dns: $HICKORY_BIN $HICKORY_VERSION (already installed)"
        return
    fi
    command -v cargo >/dev/null 2>&1 || die "cargo is needed to build hickory-dns (install Rust with rustup)"
    log "hickory-dns: cargo install hickory-dns --version $HICKORY_VERSION --locked --root $TOOLS"
    log "  (build directory $HICKORY_TARGET_DIR; the first build takes several minutes)"
    CARGO_TARGET_DIR="$HICKORY_TARGET_DIR" cargo install hickory-dns \
        --version "$HICKORY_VERSION" --locked --root "$TOOLS"
    [ "$(hickory_version)" = "$HICKORY_VERSION" ] || die "$HICKORY_BIN does not report version $HICKORY_VERSION"
}

check() {
    local missing=0
    if have_dnsperf; then
        log "dnsperf: $(command -v dnsperf)"
    else
        log "dnsperf: missing"
        missing=1
    fi
    local v
    v=$(hickory_version)
    if [ "$v" = "$HICKORY_VERSION" ]; then
        log "hickory-dns: $HICKORY_BIN $v"
    elif [ -n "$v" ]; then
        log "hickory-dns: $HICKORY_BIN is $v, not $HICKORY_VERSION"
        missing=1
    else
        log "hickory-dns: missing ($HICKORY_BIN)"
        missing=1
    fi
    return "$missing"
}

main() {
    parse_args "$@"
    if [ "$CHECK" -eq 1 ]; then
        check || die "something is missing: run deploy/bench-dns.sh without --check"
    else
        install_dnsperf
        install_hickory
    fi
    if [ "$RUN" -eq 1 ]; then
        cd "$ROOT"
        log "cargo run --release -p trustchain -- bench --only dns"
        cargo run --release -p trustchain -- bench --only dns
    else
        log "ready: cargo run --release -p trustchain -- bench --only dns"
    fi
}

main "$@"
