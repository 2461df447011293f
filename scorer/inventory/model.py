"""One asset record per GPU (or per node) and the lookup that joins it to a scored GPU."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

#: Columns of an inventory file, in the order docs/inventory.md lists them. Key columns first.
KEY_FIELDS: tuple[str, ...] = ("uuid", "serial", "node", "gpu")
TEXT_FIELDS: tuple[str, ...] = ("model", "datacenter", "row", "rack", "sla_tier", "team")
NUMBER_FIELDS: tuple[str, ...] = ("purchase_price", "rental_rate")
DATE_FIELDS: tuple[str, ...] = ("purchase_date", "warranty_end")
FIELDS: tuple[str, ...] = (*KEY_FIELDS, *DATE_FIELDS, *NUMBER_FIELDS, *TEXT_FIELDS)

#: Labels of ``gpu_asset_info`` besides the GPU identity labels (empty string when unknown).
INFO_LABELS: tuple[str, ...] = ("datacenter", "row", "rack", "team", "sla_tier")

SECONDS_PER_DAY = 86400.0


@dataclass(frozen=True)
class Asset:
    """What the inventory knows about one GPU; ``None`` / ``""`` = not recorded."""

    uuid: str = ""
    serial: str = ""
    node: str = ""
    gpu: str = ""
    #: Unix seconds (midnight UTC of the date given).
    purchase_date: float | None = None
    warranty_end: float | None = None
    purchase_price: float | None = None
    #: Contracted rental rate per GPU-hour, in the economics currency.
    rental_rate: float | None = None
    model: str = ""
    datacenter: str = ""
    row: str = ""
    rack: str = ""
    sla_tier: str = ""
    team: str = ""
    #: Where the record came from, for messages: ``file:line`` or ``node labels``.
    origin: str = ""

    def age_seconds(self, now: float) -> float | None:
        if self.purchase_date is None:
            return None
        return max(0.0, now - self.purchase_date)

    def warranty_remaining_seconds(self, now: float) -> float | None:
        """Seconds until the warranty ends; negative once it has ended (alerts need the sign)."""
        if self.warranty_end is None:
            return None
        return self.warranty_end - now

    def fill_from(self, other: Asset) -> Asset:
        """This record with its blank fields taken from ``other`` (the file wins over labels)."""
        changes = {}
        for f in dataclasses.fields(self):
            mine = getattr(self, f.name)
            if (
                f.name != "origin"
                and mine in (None, "")
                and getattr(other, f.name) not in (None, "")
            ):
                changes[f.name] = getattr(other, f.name)
        return dataclasses.replace(self, **changes) if changes else self


@dataclass(frozen=True)
class Inventory:
    """Records indexed by every key they carry; lookups try the most specific key first."""

    source: str
    assets: tuple[Asset, ...]

    def __post_init__(self) -> None:
        by: dict[str, dict[object, Asset]] = {"uuid": {}, "serial": {}, "slot": {}, "node": {}}
        for a in self.assets:
            if a.uuid:
                by["uuid"][a.uuid] = a
            elif a.serial:
                by["serial"][a.serial] = a
            elif a.node and a.gpu:
                by["slot"][(a.node, a.gpu)] = a
            elif a.node:
                by["node"][a.node] = a
        object.__setattr__(self, "_index", by)

    @classmethod
    def empty(cls, source: str = "") -> Inventory:
        return cls(source, ())

    def lookup(self, uuid: str, node: str = "", gpu: str = "", serial: str = "") -> Asset | None:
        """The record for a GPU: by uuid, serial, (node, gpu slot), then node-wide."""
        index: dict[str, dict[object, Asset]] = self._index  # type: ignore[attr-defined]
        for kind, key in (
            ("uuid", uuid),
            ("serial", serial),
            ("slot", (node, gpu)),
            ("node", node),
        ):
            if key and key != ("", "") and key in index[kind]:
                return index[kind][key]
        return None

    def __len__(self) -> int:
        return len(self.assets)


def merge_labels(asset: Asset | None, from_labels: Asset | None) -> Asset | None:
    """A file record completed by node-label fields, or the labels alone when not in the file."""
    if asset is None:
        return from_labels
    return asset if from_labels is None else asset.fill_from(from_labels)


def by_uuid(pairs: Iterable[tuple[str, Asset | None]]) -> Mapping[str, Asset]:
    return {uuid: a for uuid, a in pairs if a is not None}
