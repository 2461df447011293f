"""Split a fleet across scorer replicas with no coordination: ``--shard N/M``.

Every replica must agree on which GPUs are its own without talking to the others, and each should
ask Prometheus only for its own GPUs. NVIDIA GPU UUIDs (``GPU-`` + 128 random bits in hex) are
already a stable, uniform hash, so the bucket of a GPU is the first two hex digits of its UUID
(256 buckets), and replica N of M owns the buckets ``b`` with ``b * M // 256 == N``. That
ownership can be written as a short label regex (``uuid=~"GPU-(?:0[0-9a-f]|...).*"``), so the
filter runs inside Prometheus (or a Thanos/Mimir query frontend) and a replica's queries touch
only its share of the series. A UUID that is not of that form falls back to a SHA-256 of the
whole string; such GPUs are filtered on the scorer side (:func:`owns`), which every replica also
applies to whatever comes back, so a GPU is scored by exactly one replica either way.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from gpu_health.errors import UserError

BUCKETS = 256
_UUID = re.compile(r"^(GPU|MIG)-([0-9a-fA-F]{2})")


def bucket(uuid: str) -> int:
    """The GPU's bucket in [0, 256): its UUID's leading hex byte, or a SHA-256 byte."""
    match = _UUID.match(uuid)
    if match:
        return int(match.group(2), 16)
    return hashlib.sha256(uuid.encode()).digest()[0]


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``N/M`` with 0 <= N < M <= 256."""
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if not match:
            raise UserError(f"--shard {text!r}: expected N/M, e.g. 0/4")
        index, count = int(match.group(1)), int(match.group(2))
        if not 1 <= count <= BUCKETS or not 0 <= index < count:
            raise UserError(f"--shard {text!r}: need 0 <= N < M <= {BUCKETS}")
        return cls(index, count)

    @property
    def buckets(self) -> list[int]:
        return [b for b in range(BUCKETS) if b * self.count // BUCKETS == self.index]

    def owns(self, uuid: str) -> bool:
        return bucket(uuid) * self.count // BUCKETS == self.index

    def uuid_regex(self) -> str | None:
        """A PromQL label regex selecting this shard's GPUs (None: the whole fleet)."""
        if self.count == 1:
            return None
        prefixes = "|".join(f"{b:02x}" for b in self.buckets)
        # (?i) because some tools print UUIDs in upper case.
        return f"(?i)(GPU|MIG)-(?:{prefixes}).*"

    def selector(self, label: str = "uuid") -> str:
        """A label matcher to add to a PromQL selector, or "" for the whole fleet."""
        regex = self.uuid_regex()
        return f'{label}=~"{regex}"' if regex else ""
