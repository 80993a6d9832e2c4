#!/usr/bin/env bash
# Build torchsort (an anchor the tests and benchmarks compare against) from its sdist,
# against the torch already in the venv. Its setup compiles the CUDA extension whenever an
# `nvcc` is on PATH, which fails on CPU-only machines, so nvcc is hidden for the build:
# every other tool of nvcc's folder stays reachable through symlinks. Best effort: lutece
# never needs torchsort, and the tests that compare against it skip when it is absent.
set -u
python="${1:-.venv/bin/python}"
if "$python" -c "import torchsort" 2>/dev/null; then
  exit 0
fi
path="$PATH"
if nvcc_path="$(command -v nvcc)"; then
  nvcc_dir="$(dirname "$nvcc_path")"
  shadow="$(mktemp -d)"
  trap 'rm -rf "$shadow"' EXIT
  for tool in "$nvcc_dir"/*; do
    [ "$(basename "$tool")" = nvcc ] || ln -s "$tool" "$shadow/"
  done
  path="$(echo "$PATH" | tr ':' '\n' | sed "s#^${nvcc_dir}\$#${shadow}#" | grep -v cuda | paste -sd:)"
fi
if PATH="$path" CUDA_HOME= "$python" -m pip install --quiet --no-build-isolation torchsort; then
  echo "torchsort built from its sdist"
else
  echo "torchsort could not be built: comparisons against it are skipped"
fi
exit 0
