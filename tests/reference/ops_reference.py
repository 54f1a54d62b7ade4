#!/usr/bin/env python3
"""PyTorch reference for tessera's op tests.

Usage: /usr/bin/python3 ops_reference.py FAMILY IN.safetensors OUT.safetensors

The C++ test writes its inputs as "caseN.NAME" tensors and its per-case attributes as
"caseN.KEY" metadata strings. This script imports ref_FAMILY.py, calls its compute(case, attrs)
once per case with the case's tensors as float64/int64 torch tensors, and writes every returned
tensor back as "caseN.NAME" in float32 (or int32 for integer results).

Runs under Debian's /usr/bin/python3 (python3-torch, python3-numpy).
"""
import importlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import safetensors_io  # noqa: E402
import torch  # noqa: E402


def main():
    family, src, dst = sys.argv[1:4]
    torch.set_num_threads(1)
    tensors, metadata = safetensors_io.read(src)
    module = importlib.import_module("ref_" + family)
    cases = {}
    for name, t in tensors.items():
        case, _, field = name.partition(".")
        cases.setdefault(case, ({}, {}))[0][field] = t
    for key, value in metadata.items():
        case, _, field = key.partition(".")
        cases.setdefault(case, ({}, {}))[1][field] = value
    out = {}
    for case, (inputs, attrs) in sorted(cases.items()):
        promoted = {k: (v.double() if v.is_floating_point() else v.long()) for k, v in inputs.items()}
        for name, value in module.compute(promoted, attrs).items():
            value = value.detach()
            value = value.float() if value.is_floating_point() else value.int()
            out[f"{case}.{name}"] = value.contiguous()
    safetensors_io.write(dst, out)


if __name__ == "__main__":
    main()
