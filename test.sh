#!/usr/bin/env bash
# Every test: installs what the tests need, then runs `cargo test --workspace`.
#
#   ./test.sh                       # every test of the workspace
#   ./test.sh -p edgestore --lib    # arguments go to `cargo test` (with -p, only that package)
#   ./test.sh --install-only        # install what the tests need, run nothing (.ci/run's first step)
#
# What the tests need besides Rust: the wasm32-wasip2 target (host/build.rs builds the plugin
# component), the `brotli` and `jq` tools (segments decoded by an independent reader), clang, lld
# and wasi-libc (the standalone component compiles the bundled SQLite for WASI), and Node.js with
# npm (jco runs the standalone component; the tests run `npm ci --prefix tests/jco` themselves).
# The ingest tests (host/tests/ingest.rs) feed `edgestore serve` from senders that are not ours:
# Prometheus with its node exporter (`prometheus`, `prometheus-node-exporter`: scrapes, then
# remote write), and the OpenTelemetry Python SDK's OTLP/HTTP exporter, pinned in a virtual
# environment at target/otel-venv (python3 with venv; created only when missing or when the
# pins change, so reruns are fast; the tests find it there, or at $EDGESTORE_OTEL_PYTHON).
# The shipping tests (host/tests/ship_s3.rs) upload segments to a real S3-protocol server and check
# them with an S3 client that is not ours: moto's server mode (`moto[server]`, in memory on a
# loopback port: conditional PUT If-None-Match, multipart uploads, user metadata, versioning to
# see every write, IAM checks switchable for the wrong-credentials test) and the AWS CLI v1
# (`awscli`), both from PyPI, pinned in a second venv at target/s3-venv (same rule: created only
# when missing or when the pins change; or the venv at $EDGESTORE_S3_VENV).
# The database encryption tests (host/tests/db_encryption.rs) open the encrypted database with
# SQLCipher 4's Python binding (`sqlcipher3-binary`), pinned in target/sqlcipher-venv (or the
# venv at $EDGESTORE_SQLCIPHER_VENV).
# As root the missing packages are installed with apt-get (Debian/Ubuntu); otherwise the script
# names them and stops.
set -euo pipefail
cd "$(dirname "$0")"
export DEBIAN_FRONTEND=noninteractive

install_only=false
if [ "${1:-}" = "--install-only" ]; then
  install_only=true
  shift
fi

if [ ! -d "$(rustc --print sysroot)/lib/rustlib/wasm32-wasip2" ]; then
  if ! command -v rustup >/dev/null 2>&1; then
    echo "test.sh: the tests need Rust's wasm32-wasip2 target: install Rust with rustup (https://rustup.rs), then run: rustup target add wasm32-wasip2" >&2
    exit 1
  fi
  rustup target add wasm32-wasip2
fi

need_apt=()
# The default build compiles SQLCipher's OpenSSL (libcrypto) from source: perl and make.
command -v perl >/dev/null 2>&1 || need_apt+=(perl)
command -v make >/dev/null 2>&1 || need_apt+=(make)
command -v brotli >/dev/null 2>&1 || need_apt+=(brotli)
command -v jq >/dev/null 2>&1 || need_apt+=(jq)
# The backup tests read restored databases with SQLite's own CLI.
command -v sqlite3 >/dev/null 2>&1 || need_apt+=(sqlite3)
# The encryption tests decrypt segments with the reference age CLI.
command -v age >/dev/null 2>&1 || need_apt+=(age)
# The standalone component compiles the bundled SQLite (C) for wasm32-wasip2.
command -v clang >/dev/null 2>&1 || need_apt+=(clang)
command -v wasm-ld >/dev/null 2>&1 || need_apt+=(lld)
[ -f /usr/include/wasm32-wasi/stdio.h ] || [ -n "${EDGESTORE_WASI_SYSROOT:-}" ] || need_apt+=(wasi-libc)
# jco (tests/jco) runs the standalone component on Node.js: the host that is not ours.
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
# Real senders for the ingest tests: Prometheus remote write, and the OpenTelemetry SDK (Python).
command -v prometheus >/dev/null 2>&1 || need_apt+=(prometheus)
command -v prometheus-node-exporter >/dev/null 2>&1 || need_apt+=(prometheus-node-exporter)
has_venv() { "$1" -c 'import ensurepip, venv' >/dev/null 2>&1; }
if ! command -v python3 >/dev/null 2>&1; then
  need_apt+=(python3 python3-venv)
elif ! has_venv python3 && ! has_venv /usr/bin/python3; then
  need_apt+=(python3-venv)
fi
if [ "${#need_apt[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "test.sh: the tests need ${need_apt[*]}: install them first, e.g. sudo apt-get install ${need_apt[*]} (Node.js 20+)" >&2
    exit 1
  fi
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}"
fi

# pinned_venv DIR PINS: a venv at DIR with exactly the packages PINS (pip requirement words),
# made anew only when it is missing or was made for other pins (DIR/.pins, written last, so an
# interrupted install is redone).
pinned_venv() {
  local dir=$1 pins=$2 python=python3
  if [ "$(cat "$dir/.pins" 2>/dev/null)" = "$pins" ]; then
    return
  fi
  has_venv "$python" || python=/usr/bin/python3
  rm -rf "$dir"
  "$python" -m venv "$dir"
  local words
  read -r -a words <<< "$pins" # split into words, no globbing (`moto[server]` is no pattern)
  "$dir/bin/pip" install -q --disable-pip-version-check "${words[@]}"
  echo "$pins" > "$dir/.pins"
}

# The OpenTelemetry SDK's OTLP/HTTP exporter at exact versions, in a venv the ingest tests run.
pinned_venv target/otel-venv "opentelemetry-sdk==1.45.2 opentelemetry-exporter-otlp-proto-http==1.45.2"
# An S3-protocol server (moto_server) and the AWS CLI (aws), in a venv the shipping tests run.
pinned_venv target/s3-venv "moto[server]==5.2.5 awscli==1.46.3"
# SQLCipher 4 for Python (its own build, with its own OpenSSL): the independent reader of the
# encrypted databases in host/tests/db_encryption.rs.
pinned_venv target/sqlcipher-venv "sqlcipher3-binary==0.6.0"

if [ "$install_only" = true ]; then
  exit 0
fi

# `--workspace` would override a package selection (cargo ignores -p beside it), so it is only
# added when the arguments select no package themselves.
selects_packages=false
for arg in "$@"; do
  case "$arg" in
    --) break ;;
    -p* | --package | --package=* | --workspace | --all | --manifest-path | --manifest-path=*)
      selects_packages=true
      ;;
  esac
done
if [ "$selects_packages" = true ]; then
  exec cargo test "$@"
fi
exec cargo test --workspace "$@"
