#!/usr/bin/env bash
# Regenerates the seed corpora under tests/fuzz/corpus/<harness>/ from the project's own files
# and tools (the committed seeds came from this script; crash inputs added as regression cases
# are named regression-*). Needs build/tessera and /usr/bin/python3 (PIL, for a JPEG seed).
#   tests/fuzz/make_corpus.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
out=tests/fuzz/corpus
py=/usr/bin/python3
tessera=build/tessera
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p $out/{config,data_manifest,checkpoint,tar,safetensors,tfrecord,image_decode,tokenizer,shard,shard_v2}

# config: the shipped tiny configs, and one with --set overrides after NUL bytes.
for c in gpt_tiny vit_tiny clip_tiny dit_tiny siglip_tiny; do cp configs/$c.pbtxt $out/config/$c; done
printf 'train { steps: 3 }\0train.steps=5\0optim.lr=2e-3\0schedule.kind=LINEAR' >$out/config/overrides

# data_manifest: manifests naming the harness's three shard files (100, 200, 300 bytes).
hash() { $py -c "
import sys
h = 0xcbf29ce484222325
for b in sys.stdin.buffer.read():
    h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
print('fnv1a64:%016x' % h)"; }
h0=$(printf 'a%.0s' $(seq 100) | hash)
h1=$(printf 'b%.0s' $(seq 200) | hash)
cat >$out/data_manifest/images <<EOM
# tessera pack manifest (proto/data.proto tessera.data.Manifest)
format_version: 1
resolution: 64
tokenizer: "sentencepiece:fnv1a64:0123456789abcdef"
token_length: 32
label_names: "cat"
label_names: "dog"
split: "train"
num_samples: 30
shards { path: "train-00000.h5" num_samples: 10 bytes: 100 content_hash: "$h0" }
shards { path: "train-00001.h5" num_samples: 20 bytes: 200 content_hash: "$h1" }
tokenizer_model: "tokenizer.model"
EOM
cat >$out/data_manifest/text <<EOM
format_version: 1
split: "val"
num_samples: 1000
kind: "text"
eot_id: 2
shards { path: "train-00002.h5" num_samples: 1000 bytes: 300 content_hash: "fnv1a64:0000000000000000" }
EOM

# checkpoint: a step of gpt_tiny written by tessera itself (metadata.pb, COMMITTED, the rank's
# pieces manifest), framed as the harness reads it.
$tessera train --config configs/gpt_tiny.pbtxt --run-dir "$work/run" --set train.steps=1 \
  --set checkpoint.every_steps=1 --set log.every_steps=1 --quiet >/dev/null 2>&1 ||
  $tessera train --config configs/gpt_tiny.pbtxt --run-dir "$work/run" --set train.steps=1 \
    --set checkpoint.every_steps=1 --set log.every_steps=1 >/dev/null
step=$(ls -d "$work"/run/checkpoints/step_* | head -1)
$py - "$step" $out/checkpoint/gpt_tiny_step1 <<'PY'
import struct, sys
step, out = sys.argv[1:3]
parts = [open(f"{step}/{n}", "rb").read() for n in ("metadata.pb", "COMMITTED")]
with open(out, "wb") as f:
    for p in parts:
        f.write(struct.pack("<I", len(p)) + p)
    f.write(open(f"{step}/rank_00000.pieces.pb", "rb").read())
PY

# tar: ustar, GNU (long names) and pax archives of a webdataset sample or two.
$py - $out/tar tests/data/images/rgb8.png <<'PY'
import io, json, sys, tarfile
out, png = sys.argv[1:3]
image = open(png, "rb").read()
def make(fmt, name, long_key=False):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        key = ("d" * 120 + "/0002") if long_key else "a/0001"
        for member, data in ((key + ".png", image), (key + ".txt", b"a red square"),
                             ("a/0003.jpg", b"\xff\xd8\xff not a jpeg"),
                             ("a/0003.json", json.dumps({"caption": "json caption"}).encode())):
            info = tarfile.TarInfo(member); info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    open(f"{out}/{name}", "wb").write(buf.getvalue())
make(tarfile.USTAR_FORMAT, "ustar")
make(tarfile.GNU_FORMAT, "gnu_long_name", long_key=True)
make(tarfile.PAX_FORMAT, "pax_long_name", long_key=True)
PY

# safetensors: f32, i32 and bf16 tensors and metadata, in the format's own layout.
$py - $out/safetensors <<'PY'
import json, struct, sys
out = sys.argv[1]
def write(name, tensors, meta=None):
    header, data = {}, b""
    for k, (dtype, shape, raw) in tensors.items():
        header[k] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if meta: header["__metadata__"] = meta
    h = json.dumps(header).encode()
    open(f"{out}/{name}", "wb").write(struct.pack("<Q", len(h)) + h + data)
write("f32_i32", {"w": ("F32", [2, 3], struct.pack("<6f", *range(6))),
                  "ids": ("I32", [4], struct.pack("<4i", 1, -2, 3, -4))}, {"format": "pt"})
write("bf16_scalar", {"b": ("BF16", [3], b"\x80\x3f\x00\x40\x40\x40"), "s": ("F32", [], b"\0\0\x80\x3f")})
PY

# tfrecord: payloads of a few sizes (the harness frames them).
printf '' >$out/tfrecord/empty
printf 'an event' >$out/tfrecord/short
head -c 300 configs/gpt_tiny.pbtxt >$out/tfrecord/text

# image_decode: the PNG fixtures (every colour type the decoder handles), two JPEGs and two
# WebPs (lossless, lossy with alpha).
cp tests/data/images/*.png $out/image_decode/
$py - $out/image_decode <<'PY'
import sys
from PIL import Image
out = sys.argv[1]
im = Image.new("RGB", (12, 9), (200, 30, 60))
im.save(f"{out}/baseline.jpg", quality=80)
im.convert("L").save(f"{out}/progressive_gray.jpg", quality=70, progressive=True)
im.save(f"{out}/lossless.webp", lossless=True)
rgba = im.convert("RGBA")
rgba.putpixel((0, 0), (0, 0, 0, 0))
rgba.save(f"{out}/alpha_lossy.webp", quality=70)
PY

# tokenizer: a tiny SentencePiece model trained by tessera.
printf 'a photo of a cat\na photo of a dog\nthe cat sat on the mat\na dog and a cat\n' >"$work/t.txt"
for i in $(seq 40); do echo "sentence number $i about cats and dogs" >>"$work/t.txt"; done
$tessera tokenizer train --input "$work/t.txt" --out "$work/tok" --vocab 60 >/dev/null
# Without its 237 KB NFKC normalisation table (identity instead): a small seed to mutate.
$py - "$work/tok.model" $out/tokenizer/tiny.model <<'PY'
import sys
from sentencepiece import sentencepiece_model_pb2 as spm
m = spm.ModelProto()
m.ParseFromString(open(sys.argv[1], "rb").read())
m.normalizer_spec.name = "identity"
m.normalizer_spec.precompiled_charsmap = b""
open(sys.argv[2], "wb").write(m.SerializeToString())
PY

# shard: the harness builds files from these bytes (FuzzedDataProvider): a few fixed patterns.
for s in 1 2 3 4; do $py -c "import random,sys; random.seed($s); sys.stdout.buffer.write(bytes(random.randrange(256) for _ in range(400)))" >$out/shard/random$s; done
printf '\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0' >$out/shard/zeros
# shard_v2: the harness's input is [u16 LE control length][control bytes][(u32 LE length, image
# file)...]; an empty control block gives the shard the writer would make of those files. The
# image_decode seeds (JPEG baseline and progressive, PNG of each colour type) in a few groups,
# and one with random control bytes (perturbed attributes, index values, chunks, crops).
$py - $out/image_decode $out/shard_v2 <<'PY'
import random, struct, sys
src, out = sys.argv[1:3]
def image(name): return open(f"{src}/{name}", "rb").read()
def seed(name, files, control=b""):
    body = b"".join(struct.pack("<I", len(f)) + f for f in files)
    open(f"{out}/{name}", "wb").write(struct.pack("<H", len(control)) + control + body)
jpegs = [image("baseline.jpg"), image("progressive_gray.jpg")]
pngs = [image(n) for n in ("rgb8.png", "gray8.png", "palette2_trns.png", "rgba8.png", "rgb16.png")]
seed("jpeg_one", jpegs[:1])
seed("jpeg_two", jpegs)
seed("png_five", pngs)
seed("mixed", [jpegs[0], pngs[0], jpegs[1], pngs[3]])
seed("empty", [])
random.seed(1)
seed("mixed_random_control", [jpegs[0], pngs[0], jpegs[1]], bytes(random.randrange(256) for _ in range(64)))
PY
du -sh $out
