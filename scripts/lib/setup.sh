# Shared set-up for scripts/demo and scripts/test: a local virtual environment with panoflow installed.
# Sourced, not run. Safe to call repeatedly: it refreshes what is already there.

PANOFLOW_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${PANOFLOW_VENV:-$PANOFLOW_ROOT/.venv}"
PYTHON="${PANOFLOW_PYTHON:-python3}"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# apt packages, installed only when missing; needs root (or sudo) and apt-get.
ensure_apt() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  if ! command -v apt-get >/dev/null; then
    say "cannot install ${missing[*]}: no apt-get here; tests that need them will be skipped"
    return 0
  fi
  say "installing system packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The virtual environment with panoflow (editable) and the given extras.
ensure_venv() {
  local extras="$1"
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating virtual environment $VENV"
    "$PYTHON" -m venv "$VENV"
  fi
  say "installing panoflow${extras} into $VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$PANOFLOW_ROOT$extras" 2>&1 \
    | grep -v "^WARNING: Location" || true
  "$VENV/bin/panoflow" --version >/dev/null
}

# A private, throw-away PostgreSQL cluster for the control plane's store tests, under .cache/postgres: it listens on
# 127.0.0.1 (a fixed unusual port, the next free one if that is busy) and on a unix socket inside the cache, and is
# reused while it runs. initdb refuses to run as root, so as root the cluster belongs to the `postgres` user. Exports
# PANOFLOW_TEST_POSTGRES (a URL with a generated password); without PostgreSQL it says so and exports nothing, and
# the PostgreSQL variants of the tests are skipped (failed under CI).
ensure_postgres() {
  local bin
  bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
  if [ -z "$bin" ]; then
    ensure_apt postgresql
    bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
  fi
  if [ -z "$bin" ] || [ ! -x "$bin/pg_ctl" ]; then
    say "no PostgreSQL server found: the control plane's PostgreSQL tests will be skipped"
    return 0
  fi
  local dir="$PANOFLOW_ROOT/.cache/postgres"
  local data="$dir/data" sock="$dir/run" logs="$dir/log" owner
  owner="$(id -un)"
  [ "$(id -u)" -eq 0 ] && owner=postgres
  as_owner() { if [ "$owner" = "$(id -un)" ]; then "$@"; else runuser -u "$owner" -- "$@"; fi; }
  mkdir -p "$dir"
  [ -s "$dir/password" ] || (umask 077 && head -c 18 /dev/urandom | base64 | tr '+/' 'xy' >"$dir/password")
  mkdir -p "$data" "$sock" "$logs"
  chown "$owner" "$data" "$sock" "$logs"
  chmod 700 "$data"
  if [ ! -s "$data/PG_VERSION" ]; then
    say "creating a PostgreSQL cluster in $data"
    # Local socket connections are trusted (the socket directory is private); TCP needs the generated password.
    as_owner "$bin/initdb" -D "$data" -U panoflow -E UTF8 --locale=C.UTF-8 --auth-local=trust \
      --auth-host=scram-sha-256 --no-sync >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; say "initdb failed (log above)"; return 1; }
  fi
  local port=""
  if as_owner "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    port="$(sed -n 4p "$data/postmaster.pid")"
  else
    local p
    for p in 54329 54339 54349 54359 54369; do
      if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port="$p"; break; fi
    done
    [ -n "$port" ] || { say "no free port for PostgreSQL (tried 54329..54369)"; return 1; }
    say "starting PostgreSQL on 127.0.0.1:$port"
    # A throw-away cluster: durability off for speed.
    as_owner "$bin/pg_ctl" -D "$data" -l "$logs/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $sock -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
      start >/dev/null || { tail -n 20 "$logs/server.log" >&2; say "PostgreSQL did not start (log above)"; return 1; }
  fi
  local psql=("$bin/psql" -X -q -h "$sock" -p "$port" -U panoflow -d postgres -v ON_ERROR_STOP=1)
  as_owner "${psql[@]}" -c "ALTER ROLE panoflow PASSWORD '$(cat "$dir/password")'" >/dev/null
  if [ "$(as_owner "${psql[@]}" -Atc "SELECT 1 FROM pg_database WHERE datname = 'panoflow_test'")" != 1 ]; then
    as_owner "${psql[@]}" -c "CREATE DATABASE panoflow_test" >/dev/null
  fi
  export PANOFLOW_TEST_POSTGRES="postgresql://panoflow:$(cat "$dir/password")@127.0.0.1:$port/panoflow_test"
  say "PostgreSQL ready: postgresql://panoflow:***@127.0.0.1:$port/panoflow_test (PANOFLOW_TEST_POSTGRES)"
}

# What application sandboxes need from the host (docs/isolation.md): bubblewrap and pasta (Debian packages; nftables
# so that an app reaches its own hostPort at the device's address), a
# usable /dev/net/tun for pasta's user-mode network (Debian's udev makes it 0666; some container images ship it
# 0600), and an interpreter the unprivileged sandbox uid can reach: when panoflow's Python lives under a private
# home (pyenv in /root), its ancestors get the traverse bit only (o+x: no listing, nothing readable by name that
# was not already world-readable).
ensure_sandbox_host() {
  ensure_apt bubblewrap passt nftables
  [ "$(id -u)" -eq 0 ] || return 0
  if [ -c /dev/net/tun ] && [ "$(stat -c %a /dev/net/tun)" != 666 ]; then
    say "making /dev/net/tun usable by unprivileged sandboxes (0666, as Debian's udev does)"
    chmod 0666 /dev/net/tun
  fi
  local prefix dir
  for prefix in "$("$PYTHON" -c 'import sys; print(sys.base_prefix)')" "$VENV"; do
    dir="$(realpath "$prefix")"
    while [ "$dir" != "/" ]; do
      if [ "$(( 0$(stat -c %a "$dir") & 1 ))" -eq 0 ]; then
        say "letting sandboxed applications reach the interpreter: chmod o+x $dir"
        chmod o+x "$dir"
      fi
      dir="$(dirname "$dir")"
    done
  done
}
