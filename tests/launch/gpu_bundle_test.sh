#!/usr/bin/env bash
# The prebuilt GPU bundle on a stand-in for the lent GPU machine: a minimal Debian root holding
# nothing but the base system and python3 (debootstrap, cached in the build directory), with this
# machine's CUDA libraries placed where that machine keeps its own — the toolkit's under
# /usr/local/cuda/lib64, cuDNN and NCCL inside a Python site-packages tree (nvidia/cudnn/lib,
# nvidia/nccl/lib, as the nvidia-cudnn-cu13 and nvidia-nccl-cu13 wheels install them). The
# archive is unpacked there with python3 alone and `tessera-gpu/run --cpu-only` must find every
# library, pass every test binary, and report each skipped case as "no CUDA device".
# Needs root (chroot, bind mounts) and Debian's package mirror for the first debootstrap.
set -euo pipefail
src=$TESSERA_SOURCE_DIR
build=$TESSERA_BUILD_DIR
work=$TESSERA_TEST_WORK/gpu_bundle
root=$build/gpu-bundle-root
rm -rf "$work"
mkdir -p "$work"

# The stand-in has no torch (the GPU machine has): the tests' references are recorded here and
# handed in, as TESSERA_REFERENCE_DIR.
archive=$("$src/scripts/gpu_bundle" --build-dir "$build" --out "$work" --references "$work/ref" |
  tail -1)
echo "bundle: $archive ($(stat -c %s "$archive") bytes)"

if [ ! -x "$root/usr/bin/python3" ]; then
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  rm -rf "$root.tmp"
  debootstrap --variant=minbase --include=python3 bookworm "$root.tmp" \
    "${mirror:-http://deb.debian.org/debian}" >"$work/debootstrap.log" 2>&1 ||
    { tail -20 "$work/debootstrap.log"; echo "gpu_bundle_test: debootstrap failed"; exit 1; }
  mv "$root.tmp" "$root"
fi

host_cuda=/usr/local/cuda/lib
mounts=()
cleanup() {
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount -l "${mounts[$i]}" 2>/dev/null || true; done
}
trap cleanup EXIT
bind() {  # bind SRC DST [ro]
  mkdir -p "$2"
  mount --bind "$1" "$2"
  mounts+=("$2")
  [ "${3:-}" = ro ] && mount -o remount,bind,ro "$2"
  return 0
}
bind "$host_cuda" "$root/opt/host-cuda" ro
mount -t proc proc "$root/proc" && mounts+=("$root/proc")
bind /dev "$root/dev"
bind "$work/ref" "$root/tmp/ref" ro

# The lent machine's layout, as links into the read-only host libraries (no copies of ~1 GB).
rm -rf "$root/usr/local/cuda" "$root/usr/lib/python3/dist-packages/nvidia" "$root/tmp/tessera-gpu" \
  "$root/tmp/out"
mkdir -p "$root/usr/local/cuda/lib64" "$root/usr/lib/python3/dist-packages/nvidia/cudnn/lib" \
  "$root/usr/lib/python3/dist-packages/nvidia/nccl/lib"
place() {  # place PATTERN DIR: link the host's files matching PATTERN into DIR
  for f in "$host_cuda"/$1; do
    [ -e "$f" ] && ln -sf "/opt/host-cuda/$(basename "$f")" "$root$2/$(basename "$f")"
  done
  return 0
}
place 'libcudart.so*' /usr/local/cuda/lib64
place 'libcublas*.so*' /usr/local/cuda/lib64
place 'libcudnn*.so.9*' /usr/lib/python3/dist-packages/nvidia/cudnn/lib
place 'libnccl.so.2*' /usr/lib/python3/dist-packages/nvidia/nccl/lib

cp "$archive" "$root/tmp/tessera-gpu.tar.xz"
chroot "$root" /usr/bin/python3 -m tarfile -e /tmp/tessera-gpu.tar.xz /tmp/
set +e
chroot "$root" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root OUT=/tmp/out \
  TESSERA_REFERENCE_DIR=/tmp/ref \
  /tmp/tessera-gpu/run --cpu-only >"$work/run.log" 2>&1
rc=$?
set -e
sed -n '/===== tessera-gpu summary/,$p' "$work/run.log"
fail() { echo "gpu_bundle_test: $*"; tail -40 "$work/run.log"; exit 1; }
[ $rc -eq 0 ] || fail "run --cpu-only exited with $rc"
grep -q "^loading: *ok" "$work/run.log" || fail "some bundled binary did not load"
grep -qE "=> not found|^cuda_libs: not found" "$work/run.log" && fail "a library was not found"
tests=$(grep "^tests:" "$work/run.log")
[[ $tests =~ ([0-9]+)\ passed,\ 0\ failed ]] && [ "${BASH_REMATCH[1]}" -gt 20 ] ||
  fail "expected every bundled test binary (over 20) to pass: $tests"
skipped=$(grep "^skipped:" "$work/run.log")
[[ $skipped =~ ([0-9]+)\ test\ cases\ skipped,\ ([0-9]+)\ of ]] || fail "no skip count: $skipped"
[ "${BASH_REMATCH[1]}" -gt 0 ] && [ "${BASH_REMATCH[1]}" -eq "${BASH_REMATCH[2]}" ] ||
  fail "every skipped case must say \"no CUDA device\": $skipped"
grep -q "gpt_tiny on the CPU: ok" "$work/run.log" || fail "the CPU training run failed"
echo "gpu_bundle_test: ok"
