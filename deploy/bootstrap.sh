#!/usr/bin/env bash
# Makes a fresh Debian-like machine ready to run Caseway's local stack and tests, without Docker:
#   - OpenJDK 17, Maven and PostgreSQL 15 (with the contrib extensions cube and earthdistance), installed
#     with apt-get only when missing;
#   - uv (pip --user) when missing, then the workspace's Python environment from uv.lock (uv sync --frozen).
# Idempotent, and quick (well under a second) when everything is already there. Run from anywhere:
#   bash deploy/bootstrap.sh
# CASEWAY_BOOTSTRAP_DRY_RUN=1 only says which system packages it would install.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf 'bootstrap: %s\n' "$*"; }
die() { printf 'bootstrap: error: %s\n' "$*" >&2; exit 1; }

export PATH="$HOME/.local/bin:$PATH"

# --- what is missing ------------------------------------------------------------------------------
packages=()

java_major() {
  # `openjdk version "17.0.15" 2025-04-15` -> 17 (and "1.8.0_x" -> 1)
  java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n 1
}
java_version=""
if ! command -v java >/dev/null 2>&1; then
  packages+=(openjdk-17-jre-headless)
else
  java_version="$(java_major)"
  if [ "${java_version:-0}" -lt 17 ]; then
    say "java ${java_version:-?} is too old for Kafka 4 (needs 17+): installing OpenJDK 17"
    packages+=(openjdk-17-jre-headless)
  fi
fi
command -v mvn >/dev/null 2>&1 || packages+=(maven)

pg_bin=""
for dir in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin; do
  if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then pg_bin="$dir"; break; fi
done
[ -n "$pg_bin" ] || packages+=(postgresql-15)
if ! compgen -G "/usr/share/postgresql/*/extension/earthdistance.control" >/dev/null; then
  packages+=(postgresql-contrib)
fi

# Headless Chromium for the staff pages' browser tests (driven by Playwright at this executable; nothing
# is downloaded by Playwright itself).
command -v chromium >/dev/null 2>&1 || packages+=(chromium)

if ! command -v uv >/dev/null 2>&1 && ! python3 -m pip --version >/dev/null 2>&1; then
  packages+=(python3-pip)
fi

# --- system packages, only those missing ----------------------------------------------------------
if [ "${#packages[@]}" -gt 0 ] && [ "${CASEWAY_BOOTSTRAP_DRY_RUN:-0}" = 1 ]; then
  say "would install: ${packages[*]}"
  exit 0
fi
if [ "${#packages[@]}" -gt 0 ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "need root (or sudo) to install: ${packages[*]}"
    sudo="sudo"
  fi
  command -v apt-get >/dev/null 2>&1 || die "no apt-get here; install by hand: ${packages[*]}"
  had_main_cluster=no
  [ -d /etc/postgresql/15/main ] && had_main_cluster=yes
  say "installing: ${packages[*]}"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}"
  # Debian's postgresql package creates and starts its own cluster "15 main" on port 5432, the port
  # the stack's own cluster listens on. When this run created it, stop it and keep it from starting
  # at boot (`pg_ctlcluster 15 main start` still starts it by hand).
  if [ "$had_main_cluster" = no ] && [ -d /etc/postgresql/15/main ]; then
    $sudo pg_ctlcluster 15 main stop 2>/dev/null || true
    echo manual | $sudo tee /etc/postgresql/15/main/start.conf >/dev/null
    say "stopped Debian's own cluster 15/main (set to start manually) so that port 5432 stays free"
  fi
  for dir in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin; do
    if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then pg_bin="$dir"; break; fi
  done
fi

command -v java >/dev/null 2>&1 || die "java is still missing"
[ "${#packages[@]}" -eq 0 ] || java_version="$(java_major)"
command -v mvn >/dev/null 2>&1 || die "mvn is still missing"
[ -n "$pg_bin" ] || die "PostgreSQL's initdb/pg_ctl are still missing (looked in /usr/lib/postgresql/*/bin)"
compgen -G "/usr/share/postgresql/*/extension/earthdistance.control" >/dev/null \
  || die "the earthdistance extension is missing (package postgresql-contrib)"
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
  die "running as root, the stack runs PostgreSQL as the 'postgres' OS user, which does not exist"
fi

# --- uv and the Python environment ---------------------------------------------------------------
if ! command -v uv >/dev/null 2>&1; then
  say "installing uv (pip --user)"
  # Debian's own Python refuses user installs (PEP 668) unless told that this is intended.
  python3 -m pip install --user --quiet uv 2>/dev/null \
    || python3 -m pip install --user --quiet --break-system-packages uv
  command -v uv >/dev/null 2>&1 || die "uv was installed but is not on PATH (expected in ~/.local/bin)"
fi
uv sync --frozen --quiet

say "ready: java ${java_version}, $(command -v mvn), PostgreSQL in ${pg_bin}, uv at $(command -v uv)"
say "next: uv run caseway stack up"
