"""Thinning a history to a coarser scrape interval keeps the same samples, only fewer."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpu_health.sim.resample import thin_file, thin_lines

TEXT = [
    "# TYPE DCGM_FI_DEV_GPU_TEMP gauge\n",
    *(
        f'DCGM_FI_DEV_GPU_TEMP{{UUID="GPU-a"}} {40 + k} {1_800_000_000 + 120 * k}\n'
        for k in range(61)
    ),
    "# EOF\n",
]


def test_keeps_the_samples_at_multiples_of_the_interval_and_every_comment() -> None:
    kept = list(thin_lines(TEXT, 3600))
    samples = [line for line in kept if not line.startswith("#")]
    stamps = [int(line.split()[-1]) for line in samples]
    assert stamps == [t for t in range(1_800_000_000, 1_800_007_201, 120) if t % 3600 == 0]
    # values travel with their own timestamps: the same reading, seen less often
    original = {line.split()[-1]: line for line in TEXT if not line.startswith("#")}
    assert all(original[line.split()[-1]] == line for line in samples)
    assert kept[0] == TEXT[0] and kept[-1] == "# EOF\n"


def test_the_base_interval_keeps_everything() -> None:
    assert list(thin_lines(TEXT, 120)) == TEXT


@pytest.mark.parametrize(
    ("lines", "every", "message"),
    [
        (['x{a="1"} 3\n'], 60, "integer timestamp"),
        (["x 3 1800000000.5\n"], 60, "integer timestamp"),
        (TEXT, 0, "at least 1 s"),
    ],
)
def test_refuses_what_it_cannot_thin(lines: list[str], every: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        list(thin_lines(lines, every))


def test_a_failed_thinning_leaves_no_target(tmp_path: Path) -> None:
    source = tmp_path / "fleet.om"
    source.write_text("".join(TEXT[:3]) + "x 1\n")
    target = tmp_path / "thin.om"
    with pytest.raises(ValueError):
        thin_file(source, target, 3600)
    assert not target.exists()
    assert list(tmp_path.iterdir()) == [source]
    source.write_text("".join(TEXT))
    thin_file(source, target, 3600)
    assert target.read_text() == "".join(thin_lines(TEXT, 3600))
