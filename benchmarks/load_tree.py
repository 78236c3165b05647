"""Loading an ImageFolder tree: first decode vs cache hit, and peak memory while decoding.

    nice -n 10 python benchmarks/make_tree.py /tmp/cnn-search-tree-50k --n 50000
    nice -n 10 python benchmarks/load_tree.py /tmp/cnn-search-tree-50k

Each load runs in a fresh process, so no in-process cache helps; the OS page cache is warm for
both (the tree was just written), which favours the first load, not the cached one.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import json, sys, time
from pathlib import Path
from search.data.imagefolder import load_tree

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
before = status("VmRSS:")
started = time.perf_counter()
tree = load_tree(Path(sys.argv[1]), Path(sys.argv[2]))
tree.x.max()  # touch every byte: a cache hit must deliver usable data, not just a mapping
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "decoded": tree.decoded, "shape": list(tree.x.shape),
                  "tensor_bytes": tree.x.nbytes, "peak_extra_bytes": status("VmHWM:") - before}))
"""


def load_once(root: Path, cache: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(root), str(cache)], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("root", type=Path)
    p.add_argument("--repeats", type=int, default=3, help="cache-hit loads (median reported)")
    args = p.parse_args()
    cache = Path(tempfile.mkdtemp(prefix="cnn-search-cache-"))
    try:
        first = load_once(args.root, cache)
        hits = [load_once(args.root, cache) for _ in range(args.repeats)]
    finally:
        shutil.rmtree(cache)
    second = statistics.median(h["seconds"] for h in hits)
    print(f"images: {first['shape']}  ({first['tensor_bytes'] / 2**20:.1f} MiB uint8)")
    print(f"first load (decode {first['decoded']} files): {first['seconds']:.2f} s")
    print(f"cache hit (median of {len(hits)}, decoded {hits[0]['decoded']}): {second:.3f} s")
    print(f"speed-up: {first['seconds'] / second:.1f}x (target >= 20x)")
    print(f"peak extra memory while decoding: {first['peak_extra_bytes'] / 2**20:.1f} MiB = "
          f"{first['peak_extra_bytes'] / first['tensor_bytes']:.2f}x the final tensor (target < 2x)")


if __name__ == "__main__":
    main()
