#!/usr/bin/env bash
# End to end: the real moelab window in a real X server (Xvfb), driven by real input events
# (xdotool: XTEST key presses, mouse moves and clicks), checked through the app's own report of
# each frame (--dump-layout: panel and widget rectangles, cut text, what the frame showed).
#
#   tests/e2e/drive_app.sh BUILD/app/moelab [OUT_DIR]
#
# First one frame each at 1280x720, 1920x1080 and 1024x768, with a lesson open too, nothing cut.
# Then walks a new teacher's first minutes: the first-run card, K = 4 (the router changes), typing
# (the token count changes; Ctrl+A then fast typing; the editor wraps and the model never sees
# the soft breaks; Esc leaves the box), a scheme clicked in the combo, a lesson opened from the
# File menu and stepped, presenter mode at 1280x720 with nothing cut, an export button and
# Ctrl+S (the files exist), a fine-tuned copy whose refused saves (the shipped model, a folder,
# under a file) say why and lose nothing, undo, Ctrl+Q (settings saved, clean exit). Prints the
# latency from key press to the first frame that shows the change. Fails on a crash, a hang
# (every wait has a deadline), a cut label or a missing file. A third run cannot save (settings
# a folder, the export folder a file: each says so) and opens a generated model with File > Open
# model, and a bad path (the error shows, the model stays). A fourth starts with a broken --model:
# the window says so and runs the built-in model. Exit 77 (skip) without Xvfb or xdotool.
set -uo pipefail
APP=${1:?usage: drive_app.sh path/to/moelab [out_dir]}
OUT=${2:-}
for tool in Xvfb xdotool; do
  command -v "$tool" > /dev/null || { echo "SKIP: $tool is not installed (bash scripts/install-deps.sh)"; exit 77; }
done
[ -x "$APP" ] || { echo "SKIP: $APP was not built (MOE_BUILD_APP=OFF)"; exit 77; }

work=$(mktemp -d /tmp/moelab-e2e.XXXXXX)
report=$work/layout.txt
xvfb_pid=""; app_pid=""
cleanup() {
  [ -n "$app_pid" ] && kill "$app_pid" 2> /dev/null
  [ -n "$xvfb_pid" ] && kill "$xvfb_pid" 2> /dev/null
  wait 2> /dev/null
  if [ -n "$OUT" ]; then mkdir -p "$OUT" && cp -r "$work"/. "$OUT"/ 2> /dev/null; fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*"
  echo "--- last frame report:"; cat "$report" 2> /dev/null | head -80
  echo "--- app stderr:"; tail -20 "$work/app.err" 2> /dev/null
  exit 1
}
now_ns() { date +%s%N; }

# A private X server; -displayfd picks a free display number.
exec 3> "$work/display"
Xvfb -displayfd 3 -screen 0 1920x1080x24 -nolisten tcp > "$work/xvfb.log" 2>&1 &
xvfb_pid=$!
for _ in $(seq 100); do [ -s "$work/display" ] && break; sleep 0.05; done
[ -s "$work/display" ] || fail "Xvfb did not start: $(cat "$work/xvfb.log")"
export DISPLAY=:$(head -1 "$work/display")

# A fresh home: the first run, and exports land in $HOME/moelab-exports.
export HOME=$work/home XDG_CONFIG_HOME=$work/home/.config
mkdir -p "$HOME"

# cuts FILE: the report's panels whose text runs past their right edge (no sideways scrollbar;
# "at_y A..B" is the height of the cut line) and the labels drawn narrower than they need, one
# per line; empty when nothing is cut.
cuts() { grep -E '^panel ".*cut_right' "$1"; grep '^clipped ' "$1"; }
# Cuts inside the views panels (issue 12) that were seen and are not fixed yet: each is printed
# with where it is on every run, and fails nothing. Take a line out once its panel fits. (Empty:
# the overview's long caption wraps since session 5.)
KNOWN_CUTS=()
known_cut() {
  local k
  for k in "${KNOWN_CUTS[@]}"; do [[ "$1" == "$k"* ]] && return 0; done
  return 1
}

# 0. Normal (non-presenter) mode with nothing cut, at the sizes a class projects (1280x720,
# 1920x1080, and 1024x768 for old projectors), with the built-in model and with a real
# architecture's shape (256 experts, 16 layers, K = 8) with the whole-model overview open.
# One rendered frame each (--screenshot), read through the same --dump-layout report.
echo '{"panels": {"Model overview": true}}' > "$work/overview.json"
# shot_check TAG SIZE MODEL [ARGS...]: one frame at SIZE with MODEL (builtin, or 256x16 with the
# overview open); fails on a cut or clipped label that is not a known one.
shot_check() {
  local tag=$1 size=$2 model=$3 rc found line
  shift 3
  local args=(--size "$size" "$@")
  [ "$model" = 256x16 ] && args+=(--random-model experts=256,layers=16 --settings "$work/overview.json")
  timeout 120 "$APP" --screenshot "$work/$tag.png" --frames 3 --dump-layout "$work/$tag.txt" "${args[@]}" \
    > "$work/$tag.out" 2> "$work/$tag.err"
  rc=$?
  [ "$rc" = 0 ] || { report=$work/$tag.txt; fail "--screenshot $tag exited $rc: $(tail -3 "$work/$tag.err")"; }
  grep -q '^panel "Router" ' "$work/$tag.txt" || { report=$work/$tag.txt; fail "$tag: no router on screen"; }
  found=""
  while IFS= read -r line; do
    [ -n "$line" ] || continue
    if known_cut "$size $model $line"; then echo "KNOWN CUT (issue 12, views): $size $model: $line"
    else found+="$line"$'\n'; fi
  done <<< "$(cuts "$work/$tag.txt")"
  [ -z "$found" ] || { report=$work/$tag.txt; fail "$tag cuts text (picture: $tag.png):
$found"; }
}
for size in 1280x720 1920x1080 1024x768; do
  for model in builtin 256x16; do shot_check "normal-$size-$model" "$size" "$model"; done
done
# The same with a lesson open: its column (or, where a column leaves too little, its strip) and
# the grid beside it, every panel readable.
lesson_file=$(cd "$(dirname "$0")/../../scenarios" && pwd)/01_dense_vs_sparse.json
for size in 1280x720 1024x768; do
  for model in builtin 256x16; do
    shot_check "lesson-$size-$model" "$size" "$model" --lesson "$lesson_file"
    grep -q '^panel "Lesson" ' "$work/lesson-$size-$model.txt" || { report=$work/lesson-$size-$model.txt; fail "lesson-$size-$model: no lesson panel"; }
  done
done
echo "ok: a lesson open at 1280x720 and 1024x768 (built-in, 256x16): nothing cut"
# The load bars get real room at 256 experts (they were 40 px of bars in a 166-px slot at 720p).
read -r lw lh <<< "$(grep '^panel "Expert load" ' "$work/normal-1280x720-256x16.txt" | awk '{ print $(NF-1), $NF }')"
[ "${lh:-0}" -ge 280 ] && [ "${lw:-0}" -ge 330 ] || fail "the load bars are ${lw}x${lh} at 1280x720 with 256 experts (want >= 330x280)"
grep -q '^item "tab Model overview" ' "$work/normal-1280x720-256x16.txt" || fail "the model overview is not a tab beside the heatmap at 1280x720"
echo "ok: normal mode at 1280x720, 1920x1080 and 1024x768 (built-in, 256x16 with the overview): nothing cut; load ${lw}x${lh} at 720p"
start_ns=$(now_ns)
"$APP" --size 1280x720 --dump-layout "$report" > "$work/app.out" 2> "$work/app.err" &
app_pid=$!

alive() { kill -0 "$app_pid" 2> /dev/null || fail "the app died (exit $(wait "$app_pid"; echo $?))"; }
state() { sed -n 's/^state //p' "$report" 2> /dev/null; }
field() { state | tr ' ' '\n' | sed -n "s/^$1=//p"; }
# wait_for KEY VALUE [SECONDS]: until the frame on screen shows KEY=VALUE.
wait_for() {
  local deadline=$(( $(now_ns) + ${3:-15} * 1000000000 ))
  while [ "$(field "$1")" != "$2" ]; do
    alive
    [ "$(now_ns)" -lt "$deadline" ] || fail "waited ${3:-15} s for $1=$2; the frame shows $1=$(field "$1") (a hang?)"
    sleep 0.02
  done
}
# wait_not KEY VALUE: until the frame on screen shows KEY with another value.
wait_not() {
  local deadline=$(( $(now_ns) + 15 * 1000000000 ))
  while [ "$(field "$1")" = "$2" ]; do
    alive
    [ "$(now_ns)" -lt "$deadline" ] || fail "waited 15 s for $1 to change from $2 (a hang?)"
    sleep 0.02
  done
}
# wait_item NAME: until a widget of that name is on screen; prints its centre "x y".
wait_item() {
  local deadline=$(( $(now_ns) + 10 * 1000000000 )) line
  while :; do
    alive
    line=$(grep -F "item \"$1\" " "$report" 2> /dev/null | head -1)
    [ -n "$line" ] && break
    [ "$(now_ns)" -lt "$deadline" ] || fail "no widget \"$1\" on screen after 10 s"
    sleep 0.02
  done
  echo "$line" | awk '{ n = NF; printf "%d %d\n", $(n-3) + $(n-1) / 2, $(n-2) + $n / 2 }'
}
click() {
  local xy
  # A popup is placed in its second frame, a folded header moves what is below it: click where
  # the widget has settled (the same rectangle in two reports 0.1 s apart).
  local prev=""
  for _ in $(seq 50); do
    xy=$(wait_item "$1") || { echo "$xy"; exit 1; }
    [ "$xy" = "$prev" ] && break
    prev=$xy
    sleep 0.15
  done
  # shellcheck disable=SC2086
  xdotool mousemove --window "$win" $xy sleep 0.05 click 1
}
has_item() { grep -qF "item \"$1\" " "$report" 2> /dev/null; }
# click_until NAME ITEM: click NAME until widget ITEM is on screen (3 tries, 3 s each): on a
# loaded machine a click can land on a frame that has not placed the widget yet.
click_until() {
  for _ in 1 2 3; do
    click "$1"
    for _ in $(seq 30); do has_item "$2" && return 0; alive; sleep 0.1; done
  done
  fail "clicking \"$1\" three times did not bring up \"$2\""
}
# press KEYS, then wait until KEY=VALUE is on screen; prints the latency.
press_and_see() {
  local keys=$1 key=$2 value=$3 t0 shown
  t0=$(now_ns)
  xdotool key "$keys"
  wait_for "$key" "$value"
  shown=$(sed -n 's/^shown_ns //p' "$report")
  echo "latency: key '$keys' -> frame with $key=$value: $(( (shown - t0) / 1000000 )) ms"
}

# The window: wait for its first frame and give it the keyboard (there is no window manager).
wait_for n_tokens 94 30
win=$(xdotool search --sync --onlyvisible --name "moelab" | head -1)
[ -n "$win" ] || fail "no moelab window on $DISPLAY"
xdotool windowfocus --sync "$win" 2> /dev/null || xdotool windowfocus "$win"
echo "first frame after $(( ($(sed -n 's/^shown_ns //p' "$report") - start_ns) / 1000000 )) ms"

# 1. First run: the getting-started card is up, with a button for the first "aha", and covers
# none of the panels that show it (the arcs, the active parameters, the next-byte guess, the load).
wait_item "start k4" > /dev/null
grep '^panel "Getting started" .*cut_right' "$report" && fail "the getting-started card runs past its right edge"
rect_of() { grep -F "panel \"$1\" " "$report" | head -1 | sed 's/^panel "[^"]*" \([-0-9]* [-0-9]* [-0-9]* [-0-9]*\).*/\1/'; }
for p in "Router" "Parameters and FLOPs" "Next byte" "Expert load"; do
  read -r ax ay aw ah <<< "$(rect_of "Getting started")"
  read -r bx by bw bh <<< "$(rect_of "$p")"
  [ -n "${ax:-}" ] && [ -n "${bx:-}" ] || fail "no rectangle for the getting-started card or $p"
  (( ax < bx + bw && bx < ax + aw && ay < by + bh && by < ay + ah )) && fail "the getting-started card covers $p"
done
click "start k4"
wait_for k 4
wait_for token_experts 4
echo "ok: the first-run card's K = 4 routes each token to 4 experts"
echo "first aha: start -> the frame with K = 4 on screen: $(( ($(sed -n 's/^shown_ns //p' "$report") - start_ns) / 1000000 )) ms (machine time; a person also reads the card's first line)"
press_and_see 2 k 2
wait_for token_experts 2

# 2. A K key changes the router: the token on screen goes to K experts.
press_and_see 4 k 4
wait_for token_experts 4
press_and_see 1 k 1
wait_for token_experts 1
echo "ok: keys 4 and 1 reroute (token_experts follows K)"

# 3. Typing: the token count follows; shortcuts are off while typing; Esc leaves the box.
click "text box"
wait_for typing 1
xdotool type --delay 20 " Hello, MoE 4"
wait_for n_tokens 107
[ "$(field k)" = 1 ] || fail "typing '4' into the text changed K to $(field k)"
echo "ok: typed 13 bytes (94 -> 107 tokens), the digit went into the text"
# Ctrl+A and typing at once (no pause for Ctrl's release): every character must arrive and
# replace the selection (they were dropped while a frame still saw Ctrl held, or read as Ctrl+X).
fast="Mixture of experts: 4 of 8 experts for each byte."
xdotool key ctrl+a type --delay 1 "$fast"
wait_for n_tokens ${#fast}
[ "$(field typing)" = 1 ] || fail "Ctrl+A and typing left the text box"
echo "ok: Ctrl+A then ${#fast} bytes typed at once replaced the text (n_tokens=${#fast})"
# Item 12: the editor wraps what is typed (no sideways scrolling) and the model never sees the
# soft line breaks: byte counts stay exact through typing, Backspace at a wrapped line's start,
# copy and paste of it all, and undo.
more=" Each token goes to the experts its router picks; the rest of them stay idle."
xdotool type --delay 1 "$more"
n=$(( ${#fast} + ${#more} ))
wait_for n_tokens $n
box=$(sed -n 's/^fact "text box" //p' "$report")
read -r lines widest room sx _ <<< "$(echo "$box" | sed 's/[a-z_]*=//g')"
[ "${lines:-0}" -ge 3 ] && [ "${widest:-9999}" -le "${room:-0}" ] && [ "${sx:-1}" = 0 ] ||
  fail "the text box does not wrap while typing: $box"
xdotool key Home BackSpace  # Home: the start of the last wrapped line; BackSpace takes the blank before it
wait_for n_tokens $((n - 1))
xdotool key ctrl+a ctrl+c ctrl+End ctrl+v
wait_for n_tokens $((2 * (n - 1)))
xdotool key ctrl+z
wait_for n_tokens $((n - 1))
echo "ok: typed text wraps while editing ($box); Backspace over a wrap, copy + paste, undo: byte counts exact"
# Item 13: an emoji (past U+FFFF: Dear ImGui 1.86 holds 16-bit characters) and a CJK character
# typed into the box are drawn from real glyphs and reach the model as their exact UTF-8 bytes
# (4 + 3), and stay exact through the edits after them (they used to become U+FFFD, 3 bytes).
n=$((n - 1))
xdotool key ctrl+End
# One character a call, slowly: xdotool maps a character outside the keymap onto a spare key
# and maps it back after the key's release; a client that reads the new mapping only after that
# (a busy frame) sees a key with no character (a test artefact: a real layout has the key).
xdotool type --delay 150 "😀"
wait_for n_tokens $((n + 4))
xdotool type --delay 150 "中"
wait_for n_tokens $((n + 7))
xdotool type --delay 40 "x"
wait_for n_tokens $((n + 8))
box_missing() { sed -n 's/^fact "text box" .*missing=\([0-9]*\).*/\1/p' "$report"; }
deadline=$(( $(now_ns) + 10000000000 ))
until [ "$(box_missing)" = 0 ]; do
  alive; [ "$(now_ns)" -lt "$deadline" ] || fail "the text box draws $(box_missing) characters as '?' after typing an emoji and a CJK character"
  sleep 0.05
done
xdotool key ctrl+a ctrl+c ctrl+End ctrl+v  # the clipboard gets the emoji, and the paste keeps it
# (past the model's 256-token context: the text's own byte count, from the box)
box_bytes() { sed -n 's/^fact "text box" .*bytes=\([0-9]*\).*/\1/p' "$report"; }
deadline=$(( $(now_ns) + 15000000000 ))
until [ "$(box_bytes)" = $((2 * (n + 8))) ]; do
  alive; [ "$(now_ns)" -lt "$deadline" ] || fail "copy + paste of a text with an emoji: $(box_bytes) bytes, want $((2 * (n + 8)))"
  sleep 0.05
done
xdotool key ctrl+z
wait_for n_tokens $((n + 8))
xdotool key BackSpace BackSpace
wait_for n_tokens $((n + 4))
xdotool key BackSpace
wait_for n_tokens $n
echo "ok: typed an emoji and a CJK character: drawn (no '?'), +7 bytes, exact through typing, copy + paste, undo and BackSpace"
xdotool key Escape
wait_for typing 0
press_and_see 3 k 3
echo "ok: Esc left the box"

# 3b. The famous-models table in normal mode at 1280x720: nothing cut (it was).
click_until "tab Famous models" "tab Famous models"
click "tab Famous models"
sleep 0.4
found=$(cuts "$report" | grep -F '"Parameters and FLOPs"')
[ -z "$found" ] || fail "the famous-models table at 1280x720 cuts text: $found"
click "tab This model"
echo "ok: the famous-models table fits at 1280x720"

# Idle: nothing animates after a while, so the app should sleep (it used ~30% of a core).
xdotool mousemove --window "$win" 5 5
sleep 1.5
t0=$(awk '{ print $14 + $15 }' "/proc/$app_pid/stat")
sleep 3
t1=$(awk '{ print $14 + $15 }' "/proc/$app_pid/stat")
echo "idle CPU: $((t1 - t0)) ticks of $(getconf CLK_TCK)/s in 3 s ($(( (t1 - t0) * 100 / (3 * $(getconf CLK_TCK)) ))% of a core)"

# 4. A scheme picked with the mouse in the combo.
click_until "scheme combo" "scheme option switch"
click "scheme option switch"
wait_for scheme switch
wait_for k 1
echo "ok: Switch picked in the combo (K forced to 1)"

# 5. A lesson from the File menu, stepped.
click_until "menu File" "menuitem Open lesson..."
click_until "menuitem Open lesson..." "prompt path"
wait_item "prompt path" > /dev/null
wait_for typing 1  # the path field has the keyboard: Enter opens
xdotool key Return
wait_not lesson none
first=$(field lesson)
case "$first" in *:1/*) ;; *) fail "File > Open lesson opened $first, not its first step";; esac
click "lesson next"
second=${first%%:*}:2/${first##*/}
wait_for lesson "$second"
echo "ok: lesson $first -> $second"

# 6. Presenter mode at 1280x720: nothing cut, the router and load bars large.
xdotool mousemove --window "$win" 5 5
press_and_see p presenter 1
sleep 0.3  # fonts are rebuilt, then a frame or two settle
if grep -E '^panel ".*(cut_right)' "$report"; then fail "presenter mode at 1280x720 cuts text at a panel's right edge"; fi
if grep '^clipped ' "$report"; then fail "presenter mode at 1280x720 clips a label"; fi
read -r rw rh <<< "$(grep '^panel "Router" ' "$report" | awk '{ print $(NF-1), $NF }' | tr -dc '0-9 \n')"
[ "${rw:-0}" -ge 500 ] && [ "${rh:-0}" -ge 300 ] || fail "presenter router is ${rw}x${rh} at 1280x720 (want >= 500x300)"
grep -q '^panel "Expert load" ' "$report" || fail "presenter mode at 1280x720 lost the load bars"
echo "ok: presenter at 1280x720, router ${rw}x${rh}, no cut text:"; grep '^panel ' "$report" | sed 's/^/    /'
press_and_see p presenter 0

# 7. Exports: a button in the training lab, and Ctrl+S.
click_until "menu View" "menuitem Training lab"
click_until "menuitem Training lab" "export mixloss PNG"
# click_lab_export: the export row can sit below the lab window's bottom edge (its toggles
# grew): scroll it into view, then click.
click_lab_export() {
  xdotool mousemove --window "$win" 600 400 click 5 click 5 click 5 click 5
  sleep 0.3
  click "export mixloss PNG"
}
click_lab_export
deadline=$(( $(now_ns) + 10 * 1000000000 ))
until [ -s "$HOME/moelab-exports/mix2d_loss.png" ]; do
  alive; [ "$(now_ns)" -lt "$deadline" ] || fail "the export button wrote no $HOME/moelab-exports/mix2d_loss.png"; sleep 0.05
done
xdotool key ctrl+s
deadline=$(( $(now_ns) + 10 * 1000000000 ))
until ls "$HOME"/moelab-exports/moelab-*.png > /dev/null 2>&1; do
  alive; [ "$(now_ns)" -lt "$deadline" ] || fail "Ctrl+S wrote no screenshot into $HOME/moelab-exports"; sleep 0.05
done
echo "ok: exported $(cd "$HOME/moelab-exports" && ls | tr '\n' ' ')"

# 8. Fine-tune a copy on the text, save it (never over the shipped model) and route with it.
shipped=$(cd "$(dirname "$0")/../../assets" && pwd)/tiny-moe-lm.safetensors
[ -s "$shipped" ] || fail "no shipped model at $shipped"
shipped_sum=$(md5sum < "$shipped")
xdotool mousemove --window "$win" 600 400 click 4 click 4 click 4 click 4  # the lab's tabs back in view
sleep 0.3
click_until "tab lab finetune" "finetune steps"
# 4 steps, not the default 20 (each up to 2 s on a loaded machine, more under ASan): Ctrl+click
# makes the slider a field.
xdotool mousemove --window "$win" $(wait_item "finetune steps") keydown ctrl click 1 keyup ctrl
wait_for typing 1
xdotool key ctrl+a type 4
xdotool key Return
wait_for typing 0
click "finetune start"
# 4 steps of 4 x 64 bytes: a second on 2 idle cores, 10 s on a machine loaded 6x.
deadline=$(( $(now_ns) + 120 * 1000000000 ))
until grep -qF 'item "finetune use"' "$report" && grep -qF 'message "fine-tune: step 4/4' "$report"; do
  alive; [ "$(now_ns)" -lt "$deadline" ] || fail "the fine-tune did not finish within 120 s"; sleep 0.1
done
# Refused saves: over the shipped model, into a folder that cannot be written, onto a folder.
# Each says the path and why; the app runs on, the fine-tuned copy and the text stay.
# msg_has TEXT: a status message of the frame on screen contains TEXT (waits 10 s).
msg_has() {
  local deadline=$(( $(now_ns) + 10 * 1000000000 ))
  until grep '^message ' "$report" 2> /dev/null | grep -qF -- "$1"; do
    alive; [ "$(now_ns)" -lt "$deadline" ] || fail "no message saying \"$1\" (messages: $(grep '^message ' "$report"))"; sleep 0.05
  done
}
# save_as PATH: type PATH into the fine-tune's "save as" field and press Save once the field
# holds it (no Esc: in a one-line field Esc takes the typing back; and on a loaded machine the X
# server may take the click, another client, before the last typed keys).
save_as() {
  click "finetune path"
  wait_for typing 1
  xdotool key ctrl+a type --delay 1 "$1"
  local deadline=$(( $(now_ns) + 30 * 1000000000 ))
  until [ "$(sed -n 's/^fact "finetune path" //p' "$report")" = "$1" ]; do
    alive; [ "$(now_ns)" -lt "$deadline" ] || fail "typed '$1'; the field holds '$(sed -n 's/^fact "finetune path" //p' "$report")'"; sleep 0.05
  done
  click "finetune save"
}
tokens_before=$(field n_tokens)
blocker=$work/not-a-folder; echo "a file, not a folder" > "$blocker"
mkdir -p "$work/a-folder"
save_as "$shipped"
msg_has "fine-tune save: $shipped"; msg_has "is the shipped model"
save_as "$blocker/finetuned.safetensors"
msg_has "fine-tune save: $blocker/finetuned.safetensors"; msg_has "Not a directory"
save_as "$work/a-folder"
msg_has "fine-tune save: $work/a-folder"; msg_has "is a folder"
has_item "finetune use" || fail "a refused save lost the fine-tuned copy (no 'Route with it')"
[ "$(field n_tokens)" = "$tokens_before" ] || fail "a refused save changed the text ($tokens_before -> $(field n_tokens) tokens)"
[ "$shipped_sum" = "$(md5sum < "$shipped")" ] || fail "a refused save changed the shipped model"
[ -e "$blocker/finetuned.safetensors" ] || [ -n "$(ls "$work/a-folder")" ] && fail "a refused save wrote a file"
echo "ok: saves over the shipped model, under a file and onto a folder refused, each naming the path and why"
save_as "$HOME/moelab-exports/finetuned.safetensors"
msg_has "fine-tune save: saved $HOME/moelab-exports/finetuned.safetensors"
click "finetune use"
wait_for model finetuned.safetensors
[ -s "$HOME/moelab-exports/finetuned.safetensors" ] || fail "routing with the fine-tuned model saved no file"
[ "$shipped_sum" = "$(md5sum < "$shipped")" ] || fail "the shipped model changed"
echo "ok: fine-tuned copy saved to \$HOME/moelab-exports/finetuned.safetensors and routing the text"

# 9. Undo the last knob change (Switch -> the previous scheme) and quit with Ctrl+Q.
# The fine-tuned model's first frames route nothing yet (k=0): compare routed frames only.
xdotool mousemove --window "$win" 5 5
wait_not k 0
wait_not n_tokens 0
before="$(field k)/$(field scheme)"
xdotool key ctrl+z
deadline=$(( $(now_ns) + 10 * 1000000000 ))
until [ "$(field k)" != 0 ] && [ "$(field n_tokens)" != 0 ] && [ "$(field k)/$(field scheme)" != "$before" ]; do
  alive; [ "$(now_ns)" -lt "$deadline" ] || fail "Ctrl+Z changed nothing (still $before)"; sleep 0.02
done
echo "ok: Ctrl+Z undid a knob change ($before -> k=$(field k) scheme=$(field scheme), routed)"
# The MoE layer shown is a setting too: Up shows layer 1, and the next start must show it again.
sleep 0.3
press_and_see Up layer 1
saved_k=$(field k); saved_scheme=$(field scheme); saved_tokens=$(field n_tokens)
quit_app() {
  xdotool key ctrl+q
  for _ in $(seq 200); do kill -0 "$app_pid" 2> /dev/null || break; sleep 0.05; done
  kill -0 "$app_pid" 2> /dev/null && fail "Ctrl+Q did not quit within 10 s"
  wait "$app_pid"; rc=$?; app_pid=""
  [ "$rc" = 0 ] || fail "the app exited with $rc"
  [ -s "$XDG_CONFIG_HOME/moelab/settings.json" ] || fail "no settings.json after quitting"
}
quit_app
echo "ok: Ctrl+Q quit cleanly, settings saved"

# 10. The next start restores the layer, K, the scheme and the text.
rm -f "$report"
"$APP" --size 1280x720 --dump-layout "$report" > "$work/app2.out" 2> "$work/app2.err" &
app_pid=$!
wait_for layer 1 30
wait_not n_tokens 0  # the first routed text, not the empty first frame
[ "$(field k)/$(field scheme)/$(field n_tokens)" = "$saved_k/$saved_scheme/$saved_tokens" ] ||
  fail "the next start shows k/scheme/n_tokens $(field k)/$(field scheme)/$(field n_tokens), not the saved $saved_k/$saved_scheme/$saved_tokens"
win=$(xdotool search --sync --onlyvisible --name "moelab" | head -1)
xdotool windowfocus --sync "$win" 2> /dev/null || xdotool windowfocus "$win"
echo "ok: the next start shows layer 1, k=$saved_k, $saved_scheme, $saved_tokens tokens again"
quit_app
echo "ok: whole run $(( ($(now_ns) - start_ns) / 1000000 )) ms"

# 11. File > Open model (issue 11), in a third run: a generated folder's path typed into the
# dialog and Enter: the model changes; then a path that is not a model: the error shows in the
# dialog, the model stays.
open_model_dialog() {
  local cli model_dir open_y typed_y deadline ew
  cli=$(dirname "$APP")/../cli/moelab-cli
  [ -x "$cli" ] || { echo "skip: no moelab-cli beside the app for the open-model check"; return 0; }
  model_dir=$work/models/tiny-olmoe
  "$cli" hf-tiny --type olmoe --out "$model_dir" > /dev/null || fail "moelab-cli hf-tiny failed"
  report=$work/layout-open-model.txt
  # This run cannot save: settings.json is a folder, and its HOME's export folder is a file.
  local home3=$work/home3 settings=$XDG_CONFIG_HOME/moelab/settings.json
  mkdir -p "$home3" && echo "a file, not a folder" > "$home3/moelab-exports"
  rm -f "$settings" && mkdir "$settings"
  HOME=$home3 "$APP" --size 1280x720 --dump-layout "$report" > "$work/app3.out" 2> "$work/app3.err" &
  app_pid=$!
  wait_for model builtin 30
  win=$(xdotool search --sync --onlyvisible --name "moelab" | head -1)
  xdotool windowfocus --sync "$win" 2> /dev/null || xdotool windowfocus "$win"
  msg_has "settings ignored: $settings is a folder"
  xdotool key 3
  wait_for k 3
  msg_has "settings not saved: $settings: cannot replace the file"
  xdotool key ctrl+s
  msg_has "$home3/moelab-exports"; msg_has "cannot be created"
  click_until "menu View" "menuitem Training lab"
  click_until "menuitem Training lab" "export mixloss PNG"
  click_lab_export
  msg_has "export mixloss: "; msg_has "$home3/moelab-exports"
  [ -f "$home3/moelab-exports" ] || fail "a refused export replaced the file in its way"
  [ "$(field k)" = 3 ] || fail "a refused save changed K to $(field k)"
  echo "ok: settings.json, Ctrl+S and an export button that cannot write each say the path and why; the app runs on"
  click_until "menu View" "menuitem Training lab"
  click "menuitem Training lab"  # closes it again
  click_until "menu File" "menuitem Open model..."
  click_until "menuitem Open model..." "open model path"
  wait_for typing 1  # the path field has the keyboard
  xdotool type --delay 5 "$model_dir"
  xdotool key Return
  wait_for model tiny-olmoe 60
  has_item "open model error" && fail "opening $model_dir showed an error"
  echo "ok: File > Open model, typed $model_dir, Enter: the app runs it (model=$(field model))"
  click_until "menu File" "menuitem Open model..."
  click_until "menuitem Open model..." "open model path"
  wait_for typing 1
  # The field holds the folder opened last, with its "needs N GB" line; "/not-a-model" typed after
  # it is no folder, so the line goes and the Open button moves up: then the text has arrived.
  # (Not Ctrl+A and a new path: characters typed while a frame still sees Ctrl held are dropped.)
  open_y=$(wait_item "open model open" | cut -d' ' -f2)
  xdotool key End
  xdotool type --delay 5 "/not-a-model"
  deadline=$(( $(now_ns) + 20 * 1000000000 ))
  while :; do
    alive
    has_item "open model path" || fail "the open-model dialog closed while the path was typed"
    typed_y=$(wait_item "open model open" | cut -d' ' -f2)
    [ "$typed_y" != "$open_y" ] && break
    [ "$(now_ns)" -lt "$deadline" ] || fail "the typed path did not reach the open-model field in 20 s"
    sleep 0.05
  done
  # Enter, not the Open button: on a loaded machine a click can land before the frame moved it.
  xdotool key Return
  deadline=$(( $(now_ns) + 30 * 1000000000 ))
  until has_item "open model error"; do
    alive; [ "$(now_ns)" -lt "$deadline" ] || fail "a bad path showed no error in the open-model dialog"; sleep 0.05
  done
  [ "$(field model)" = tiny-olmoe ] || fail "a bad path replaced the model: model=$(field model)"
  ew=$(grep -F 'item "open model error" ' "$report" | awk '{ print $(NF-1) }')
  [ "${ew:-9999}" -le 1280 ] || fail "the error runs ${ew} px wide, past the 1280-pixel window (not wrapped)"
  click "open model close"
  echo "ok: a bad path shows the error in the dialog and tiny-olmoe keeps running"
  quit_app
}
open_model_dialog

# 12. Item 15: a bad --model (from a desktop menu nobody sees stderr) opens the window anyway, says
# which file and why, and runs the built-in model.
report=$work/layout-bad-model.txt
echo "not a model" > "$work/broken.safetensors"
"$APP" --size 1280x720 --model "$work/broken.safetensors" --dump-layout "$report" > "$work/app4.out" 2> "$work/app4.err" &
app_pid=$!
wait_for model builtin 30
msg_has "The model could not be opened, so the built-in model runs instead"
msg_has "$work/broken."  # the loader names the file it could not read (here the .json beside it)
win=$(xdotool search --sync --onlyvisible --name "moelab" | head -1)
xdotool windowfocus --sync "$win" 2> /dev/null || xdotool windowfocus "$win"
echo "ok: a bad --model opens the window, names the file and runs the built-in model"
quit_app
