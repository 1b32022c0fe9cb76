#!/usr/bin/env bash
# check_layers.sh — the folders are layers (docs/ARCHITECTURE.md): a file may include
# headers of its own folder and of lower layers only. Prints each upward include and
# fails if there is one. Run from anywhere; CTest runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
rank() {
  case "$1" in
    src/base) echo 0 ;;
    grammar|src) echo 1 ;;   # the SQL compiler (one layer, two folders)
    gpu) echo 1 ;;           # the GGUF engine
    runtime) echo 2 ;;
    operators|connectors) echo 3 ;;
    engine) echo 4 ;;
    src/cli) echo 5 ;;
    *) echo -1 ;;
  esac
}
declare -A home
for d in src/base grammar src gpu runtime operators connectors engine src/cli; do
  for h in "$d"/*.h "$d"/*.cuh; do [ -e "$h" ] && home[$(basename "$h")]=$d; done
done
bad=0
for d in src/base grammar src gpu runtime operators connectors engine src/cli; do
  r=$(rank "$d")
  for f in "$d"/*.c "$d"/*.h "$d"/*.cpp "$d"/*.cu "$d"/*.cuh "$d"/*.re "$d"/*.y; do
    [ -e "$f" ] || continue
    while read -r inc; do
      hd=${home[$inc]:-}
      [ -n "$hd" ] || continue
      [ "$hd" = "$d" ] && continue
      hr=$(rank "$hd")
      ok=0
      if [ "$hr" -lt "$r" ]; then ok=1; fi
      if [ "$hr" -eq "$r" ] && { [ "$d" = src ] || [ "$d" = grammar ]; } && { [ "$hd" = src ] || [ "$hd" = grammar ]; }; then ok=1; fi
      if [ $ok = 0 ]; then echo "upward include: $f includes $inc ($hd)"; bad=1; fi
    done < <(grep -ho '#include "[^"]*"' "$f" | sed 's/#include "\(.*\)"/\1/')
  done
done
if [ $bad = 0 ]; then echo "layers: every include points down"; fi
exit $bad
