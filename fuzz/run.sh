#!/usr/bin/env bash
# Runs every libFuzzer harness for a bounded time on its corpus (CI's fuzz stage, and the first
# step of a long campaign: docs/FUZZING.md).
#   bash fuzz/run.sh [SECONDS_PER_HARNESS=20] [HARNESS...]
# Builds build/fuzz (preset "fuzz": clang 14, ASan + UBSan + libFuzzer), writes the generated
# seeds, then fuzzes one harness at a time (-jobs=1: CI and the dev machine have 2 cores).
# A crash, sanitizer report, escaped exception, timeout (-timeout=10) or out-of-memory
# (-rss_limit_mb=2048) fails the script and prints the input that caused it.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
shift || true
harnesses=("$@")
((${#harnesses[@]})) || harnesses=(safetensors lm_model params lesson router forward tokenizer hf_folder cli)

cmake --preset fuzz >/dev/null
cmake --build --preset fuzz
b=build/fuzz
rm -rf "$b/seeds" && "$b/fuzz/fuzz_seeds" "$b/seeds" >/dev/null
mkdir -p "$b/artifacts"

# Extra seed folders of real files, and each harness's dictionary (JSON keys, or the CLI's words).
declare -A extra=([params]="assets/configs" [lesson]="scenarios")
declare -A dict=([safetensors]=json [lm_model]=json [params]=json [lesson]=json [tokenizer]=json [hf_folder]=json [cli]=cli)

# One thread per harness: the models are tiny, and OpenMP's barrier spin on a shared 2-core
# machine showed up in perf (libomp ~10% of fuzz_cli's time) for no speed-up.
export OMP_NUM_THREADS=1
failed=0
printf '%-12s %10s %8s %6s %6s\n' harness execs exec/s cov ft > "$b/fuzz-summary.txt"
for h in "${harnesses[@]}"; do
  corpus="$b/corpus/$h"
  mkdir -p "$corpus"
  dirs=("$corpus")
  for d in "$b/seeds/$h" "fuzz/regressions/$h" ${extra[$h]:-}; do [ -d "$d" ] && dirs+=("$d"); done
  args=(-max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="$PWD/$b/artifacts/$h-")  # absolute: fuzz_cli runs in its own folder
  [ -n "${dict[$h]:-}" ] && args+=(-dict="fuzz/${dict[$h]}.dict")
  log="$b/fuzz-$h.log"
  echo "== fuzz_$h for ${secs} s on ${dirs[*]}"
  if ! "$b/fuzz/fuzz_$h" "${args[@]}" "${dirs[@]}" >"$log" 2>&1; then
    failed=1
    echo "!! fuzz_$h FAILED; the end of its log:"
    tail -n 60 "$log"
    for a in "$b"/artifacts/"$h"-*; do
      [ -f "$a" ] || continue
      echo "!! input $a ($(wc -c <"$a") bytes; reproduce: $b/fuzz/fuzz_$h $a):"
      head -c 2048 "$a" | od -A d -c | head -n 40
    done
  fi
  execs=$(awk '/stat::number_of_executed_units:/ {v=$2} END {print v}' "$log")
  rate=$(awk '/stat::average_exec_per_sec:/ {v=$2} END {print v}' "$log")
  cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -1 | awk '{print $2, $4}')
  printf '%-12s %10s %8s %6s %6s\n' "$h" "${execs:-?}" "${rate:-?}" ${cov:-? ?} >> "$b/fuzz-summary.txt"
done
cat "$b/fuzz-summary.txt"
exit $failed
