#!/usr/bin/env bash
# Builds the tiny language model's corpus from installed Debian files (fortunes in four
# languages, C headers, generated numbers) into data/corpus/{train,valid}.txt. Deterministic:
# the same installed packages give the same bytes. The corpus is not committed (data/ is ignored).
#
# usage: scripts/make_corpus.sh [BUILD_DIR] [OUT_DIR]
#   then: BUILD_DIR/cli/moelab-cli train --corpus OUT_DIR --out data/run/tiny-moe-lm
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
out="${2:-data/corpus}"
cli="$build/cli/moelab-cli"
if [[ ! -x "$cli" ]]; then
    echo "make_corpus.sh: $cli not found; build first: cmake --build $build --target moelab-cli" >&2
    exit 1
fi
"$cli" train --write-corpus "$out"
