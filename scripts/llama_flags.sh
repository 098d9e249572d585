# Sourced by install_llama.sh and install_llama_server.sh: one set of ggml CPU flags for the
# in-process wheel and for llama-server, so both engines compute alike.
#
# Why not native: a native build on Sapphire Rapids enables AMX, and ggml's AMX matmul
# segfaults on the first decode inside VMs (ggml-org/llama.cpp#20824; the machines here are
# VMs). So: a portable AVX2 baseline plus the AVX-512 extensions this CPU reports, AMX off.
LLAMA_VERSION="0.3.36"
LLAMA_FLAGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
_cpu=$(grep -m1 '^flags' /proc/cpuinfo || true)
for _pair in avx512f:GGML_AVX512 avx512vbmi:GGML_AVX512_VBMI avx512_vnni:GGML_AVX512_VNNI \
             avx512_bf16:GGML_AVX512_BF16; do
  if [[ " $_cpu " == *" ${_pair%%:*} "* ]]; then LLAMA_FLAGS="$LLAMA_FLAGS -D${_pair#*:}=ON"; fi
done
LLAMA_FLAGS="$LLAMA_FLAGS -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
LLAMA_FLAGS_ID=$(echo "$LLAMA_FLAGS" | sha256sum | cut -c1-12)
