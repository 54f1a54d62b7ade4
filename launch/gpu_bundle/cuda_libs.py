"""Finds the CUDA libraries a tessera GPU bundle needs on the machine it runs on.

    python3 cuda_libs.py NEEDS_FILE

NEEDS_FILE lists the sonames the bundle's binaries load from the CUDA stack (libcudart.so.13,
libcublasLt.so.13, libcudnn.so.9, libnccl.so.2, ...), one per line, written by
scripts/gpu_bundle. They are looked for where CUDA installs put them: the toolkit
($CUDA_HOME, /usr/local/cuda*: lib64, lib, targets/x86_64-linux/lib), the NVIDIA Python wheels
(site-packages/nvidia/*/lib of every python3 found: cuDNN in nvidia/cudnn/lib, NCCL in
nvidia/nccl/lib, the CUDA 13 toolkit wheels in nvidia/cu13/lib) and the linker cache
(ldconfig -p). Prints one line per library (soname, the file it resolves to, its version) on
stderr, and on stdout the directories to put on LD_LIBRARY_PATH, joined by ':'. Exit status 1
with one line naming every soname not found. Standard library only (the GPU machine's python
may be any 3.x).
"""
import glob
import os
import subprocess
import sys


def toolkit_dirs():
    roots = [os.environ.get("CUDA_HOME", ""), os.environ.get("CUDA_PATH", ""), "/usr/local/cuda"]
    roots += sorted(glob.glob("/usr/local/cuda-*"), reverse=True)
    dirs = []
    for root in filter(None, roots):
        for sub in ("lib64", "lib", "targets/x86_64-linux/lib"):
            dirs.append(os.path.join(root, sub))
    return dirs


def site_package_dirs():
    """site-packages of each python3 on PATH and of the usual virtual environments."""
    pythons = {sys.executable}
    for d in os.environ.get("PATH", "").split(":"):
        p = os.path.join(d, "python3")
        if os.path.exists(p):
            pythons.add(p)
    pythons.update(glob.glob("/opt/*/.venv/bin/python3") + glob.glob("/opt/*/bin/python3"))
    code = "import site,sys;print('\\n'.join(site.getsitepackages()+[site.getusersitepackages()]))"
    found = []
    for py in sorted(pythons):
        try:
            out = subprocess.run([py, "-c", code], capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            continue
        found += [line for line in out.stdout.split() if line and line not in found]
    return found


def wheel_dirs():
    dirs = []
    for sp in site_package_dirs():
        dirs += sorted(glob.glob(os.path.join(sp, "nvidia", "*", "lib")))
    return dirs


def ldconfig_dirs():
    try:
        out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    except OSError:
        return []
    dirs = []
    for line in out.splitlines():
        if "=>" in line:
            d = os.path.dirname(line.split("=>", 1)[1].strip())
            if d not in dirs:
                dirs.append(d)
    return dirs


def version_of(path):
    real = os.path.realpath(path)
    name = os.path.basename(real)
    return name.split(".so.", 1)[1] if ".so." in name else "?"


def main():
    needs = [line.strip() for line in open(sys.argv[1]) if line.strip()]
    candidates = []
    for d in toolkit_dirs() + wheel_dirs() + ldconfig_dirs():
        if os.path.isdir(d) and d not in candidates:
            candidates.append(d)
    chosen, missing = [], []
    for soname in needs:
        hit = next((d for d in candidates if os.path.exists(os.path.join(d, soname))), None)
        if hit is None:
            missing.append(soname)
            continue
        path = os.path.join(hit, soname)
        sys.stderr.write(f"  {soname:<22} {os.path.realpath(path)} (version {version_of(path)})\n")
        if hit not in chosen:
            chosen.append(hit)
    if missing:
        sys.stderr.write("cuda_libs: not found: " + ", ".join(missing) + " (searched: " +
                         ", ".join(candidates) + ")\n")
        return 1
    print(":".join(chosen))
    return 0


if __name__ == "__main__":
    sys.exit(main())
