"""``python -m benchmarks.peak_rss OUT MODULE ARGS...``: run ``python -m MODULE ARGS...`` here and
write this process's peak RSS (``VmHWM``, in kB) to ``OUT`` when it ends.

The parent's ``wait4`` cannot give it: on Linux a child's ``ru_maxrss`` keeps the high-water
mark of the address space it had before ``exec``, which for a child started by
`subprocess` (``vfork``) is its parent's; a benchmark process holding 300 MB would make a
50 MB child report 300. ``VmHWM`` belongs to the address space made at ``exec``.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path


def peak_kb() -> int:
    """This process's peak resident set size since its ``exec``, in kB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def main() -> None:
    out, module, *args = sys.argv[1:]
    sys.argv = [module, *args]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    finally:
        Path(out).write_text(str(peak_kb()))


if __name__ == "__main__":
    main()
