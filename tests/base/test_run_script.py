"""run.sh keeps pip's and setuptools' chatter in a log and shows it only when a step fails."""

from __future__ import annotations

import subprocess
from pathlib import Path

RUN_SH = Path(__file__).resolve().parents[2] / "run.sh"


def _functions() -> str:
    """run.sh without its command dispatch, to source its functions alone."""
    text = RUN_SH.read_text()
    return text[: text.index("\ncase ")]


def test_every_pip_call_goes_through_the_log() -> None:
    calls = [line.strip() for line in RUN_SH.read_text().splitlines() if "pip install" in line]
    assert calls
    for line in calls:
        assert line.startswith("quietly "), line


def test_a_failing_step_shows_its_log_and_stops(tmp_path: Path) -> None:
    script = (
        _functions()
        + f'\nVENV="{tmp_path}"; INSTALL_LOG="{tmp_path}/install.log"\n'
        + 'quietly sh -c "echo hidden-noise; echo the-real-error >&2; exit 3"\n'
        + "echo not-reached\n"
    )
    quiet = _functions() + f'\nINSTALL_LOG="{tmp_path}/ok.log"\nquietly echo chatter\necho done\n'
    ok = subprocess.run(["bash", "-c", quiet], capture_output=True, text=True, check=False)
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "done\n", "")
    bad = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=False)
    assert bad.returncode == 1 and "not-reached" not in bad.stdout
    assert "the-real-error" in bad.stderr and "install.log" in bad.stderr


def test_help_is_an_answer_and_an_unknown_command_is_named() -> None:
    """``./run.sh --help`` printed the usage to stderr with exit code 2, as for a mistake; a
    mistyped command was not named."""
    helped = subprocess.run([str(RUN_SH), "--help"], capture_output=True, text=True, check=False)
    assert helped.returncode == 0 and helped.stderr == ""
    assert "./run.sh demo" in helped.stdout and "./run.sh test" in helped.stdout
    typo = subprocess.run([str(RUN_SH), "tset"], capture_output=True, text=True, check=False)
    assert typo.returncode == 2 and typo.stdout == ""
    assert typo.stderr.startswith("./run.sh: unknown command 'tset'\nusage: ")
    bare = subprocess.run([str(RUN_SH)], capture_output=True, text=True, check=False)
    assert bare.returncode == 2 and bare.stderr.startswith("usage: ")
