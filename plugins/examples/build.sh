#!/bin/sh
# Build the example plugins from source: plugins/examples/build.sh [OUT_DIR]
# (default OUT_DIR: plugins/examples/out, ignored by git; no .wasm is ever committed).
# Needs clang with the wasm32 target and lld's wasm-ld (Debian/Ubuntu: apt-get install clang lld).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/out}
cc=${CLANG:-clang}
mkdir -p "$out"
command -v "$cc" >/dev/null 2>&1 || { echo "build.sh: $cc not found (apt-get install clang lld)" >&2; exit 127; }
flags="--target=wasm32-unknown-unknown -O2 -nostdlib -mbulk-memory -Wl,--no-entry -Wl,--stack-first -Wall -Werror -I$here/../sdk/include"
for src in "$here"/*.c "$here"/bad/*.c; do
    name=$(basename "$src" .c)
    case "$src" in */bad/*) name="bad_$name" ;; esac
    # shellcheck disable=SC2086
    "$cc" $flags -o "$out/$name.wasm.tmp" "$src"
    mv "$out/$name.wasm.tmp" "$out/$name.wasm"
done
# WAT examples need no compiler: the host reads WAT text directly.
for src in "$here"/*.wat; do
    [ -e "$src" ] && cp "$src" "$out/"
done
echo "built $(ls "$out" | wc -l) plugins in $out"
