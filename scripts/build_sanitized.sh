#!/usr/bin/env bash
# Build the native extension with AddressSanitizer + UndefinedBehaviorSanitizer into build/sanitized (the
# in-place extension is left alone) and, with --test, run tests/native against it:
#
#   bash scripts/build_sanitized.sh --test
#
# The interpreter is not instrumented, so libasan is preloaded; leak checks are off (CPython keeps its
# allocations to exit) and any ASan report or UBSan finding aborts the run (-fno-sanitize-recover).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=build/sanitized
mkdir -p "$OUT"
python3 -c "import pybind11" 2>/dev/null || { echo "build_sanitized.sh: pybind11 is not installed (pip install -e '.[dev]')" >&2; exit 1; }
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g"
CFLAGS="$SAN" LDFLAGS="$SAN" CONVERTMODEL_BUILD_JOBS="${CONVERTMODEL_BUILD_JOBS:-2}" \
  python3 setup.py -q build_ext --build-lib "$OUT/lib" --build-temp "$OUT/tmp" >"$OUT.log" 2>&1 \
  || { tail -30 "$OUT.log"; exit 1; }
LIB=$(ls "$OUT"/lib/convertmodel/runtime/native/_native*.so)
echo "sanitized extension: $LIB"
if [ "${1:-}" = "--test" ]; then
  ASAN_LIB=$(${CXX:-g++} -print-file-name=libasan.so)
  UBSAN_LIB=$(${CXX:-g++} -print-file-name=libubsan.so)
  export CONVERTMODEL_NATIVE_LIB="$LIB"
  export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:detect_odr_violation=0"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  LD_PRELOAD="$ASAN_LIB $UBSAN_LIB" python3 -m pytest tests/native -q -p no:cacheprovider -x
fi
