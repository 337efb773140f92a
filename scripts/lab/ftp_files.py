#!/usr/bin/env python3
"""ftp_files.py — the FTP lab's test files: names, sizes and content (stdlib only).

    ftp_files.py write --root DIR --name srv1 [--manifest FILE]

Writes every test file into DIR (mode 0644, DIR itself 0755) plus id.txt holding NAME and a
newline, and, with --manifest, a JSON manifest {"files": [{"name", "size", "sha256"}], "id":
"id.txt"}. scripts/lab.sh calls it at `up` for each server's FTP root; ftp_client.py imports
it to know the expected content without asking anyone.

The set is fixed (deterministic): sizes from 1 byte to 300 KiB, chosen to straddle the
boundaries an FTP data path can get wrong (one byte, an MSS of 1448, powers of two, 64 KiB
windows), plus pseudo-random sizes in between. The content of a file is SHAKE-256 of its
name, so any two files differ and a byte out of place changes the SHA-256.
"""
import argparse
import hashlib
import json
import os
import random
import sys

MAX_SIZE = 300 * 1024

# Sizes that sit on a boundary, then seeded pseudo-random ones up to 48 files in all.
EDGE_SIZES = [1, 2, 7, 100, 511, 512, 1000, 1447, 1448, 1449, 2896, 4095, 4096, 4097, 8192,
              10000, 16384, 32768, 65535, 65536, 65537, 100000, 131072, 200000, 262144,
              MAX_SIZE - 1, MAX_SIZE]
COUNT = 48


def sizes():
    rng = random.Random(5737)  # fixed seed: the same set everywhere, every time
    out = list(EDGE_SIZES)
    while len(out) < COUNT:
        # Log-uniform, so small and large files are both well represented.
        out.append(int(round(10 ** rng.uniform(0, 5.49))) % MAX_SIZE + 1)
    return out


def files():
    """[(name, size)] of every test file, in a fixed order."""
    return [("f%02d-%d.bin" % (i, n), n) for i, n in enumerate(sizes())]


def content(name, size):
    return hashlib.shake_256(name.encode()).digest(size)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def manifest():
    return {"files": [{"name": n, "size": s, "sha256": sha256(content(n, s))} for n, s in files()],
            "id": "id.txt"}


def write(root, name, manifest_path=None):
    os.makedirs(root, exist_ok=True)
    os.chmod(root, 0o755)
    for n, s in files():
        p = os.path.join(root, n)
        with open(p, "wb") as f:
            f.write(content(n, s))
        os.chmod(p, 0o644)
    p = os.path.join(root, "id.txt")
    with open(p, "w") as f:
        f.write(name + "\n")
    os.chmod(p, 0o644)
    if manifest_path:
        tmp = manifest_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(manifest(), f, indent=1)
        os.replace(tmp, manifest_path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write", help="write the test files and id.txt into a directory")
    w.add_argument("--root", required=True)
    w.add_argument("--name", required=True)
    w.add_argument("--manifest")
    args = ap.parse_args()
    if args.cmd == "write":
        write(args.root, args.name, args.manifest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
