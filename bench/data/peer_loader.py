"""The peer of bench_encoded's throughput (scripts/bench_data): a PyTorch DataLoader over the
same JPEG bytes (exported by `bench_encoded export`, held in memory, so the peer pays no I/O
while tessera reads its HDF5 shards), with `workers` worker processes decoding with Pillow and
torchvision's RandomResizedCrop(size) + RandomHorizontalFlip, uint8 (H, W, 3) tensors collated
into batches: the standard image pipeline of PyTorch training scripts.

  peer_loader.py BYTES_PREFIX --size S --batch B --workers T --batches K [--warmup W]

Prints one JSON line: images/s by wall clock and per CPU second (the main process and the
workers, read from /proc/PID/stat over the timed batches only).
Run with Debian's /usr/bin/python3 (python3-torch, python3-torchvision, python3-pil).
"""
import argparse
import io
import json
import os
import resource
import time

import numpy as np
import torch
import torchvision.transforms as T
from PIL import Image


class JpegBytes(torch.utils.data.Dataset):
    def __init__(self, prefix, size):
        self.data = np.fromfile(prefix + ".bytes", dtype=np.uint8)
        self.offsets = np.fromfile(prefix + ".offsets", dtype=np.int64)
        self.transform = T.Compose([T.RandomResizedCrop(size), T.RandomHorizontalFlip()])

    def __len__(self):
        return len(self.offsets) - 1

    def __getitem__(self, i):
        raw = self.data[self.offsets[i]:self.offsets[i + 1]].tobytes()
        image = Image.open(io.BytesIO(raw)).convert("RGB")
        return torch.from_numpy(np.asarray(self.transform(image)).copy())


def cpu_of(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("prefix")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    a = p.parse_args()
    torch.set_num_threads(1)
    ds = JpegBytes(a.prefix, a.size)
    sampler = torch.utils.data.RandomSampler(ds, replacement=True,
                                             num_samples=a.batch * (a.batches + a.warmup + 8))
    loader = torch.utils.data.DataLoader(ds, batch_size=a.batch, sampler=sampler,
                                         num_workers=a.workers, prefetch_factor=4,
                                         worker_init_fn=lambda _: torch.set_num_threads(1))
    it = iter(loader)
    for _ in range(a.warmup):
        next(it)
    pids = [os.getpid()] + [w.pid for w in it._workers]
    c0 = sum(cpu_of(pid) for pid in pids)
    t0 = time.perf_counter()
    check = 0
    for _ in range(a.batches):
        b = next(it)
        assert b.shape == (a.batch, a.size, a.size, 3) and b.dtype == torch.uint8
        check += int(b[0, 0, 0, 0])
    wall = time.perf_counter() - t0
    cpu = sum(cpu_of(pid) for pid in pids) - c0
    n = a.batch * a.batches
    print(json.dumps({"workers": a.workers, "size": a.size, "images": n, "wall_s": round(wall, 3),
                      "cpu_s": round(cpu, 3), "images_per_s": round(n / wall, 1),
                      "images_per_cpu_s": round(n / cpu, 1)}))
    del it


if __name__ == "__main__":
    main()
