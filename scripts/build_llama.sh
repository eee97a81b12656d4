#!/usr/bin/env sh
# Builds the embedded runtime (llama-cpp-python) for a portable CPU baseline and prints the
# folder that holds its wheel.
#
# Why: llama-cpp-python compiles llama.cpp with -march=native by default, so a wheel built on
# one host dies with SIGILL on another (and on hosts with AMX, ggml's AMX repacking crashed
# the server outright). We build for x86-64-v3 (AVX, AVX2, FMA, F16C, BMI2; no AVX-512, no
# AMX), and only what deckgen uses (no multimodal library, no tools, tests or examples, and
# no common library: scripts/llama_no_common.cmake).
#
# pip caches wheels by version, not by build flags, so a natively built wheel of the same
# version could be silently reused. The wheel therefore lives in a folder named after the
# version AND a hash of the flags, is built with --no-cache-dir, and is installed with
# --only-binary from that folder (see the Makefile and the Dockerfile).
#
#   scripts/build_llama.sh [WHEELHOUSE_ROOT]     default: $XDG_CACHE_HOME/deckgen/wheels
set -eu

VERSION=0.3.36
FLAGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
-DGGML_BMI2=ON -DGGML_AVX_VNNI=OFF -DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF \
-DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF \
-DGGML_AMX_BF16=OFF -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=OFF \
-DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF"
PYTHON=${PYTHON:-python3}

ROOT=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/deckgen/wheels}
# llama.cpp's CMake reads this file after its project() call: no common library (see it)
INCLUDE="$(cd "$(dirname "$0")" && pwd)/llama_no_common.cmake"
KEY=$(printf '%s %s %s %s' "$VERSION" "$FLAGS" "$(cat "$INCLUDE")" "$(uname -m)" | sha256sum |
      cut -c1-12)
HOUSE="$ROOT/llama-cpp-python-$VERSION-$KEY"

if ! ls "$HOUSE"/llama_cpp_python-"$VERSION"-*.whl >/dev/null 2>&1; then
    mkdir -p "$HOUSE.tmp"
    echo "building llama-cpp-python $VERSION for a portable CPU baseline (x86-64-v3, no AMX);" \
         "under 2 minutes on 2 cores, once" >&2
    CMAKE_ARGS="$FLAGS -DCMAKE_PROJECT_llama.cpp_INCLUDE=$INCLUDE" CMAKE_BUILD_PARALLEL_LEVEL=$(nproc 2>/dev/null || echo 2) \
        "$PYTHON" -m pip wheel --quiet --no-deps --no-cache-dir --no-binary llama-cpp-python \
        --wheel-dir "$HOUSE.tmp" "llama-cpp-python==$VERSION" >&2
    printf '%s\n' "$FLAGS" > "$HOUSE.tmp/FLAGS"
    rm -rf "$HOUSE"
    mv "$HOUSE.tmp" "$HOUSE"
fi
echo "$HOUSE"
