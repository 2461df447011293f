"""Counter-based random numbers that pure Python and numpy compute bit-identically.

A seeded generator that is stepped (``random.Random``) cannot be asked "what was the noise at
14:03 yesterday" without replaying everything before it. The simulator instead derives every
random number from a hash of (seed, stream, index) — splitmix64 — so any time step can be
evaluated alone, by the live driver or by the vectorised batch writer, with the same result.
"""

from __future__ import annotations

import hashlib
import random

MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
M1 = 0xBF58476D1CE4E5B9
M2 = 0x94D049BB133111EB
INV_2_53 = 1.0 / (1 << 53)


def splitmix(x: int) -> int:
    """The splitmix64 finaliser on a Python int (wrapping at 64 bits)."""
    z = (x + GOLDEN) & MASK
    z = ((z ^ (z >> 30)) * M1) & MASK
    z = ((z ^ (z >> 27)) * M2) & MASK
    return z ^ (z >> 31)


def key(seed: int | str, *parts: int | str | float) -> int:
    """A 64-bit stream key from a seed and any number of names/indices (stable across runs)."""
    text = ":".join([str(seed), *(str(p) for p in parts)])
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def uniform(stream: int, index: int) -> float:
    """A uniform number in [0, 1) for ``index`` of ``stream``."""
    return (splitmix(stream ^ splitmix(index & MASK)) >> 11) * INV_2_53


def generator(stream: int | str, *parts: int | str | float) -> random.Random:
    """A stepped generator for event lists (Poisson arrivals, sizes) of one stream chunk."""
    return random.Random(key(stream, *parts))
