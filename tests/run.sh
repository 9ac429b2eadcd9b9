#!/usr/bin/env bash
# The README's test command: set up everything the tests need, then run them all.
#
#   bash tests/run.sh [ARGS...]        # ARGS go to `cargo test --workspace`, e.g. -- some_test_name
#
# What it sets up, on a fresh clone:
#   - the wasm32-wasip2 target (rustup target add) for the built-in plugins;
#   - the pinned agent CLIs (claude, codex, aider) and pytest into target/agent-clis (tests/install-agent-clis.sh);
#   - a throwaway PostgreSQL server on 127.0.0.1 (stopped when this script ends), unless
#     OBRA_TEST_POSTGRES_URL names one; it needs PostgreSQL's binaries (apt-get install postgresql);
#   - sshd must be installed (apt-get install openssh-server); the tests start their own on 127.0.0.1.
# A missing system package fails here with the command that installs it. The only way to go without a
# component is to say so: OBRA_TEST_SKIP=claude,codex,aider,pytest,sshd,postgres,tmpfs,namespaces (or all); the
# tests that needed it are skipped and listed at the end.
set -uo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"

skip() { [[ ",${OBRA_TEST_SKIP:-}," == *",$1,"* || ",${OBRA_TEST_SKIP:-}," == *",all,"* ]]; }
fail() { echo "error: $*" >&2; exit 1; }
note() { printf '=== %s\n' "$*" >&2; }

target_dir="${CARGO_TARGET_DIR:-$repo/target}"
mkdir -p "$target_dir"

# The toolchain of rust-toolchain.toml and its wasm target (targets = [...] there only applies when rustup
# installs the toolchain, not when it already has it).
if command -v rustup >/dev/null 2>&1; then
    rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2 >&2 \
        || fail "cannot add the wasm32-wasip2 target: run \`rustup target add wasm32-wasip2\`"
fi

# The pinned agent CLIs.
if skip claude && skip codex && skip aider && skip pytest; then
    note "agent CLIs: skipped (OBRA_TEST_SKIP)"
else
    note "agent CLIs (pinned, into ${OBRA_TOOLS_DIR:-target/agent-clis})"
    command -v npm >/dev/null 2>&1 || fail "npm is missing: apt-get install nodejs npm (or OBRA_TEST_SKIP=claude,codex)"
    command -v python3 >/dev/null 2>&1 || fail "python3 is missing: apt-get install python3 python3-venv (or OBRA_TEST_SKIP=aider)"
    bash tests/install-agent-clis.sh >&2 || fail "installing the pinned agent CLIs failed (output above)"
fi

# sshd for the SSH transport's tests (they start their own on 127.0.0.1 with throwaway keys).
if ! skip sshd && ! [ -x /usr/sbin/sshd ] && ! [ -x /usr/local/sbin/sshd ] && ! [ -x /sbin/sshd ]; then
    fail "sshd is not installed: apt-get install openssh-server (or OBRA_TEST_SKIP=sshd)"
fi

# A throwaway PostgreSQL, unless one is given.
pg_dir=""
stop_postgres() {
    if [ -n "$pg_dir" ] && [ -f "$pg_dir/data/postmaster.pid" ]; then
        as_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -m fast stop >/dev/null 2>&1 || true
    fi
}
trap stop_postgres EXIT
if [ -z "${OBRA_TEST_POSTGRES_URL:-}" ] && ! skip postgres; then
    pg_bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    if [ -z "$pg_bin" ] && command -v initdb >/dev/null 2>&1; then pg_bin="$(dirname "$(command -v initdb)")"; fi
    [ -n "$pg_bin" ] && [ -x "$pg_bin/initdb" ] \
        || fail "PostgreSQL is not installed: apt-get install postgresql (or OBRA_TEST_SKIP=postgres, or export OBRA_TEST_POSTGRES_URL)"
    pg_dir="$target_dir/test-postgres"
    if [ "$(id -u)" = 0 ]; then
        # initdb refuses to run as root: the cluster belongs to a system user made for it.
        id obra-pg >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin obra-pg \
            || fail "cannot create the system user obra-pg for PostgreSQL"
        as_pg() { runuser -u obra-pg -- "$@"; }
        pg_dir="$(mktemp -d /tmp/obra-test-postgres.XXXXXX)"
    else
        as_pg() { "$@"; }
    fi
    if [ -f "$pg_dir/data/postmaster.pid" ]; then
        as_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate stop >/dev/null 2>&1 || true
    fi
    rm -rf "$pg_dir/data"
    mkdir -p "$pg_dir"
    pg_password="$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
    printf '%s\n' "$pg_password" >"$pg_dir/password"
    [ "$(id -u)" = 0 ] && chown -R obra-pg "$pg_dir"
    chmod 700 "$pg_dir"
    as_pg "$pg_bin/initdb" -D "$pg_dir/data" -U obra --pwfile="$pg_dir/password" -A scram-sha-256 --no-sync \
        >"$pg_dir/initdb.log" 2>&1 || fail "initdb failed: see $pg_dir/initdb.log"
    pg_port=55432
    while (exec 3<>"/dev/tcp/127.0.0.1/$pg_port") 2>/dev/null; do pg_port=$((pg_port + 1)); done
    as_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $pg_dir -c max_connections=200 -c fsync=off" start \
        >/dev/null || fail "PostgreSQL did not start: see $pg_dir/server.log"
    export OBRA_TEST_POSTGRES_URL="postgres://obra:$pg_password@127.0.0.1:$pg_port/postgres"
    note "PostgreSQL $("$pg_bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$pg_port (stopped at the end)"
fi

export OBRA_TEST_SKIP_LOG="$target_dir/test-skips.log"
: >"$OBRA_TEST_SKIP_LOG"
note "cargo test --workspace --no-fail-fast $*"
cargo test --workspace --no-fail-fast "$@"
status=$?
if [ -s "$OBRA_TEST_SKIP_LOG" ]; then
    echo
    echo "Skipped, as OBRA_TEST_SKIP=${OBRA_TEST_SKIP:-} asked ($(wc -l <"$OBRA_TEST_SKIP_LOG") test(s)):"
    sort "$OBRA_TEST_SKIP_LOG" | sed 's/^/  /'
fi
exit $status
