#!/bin/bash
# Exact resume: a 2-rank run killed with SIGKILL at several steps (a real SIGKILL of one rank,
# raised at a step boundary via TESSERA_CKPT_CRASH_AT=step_N:RANK, or in the middle of a save),
# then resumed with --resume auto, ends with parameters and Adam moments bitwise equal to an
# uninterrupted run (deterministic mode), for the GPT and CLIP tiny configs.
# Mode `crash`: a rank SIGKILLed at 13 points while the step-4 checkpoint is written (ZeRO-1, so
# both ranks write files): the torn save is ignored with a message, the run resumes from the
# previous committed checkpoint (or from step 4 once it was renamed into place), and ends equal.
# usage: resume_test.sh MPIEXEC TESSERA SOURCE_DIR PYTHON resume|crash
set -u
MPIEXEC=$1 TESSERA=$2 SRC=$3 PYTHON=$4 MODE=$5
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export TESSERA_NUM_THREADS=1 OMP_WAIT_POLICY=passive
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

train() {  # train RUN_DIR CONFIG_SETS... ; prints the exit status
  local dir=$1; shift
  "$MPIEXEC" --oversubscribe -np 2 "$TESSERA" train --quiet --run-dir "$dir" "$@" \
    >"$dir.log" 2>&1
  echo $?
}

check_model() {  # check_model NAME CONFIG "KILL_SPECS" SETS...
  local name=$1 config=$2 kills=$3; shift 3
  local sets=(--config "$SRC/$config" --set train.deterministic=true --set train.peak_flops=1e9
              --set checkpoint.every_steps=2 "$@")
  local ref=$WORK/$name-ref
  local rc
  rc=$(train "$ref" "${sets[@]}")
  [ "$rc" = 0 ] || { fail "$name: uninterrupted run exited $rc"; cat "$ref.log"; return; }
  local final
  final=$(cat "$ref/checkpoints/latest")
  for spec in $kills; do  # KILL=RESUMED_STEP; KILL: step_N:RANK or POINT:RANK@SAVED_STEP
    # RESUMED_STEP may list alternatives (2,4): an async save commits when its write is done.
    local kill=${spec%=*} expect
    expect="step_0*($(echo "${spec#*=}" | tr ',' '|'))"
    local point=${kill%@*} step=""
    [ "$point" != "$kill" ] && step=${kill#*@}
    local run=$WORK/$name-$(echo "$kill" | tr ':@' '__')
    rc=$(TESSERA_CKPT_CRASH_AT=$point TESSERA_CKPT_CRASH_STEP=$step train "$run" "${sets[@]}")
    if [ "$rc" = 0 ]; then fail "$name: killed at $kill: the run was not killed"; continue; fi
    rc=$(train "$run" "${sets[@]}" --resume auto)
    [ "$rc" = 0 ] || { fail "$name: resume after $kill exited $rc"; cat "$run.log"; continue; }
    # Resuming from the right checkpoint matters: a fresh start would end equal too.
    grep -Eq "resumed from .*/$expect:" "$run.log" || fail "$name: $kill: did not resume from $expect"
    if [ -n "$step" ] && [ "${spec#*=}" != "$step" ]; then
      grep -q "ignoring .*tmp-step_$(printf '%08d' "$step")" "$run.log" ||
        fail "$name: $kill: no message about the torn save"
    fi
    echo "$name, killed at $kill: $(grep -o 'resumed from [^:]*' "$run.log")"
    "$PYTHON" "$SRC/tests/train/checkpoint/compare_checkpoints.py" "$ref/checkpoints/$final" \
      "$run/checkpoints/$final" || fail "$name: killed at $kill: final state differs"
  done
}

if [ "$MODE" = crash ]; then
  points="after_tmp_dir:1@4=2 mid_rank_file:1@4=2 mid_rank_file:0@4=2 before_rank_close:0@4=2
          before_manifest:1@4=2 after_manifest:0@4=2 after_write_barrier:0@4=2 after_metadata@4=2
          before_commit@4=2 after_marker@4=2 after_rename@4=4 before_latest_rename@4=4
          after_commit:1@4=4"
  check_model gpt-zero configs/gpt_tiny.pbtxt "$points" --set train.steps=5 \
    --set data.global_batch_size=8 --set parallel.zero_stage=1 --set parallel.bucket_bytes=40000
  [ "$failures" = 0 ] || { echo "$failures failures"; exit 1; }
  echo "every torn save was ignored; all resumed runs equal the uninterrupted one"
  exit 0
fi

if [ "$MODE" = async ]; then
  # checkpoint.async: the background writes give bitwise the same checkpoints as synchronous
  # saves, a kill while one is in flight resumes from the last committed one, and every save
  # reports its training stall in metrics.jsonl.
  zero=(--set train.steps=7 --set data.global_batch_size=8 --set parallel.zero_stage=1
        --set parallel.bucket_bytes=40000 --set log.every_steps=1)
  check_model gpt-async configs/gpt_tiny.pbtxt "step_5:0=2,4 step_7:1=4,6 mid_rank_file:1@4=2" \
    "${zero[@]}" --set checkpoint.async=true
  sync=$WORK/gpt-sync
  rc=$(train "$sync" --config "$SRC/configs/gpt_tiny.pbtxt" --set train.deterministic=true \
       --set train.peak_flops=1e9 --set checkpoint.every_steps=2 "${zero[@]}")
  [ "$rc" = 0 ] || fail "sync run exited $rc"
  for s in 4 6 7; do
    d=$(printf 'step_%08d' $s)
    "$PYTHON" "$SRC/tests/train/checkpoint/compare_checkpoints.py" "$sync/checkpoints/$d" \
      "$WORK/gpt-async-ref/checkpoints/$d" || fail "async $d differs from the synchronous one"
  done
  n=$(grep -c '"ckpt_stall_ms"' "$WORK/gpt-async-ref/metrics.jsonl")
  [ "$n" = 4 ] || fail "expected ckpt_stall_ms in 4 step records of metrics.jsonl, got $n"
  [ "$failures" = 0 ] || { echo "$failures failures"; exit 1; }
  echo "async saves equal synchronous ones; resumed runs equal the uninterrupted one"
  exit 0
fi

# GPT: killed after steps 3 and 5 (one step after a checkpoint, and later), and in the middle of
# writing the step-4 checkpoint (rank 0's file half written).
check_model gpt configs/gpt_tiny.pbtxt "step_3:1=2 step_5:0=4 mid_rank_file:0@4=2" \
  --set train.steps=7 --set data.global_batch_size=8
check_model clip configs/clip_tiny.pbtxt "step_3:0=2 step_6:1=4" \
  --set train.steps=7 --set data.global_batch_size=8 \
  --set model.clip.image.transformer.n_layers=1 --set model.clip.text.transformer.n_layers=1

[ "$failures" = 0 ] || { echo "$failures failures"; exit 1; }
echo "all resumed runs equal the uninterrupted ones"
