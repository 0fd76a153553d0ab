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
