#!/usr/bin/env bash
# Install the pinned agent CLIs that Obra's tests drive, into a project-local prefix.
#
#   tests/install-agent-clis.sh            # install (or confirm) the pinned Claude Code, Codex and Aider CLIs
#                                          # and pytest (the test command the e2e tests' agents run)
#
# Prefix: $OBRA_TOOLS_DIR, default <repo>/target/agent-clis. The binary ends up in $PREFIX/bin/claude,
# where the test kit (tests/support/claude.rs) looks for it. Idempotent: does nothing if the pinned
# version is already installed there. Versions are pinned in tests/agent-cli-versions.env.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
# shellcheck source=agent-cli-versions.env
source "$here/agent-cli-versions.env"

prefix="${OBRA_TOOLS_DIR:-$repo/target/agent-clis}"
mkdir -p "$prefix"
prefix="$(cd "$prefix" && pwd)"

command -v npm >/dev/null 2>&1 || { echo "error: npm not found; install Node.js 18+ (node 20 is known to work)" >&2; exit 1; }

installed_version() {
    local pkg_json="$prefix/lib/node_modules/$CLAUDE_CODE_PACKAGE/package.json"
    [ -f "$pkg_json" ] || return 0
    node -e 'process.stdout.write(require(process.argv[1]).version || "")' "$pkg_json" 2>/dev/null || true
}

claude_bin="$prefix/bin/claude"
current="$(installed_version)"
if [ "$current" = "$CLAUDE_CODE_VERSION" ] && [ -x "$claude_bin" ]; then
    echo "claude-code $CLAUDE_CODE_VERSION already installed"
else
    echo "installing $CLAUDE_CODE_PACKAGE@$CLAUDE_CODE_VERSION into $prefix (found: ${current:-none})"
    npm install --global --prefix "$prefix" --no-fund --no-audit --loglevel=error \
        "$CLAUDE_CODE_PACKAGE@$CLAUDE_CODE_VERSION"
fi

# Sanity check: the binary runs and reports the pinned version.
reported="$(DISABLE_AUTOUPDATER=1 "$claude_bin" --version </dev/null 2>/dev/null | head -n1 || true)"
case "$reported" in
    "$CLAUDE_CODE_VERSION"*) ;;
    *) echo "error: $claude_bin reports '$reported', expected $CLAUDE_CODE_VERSION" >&2; exit 1 ;;
esac
echo "claude: $claude_bin ($reported)"
echo "tests find it there automatically; or export OBRA_CLAUDE_BIN=$claude_bin"

# --- OpenAI Codex CLI (npm) ---
codex_pkg_json="$prefix/lib/node_modules/$CODEX_PACKAGE/package.json"
codex_current=""
[ -f "$codex_pkg_json" ] && codex_current="$(node -e 'process.stdout.write(require(process.argv[1]).version || "")' "$codex_pkg_json" 2>/dev/null || true)"
if [ "$codex_current" = "$CODEX_VERSION" ] && [ -x "$prefix/bin/codex" ]; then
    echo "codex $CODEX_VERSION already installed"
else
    echo "installing $CODEX_PACKAGE@$CODEX_VERSION into $prefix (found: ${codex_current:-none})"
    npm install --global --prefix "$prefix" --no-fund --no-audit --loglevel=error "$CODEX_PACKAGE@$CODEX_VERSION"
fi
codex_reported="$("$prefix/bin/codex" --version </dev/null 2>/dev/null | head -n1 || true)"
case "$codex_reported" in
    *"$CODEX_VERSION"*) ;;
    *) echo "error: $prefix/bin/codex reports '$codex_reported', expected $CODEX_VERSION" >&2; exit 1 ;;
esac
echo "codex: $prefix/bin/codex ($codex_reported)"

# --- Aider (PyPI, in its own virtualenv) ---
venv="$prefix/aider-venv"
aider_current="$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("aider-chat"))' 2>/dev/null || true)"
if [ "$aider_current" = "$AIDER_VERSION" ] && [ -x "$venv/bin/aider" ]; then
    echo "aider $AIDER_VERSION already installed"
else
    command -v python3 >/dev/null 2>&1 || { echo "error: python3 not found; install Python 3.10-3.12" >&2; exit 1; }
    echo "installing $AIDER_PACKAGE==$AIDER_VERSION into $venv (found: ${aider_current:-none})"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$AIDER_PACKAGE==$AIDER_VERSION"
fi
mkdir -p "$prefix/bin"
ln -sf "$venv/bin/aider" "$prefix/bin/aider"
aider_reported="$(LITELLM_LOCAL_MODEL_COST_MAP=True "$prefix/bin/aider" --version </dev/null 2>/dev/null | tail -n1 || true)"
case "$aider_reported" in
    *"$AIDER_VERSION"*) ;;
    *) echo "error: $prefix/bin/aider reports '$aider_reported', expected $AIDER_VERSION" >&2; exit 1 ;;
esac
echo "aider: $prefix/bin/aider ($aider_reported)"

# --- pytest (PyPI, in its own virtualenv): the test command the agents run in the e2e tests ---
pytest_venv="$prefix/pytest-venv"
pytest_current="$("$pytest_venv/bin/python" -c 'import importlib.metadata as m; print(m.version("pytest"))' 2>/dev/null || true)"
if [ "$pytest_current" = "$PYTEST_VERSION" ] && [ -x "$pytest_venv/bin/pytest" ]; then
    echo "pytest $PYTEST_VERSION already installed"
else
    command -v python3 >/dev/null 2>&1 || { echo "error: python3 not found; install Python 3.9+" >&2; exit 1; }
    echo "installing $PYTEST_PACKAGE==$PYTEST_VERSION into $pytest_venv (found: ${pytest_current:-none})"
    rm -rf "$pytest_venv"
    python3 -m venv "$pytest_venv"
    "$pytest_venv/bin/pip" install --quiet --disable-pip-version-check "$PYTEST_PACKAGE==$PYTEST_VERSION"
fi
ln -sf "$pytest_venv/bin/pytest" "$prefix/bin/pytest"
pytest_reported="$("$prefix/bin/pytest" --version 2>&1 </dev/null | head -n1 || true)"
case "$pytest_reported" in
    *"$PYTEST_VERSION"*) ;;
    *) echo "error: $prefix/bin/pytest reports '$pytest_reported', expected $PYTEST_VERSION" >&2; exit 1 ;;
esac
echo "pytest: $prefix/bin/pytest ($pytest_reported)"
