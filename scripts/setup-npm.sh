#!/usr/bin/env bash
# setup-npm.sh — installs the npm packages the tests use, from the lock files, into each
# package's node_modules (never at test time): tests/sdk (the official OpenAI SDK, `openai`,
# which tests/sdk/run.sh drives `semstream worker` with). Idempotent: does nothing when the
# locked versions are installed. Needs npm.
set -euo pipefail
cd "$(dirname "$0")/.."
for dir in tests/sdk; do
  want=$(sed -n 's/.*"openai": "\([0-9.]*\)".*/\1/p' "$dir/package.json" | head -1)
  have=$(sed -n 's/^  "version": "\([0-9.]*\)".*/\1/p' "$dir/node_modules/openai/package.json" 2>/dev/null || true)
  if [ -n "$want" ] && [ "$want" = "$have" ]; then
    echo "setup-npm: $dir: openai $have present"
    continue
  fi
  echo "setup-npm: $dir: npm ci"
  (cd "$dir" && npm ci --no-audit --no-fund --silent)
done
