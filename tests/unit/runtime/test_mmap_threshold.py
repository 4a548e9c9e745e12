"""A fixed mmap threshold: a large block freed no longer sends later ones to the heap."""

from __future__ import annotations

import subprocess
import sys

# Run in a child: glibc's thresholds are per process and this one's are already moved.
PROBE = """
import ctypes, sys
from streams.runtime.processes import fix_mmap_threshold

def heap():
    for line in open("/proc/self/maps"):
        if line.rstrip().endswith("[heap]"):
            return tuple(int(x, 16) for x in line.split()[0].split("-"))
    return (0, 0)

took = fix_mmap_threshold(int(sys.argv[1]))
big = bytearray(16 << 20)
del big  # glibc's default: its threshold rises to 16 MiB here
block = bytearray(8 << 20)
address = ctypes.addressof((ctypes.c_char * len(block)).from_buffer(block))
low, high = heap()
print(took, low <= address < high)
"""


def where_an_8_mib_block_goes(threshold_kib: int) -> tuple[str, str]:
    answer = subprocess.run(
        [sys.executable, "-c", PROBE, str(threshold_kib)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    took, in_heap = answer.stdout.split()
    return took, in_heap


def test_by_default_a_freed_large_block_sends_the_next_ones_to_the_heap() -> None:
    assert where_an_8_mib_block_goes(0) == ("False", "True")


def test_with_a_fixed_threshold_large_blocks_keep_their_own_mapping() -> None:
    assert where_an_8_mib_block_goes(128) == ("True", "False")
