#!/usr/bin/env bash
# Build llama.cpp's own server (llama-server) from the llama.cpp source that the pinned
# llama-cpp-python sdist vendors, with the same CPU flags as the wheel (llama_flags.sh),
# once per flag set, into ~/.cache/hybridgate/llama-server/<version>-<flags>/llama-server.
# The `provider: local` engine `server` (continuous batching, prompt-prefix reuse,
# speculative decoding) runs it. No network at build time beyond pip's own index: the web
# UI is neither built (npm) nor downloaded (HF bucket), and no HTTPS client is linked.
# Links the binary beside pip (the venv's bin/, where the provider looks first) and prints
# its path. About 9 minutes on 2 cores the first time.
set -euo pipefail
pip="$1"
source "$(dirname "$0")/llama_flags.sh"
dir="$HOME/.cache/hybridgate/llama-server/$LLAMA_VERSION-$LLAMA_FLAGS_ID"
if [ ! -x "$dir/llama-server" ]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  echo "building llama-server from llama-cpp-python $LLAMA_VERSION's llama.cpp, about 9 minutes on 2 cores" >&2
  "$pip" download -q --no-deps --no-binary llama-cpp-python -d "$work" "llama-cpp-python==$LLAMA_VERSION"
  tar xzf "$work"/llama_cpp_python-"$LLAMA_VERSION".tar.gz -C "$work"
  src="$work/llama_cpp_python-$LLAMA_VERSION/vendor/llama.cpp"
  cmake=$(command -v cmake || true)
  if [ -z "$cmake" ]; then  # no system cmake: the PyPI one (as the wheel build uses)
    "$pip" install -q "cmake>=3.21"
    cmake="$(dirname "$pip")/cmake"
  fi
  # shellcheck disable=SC2086  # the flags are words
  "$cmake" -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON \
    -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF $LLAMA_FLAGS \
    >"$work/build.log" 2>&1 || { tail -40 "$work/build.log" >&2; exit 1; }
  "$cmake" --build "$work/build" --target llama-server -j "$(nproc)" >>"$work/build.log" 2>&1 \
    || { tail -40 "$work/build.log" >&2; exit 1; }
  mkdir -p "$dir"
  cp "$work/build/bin/llama-server" "$dir/llama-server.tmp"
  mv "$dir/llama-server.tmp" "$dir/llama-server"
fi
ln -sf "$dir/llama-server" "$(dirname "$pip")/llama-server"
echo "$dir/llama-server"
