#!/usr/bin/env bash
# Build llama-cpp-python for this CPU without ggml's AMX backend, once per flag set.
#
# Why: a native build on Sapphire Rapids enables AMX, and ggml's AMX matmul segfaults on
# the first decode inside VMs (ggml-org/llama.cpp#20824; the machines here are VMs). pip keys
# its wheel cache by the sdist, not by CMAKE_ARGS, so we keep our own wheel directory, named
# by the flags, under ~/.cache/hybridgate/wheels and install from it.
set -euo pipefail
pip="$1"
version="0.3.36"
flags="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
cpu=$(grep -m1 '^flags' /proc/cpuinfo || true)
for pair in avx512f:GGML_AVX512 avx512vbmi:GGML_AVX512_VBMI avx512_vnni:GGML_AVX512_VNNI \
            avx512_bf16:GGML_AVX512_BF16; do
  if [[ " $cpu " == *" ${pair%%:*} "* ]]; then flags="$flags -D${pair#*:}=ON"; fi
done
flags="$flags -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
dir="$HOME/.cache/hybridgate/wheels/llama-$version-$(echo "$flags" | sha256sum | cut -c1-12)"
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
