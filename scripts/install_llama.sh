#!/usr/bin/env bash
# Build llama-cpp-python for this CPU without ggml's AMX backend, once per flag set
# (scripts/llama_flags.sh says why). pip keys its wheel cache by the sdist, not by
# CMAKE_ARGS, so we keep our own wheel directory, named by the flags, under
# ~/.cache/hybridgate/wheels and install from it.
set -euo pipefail
pip="$1"
source "$(dirname "$0")/llama_flags.sh"
version="$LLAMA_VERSION"
flags="$LLAMA_FLAGS"
dir="$HOME/.cache/hybridgate/wheels/llama-$version-$LLAMA_FLAGS_ID"
if ! ls "$dir"/llama_cpp_python-"$version"-*.whl >/dev/null 2>&1; then
  mkdir -p "$dir"
  echo "building llama-cpp-python $version ($flags), about 5 minutes" >&2
  CMAKE_ARGS="$flags" "$pip" wheel -q --no-deps --no-cache-dir -w "$dir" "llama-cpp-python==$version"
fi
wheel=$(ls "$dir"/llama_cpp_python-"$version"-*.whl | head -1)
marker="$(dirname "$pip")/../.llama-wheel"
if [ "$(cat "$marker" 2>/dev/null)" != "$wheel" ]; then
  "$pip" install -q --no-deps --force-reinstall "$wheel"
  echo "$wheel" > "$marker"
fi
