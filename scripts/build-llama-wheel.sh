#!/usr/bin/env bash
# Build llama-cpp-python once, portably, into a git-ignored wheel folder.
# A native build (-DGGML_NATIVE=ON, the default) segfaults in the AMX kernels on quantized models on
# some CPUs, and pip's wheel cache ignores CMAKE_ARGS, so a cached native wheel would be reused.
# We therefore build with --no-cache-dir into .wheels/ and install from there.
set -euo pipefail
PY=${PY:-.venv/bin/python}
VERSION=${LLAMA_CPP_VERSION:-0.3.36}
WHEELS=${WHEELS:-.wheels}
mkdir -p "$WHEELS"
if ls "$WHEELS"/llama_cpp_python-"$VERSION"-*.whl >/dev/null 2>&1; then
  exit 0
fi
echo "Building llama-cpp-python $VERSION portably (about 5 minutes on 2 cores; once)..."
export CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}
"$PY" -m pip wheel --no-cache-dir --no-deps --no-binary llama-cpp-python \
  -w "$WHEELS" "llama-cpp-python==$VERSION"
