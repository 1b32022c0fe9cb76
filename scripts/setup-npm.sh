#!/usr/bin/env bash
# setup-npm.sh — installs the npm packages the tests use, from their lock files, into the
# node_modules of each tests/<dir>/ that has a package-lock.json (never at test time):
# tests/pg (the PostgreSQL driver `pg`, tests/pg/run.sh), tests/use (the TF.js reference of the
# sentence encoder, tests/use/run.sh), and any other such folder.
# Idempotent: a folder whose lock file has not changed since its last install is skipped
# (the lock file's hash is kept in node_modules/.installed-lock). Needs npm.
set -euo pipefail
cd "$(dirname "$0")/.."
for lock in tests/*/package-lock.json; do
  [ -e "$lock" ] || continue
  dir=$(dirname "$lock")
  want=$(sha256sum "$lock" | cut -d' ' -f1)
  have=$(cat "$dir/node_modules/.installed-lock" 2>/dev/null || true)
  if [ "$want" = "$have" ]; then
    echo "setup-npm: $dir: up to date"
    continue
  fi
  echo "setup-npm: $dir: npm ci"
  (cd "$dir" && npm ci --no-audit --no-fund --silent)
  echo "$want" >"$dir/node_modules/.installed-lock"
done
