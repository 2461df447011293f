"""The Prometheus Operator recipe (deploy/kubernetes/alertmanager-secret.example.yaml) with
alertmanager/alertmanager.yml unchanged: laid out as the Operator mounts it, Alertmanager finds
the template and both keys, and delivers notifications rendered by gpu.tmpl.

The Operator's layout (prometheus-operator, Alertmanager resource): every key of
``spec.configSecret`` is a file in /etc/alertmanager/config/ (``alertmanager.yaml`` gzipped, as
``alertmanager.yaml.gz``), the config reloader writes the configuration Alertmanager runs with to
/etc/alertmanager/config_out/alertmanager.env.yaml, and every Secret in ``spec.secrets`` is a
directory /etc/alertmanager/secrets/<secret name>/ with a file per key."""

from __future__ import annotations

import gzip
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from gpu_health import stack
from gpu_health.demo.notify_sink import PAGERDUTY_PATH, SLACK_PREFIX, NotificationSink
from tests.alertmanager.am_alerts import fallen_off_bus, post_alerts

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "deploy" / "kubernetes" / "alertmanager-secret.example.yaml"
CONFIG = REPO / "alertmanager" / "alertmanager.yml"
KEY = "0123456789abcdef0123456789abcdef"

ROOT = Path("/etc/alertmanager")
CONFIG_DIR = ROOT / "config"
CONFIG_FILE = ROOT / "config_out" / "alertmanager.env.yaml"
SECRETS_DIR = ROOT / "secrets"


@dataclass
class Recipe:
    config_secret: str
    #: key of the configSecret -> the repository file it is created from
    config_files: dict[str, Path]
    #: spec.secrets -> their keys
    secrets: dict[str, list[str]]


def _recipe() -> Recipe:
    text = RECIPE.read_text()
    comment = "\n".join(
        re.sub(r"^# ?", "", line) for line in text.splitlines() if line.startswith("#")
    )
    commands = re.sub(r"\\\n\s*", " ", comment)
    created = {
        m.group(1): dict(re.findall(r"--from-file=([\w.-]+)=(\S+)", m.group(2)))
        for m in re.finditer(r"kubectl .*?create secret generic (\S+)(.*)", commands)
    }
    config_secret = re.search(r"configSecret:\s*(\S+)", comment)
    listed = re.search(r"secrets:\s*\[([^\]]*)\]", comment)
    assert config_secret and listed, "the recipe names no Alertmanager configSecret/secrets"
    documents = {
        d["metadata"]["name"]: sorted(d.get("stringData") or d.get("data") or {})
        for d in yaml.safe_load_all(text)
        if d and d["kind"] == "Secret"
    }
    secrets = {}
    for name in (s.strip() for s in listed.group(1).split(",")):
        keys = documents.get(name) or sorted(created.get(name, {}))
        assert keys, f"spec.secrets names {name}, which the recipe does not create"
        if name in documents and name in created:
            assert sorted(created[name]) == documents[name], name
        secrets[name] = keys
    files = created.get(config_secret.group(1))
    assert files and "alertmanager.yaml" in files, "the configSecret has no alertmanager.yaml"
    return Recipe(config_secret.group(1), {k: REPO / v for k, v in files.items()}, secrets)


def _mount(recipe: Recipe, root: Path, values: dict[str, str], config_text: str) -> None:
    """Write ``root`` as the Operator's /etc/alertmanager (``values``: what each secret key
    holds; ``config_text``: the configuration Alertmanager runs with)."""
    config_dir = root / CONFIG_DIR.relative_to(ROOT)
    config_dir.mkdir(parents=True)
    for key, source in recipe.config_files.items():
        if key == "alertmanager.yaml":
            (config_dir / f"{key}.gz").write_bytes(gzip.compress(source.read_bytes()))
        else:
            (config_dir / key).write_bytes(source.read_bytes())
    config_file = root / CONFIG_FILE.relative_to(ROOT)
    config_file.parent.mkdir(parents=True)
    config_file.write_text(config_text)
    for name, keys in recipe.secrets.items():
        directory = root / SECRETS_DIR.relative_to(ROOT) / name
        directory.mkdir(parents=True)
        for key in keys:
            (directory / key).write_text(values.get(key, "placeholder"))


def _in_root(path: str, root: Path) -> Path:
    """``path`` as Alertmanager resolves it in the Operator's pod, inside ``root``."""
    absolute = Path(path) if Path(path).is_absolute() else CONFIG_FILE.parent / path
    assert absolute.is_relative_to(ROOT), f"{path} is outside the Operator's mounts"
    return root / absolute.relative_to(ROOT)


def test_the_recipe_mounts_what_the_config_reads(tmp_path: Path) -> None:
    """Every template glob and *_file of the shipped config, resolved as in the Operator's pod,
    lands on a file of the recipe: gpu.tmpl exactly once, and each key."""
    recipe = _recipe()
    config_text = (recipe.config_files["alertmanager.yaml"]).read_text()
    assert recipe.config_files["alertmanager.yaml"] == CONFIG
    _mount(recipe, tmp_path, {}, config_text)
    config = yaml.safe_load(config_text)
    templates = [
        match.name
        for glob in config["templates"]
        for match in _in_root(glob, tmp_path).parent.glob(_in_root(glob, tmp_path).name)
    ]
    assert templates == ["gpu.tmpl"], config["templates"]
    files = [
        value
        for receiver in config["receivers"]
        for kind in receiver.values()
        if isinstance(kind, list)
        for entry in kind
        for key, value in entry.items()
        if key.endswith("_file")
    ]
    assert len(files) == 2
    for path in files:
        assert _in_root(path, tmp_path).is_file(), f"{path}: not mounted by the recipe"


def test_the_config_finds_its_template_in_this_repository() -> None:
    """The same config in this repository's layout (the demo's and the other tests'): the
    relative glob matches gpu.tmpl."""
    globs = yaml.safe_load(CONFIG.read_text())["templates"]
    relative = [g for g in globs if not Path(g).is_absolute()]
    assert [p.name for g in relative for p in CONFIG.parent.glob(g)] == ["gpu.tmpl"]


#: Runs its arguments with ``$ROOT`` mounted at /etc/alertmanager, in a private mount namespace
#: (the rest of /etc stays visible through symbolic links); nothing outside the test changes.
NAMESPACE_SCRIPT = r"""
set -eu
mount --rbind /etc "$HOST_ETC"
mount -t tmpfs tmpfs /etc
for entry in "$HOST_ETC"/* "$HOST_ETC"/.[!.]*; do
  [ -e "$entry" ] || [ -L "$entry" ] || continue
  [ "${entry##*/}" = alertmanager ] || ln -s "$entry" /etc/
done
mkdir /etc/alertmanager
mount --bind "$ROOT" /etc/alertmanager
exec "$@"
"""
UNSHARE = ["unshare", "--user", "--map-root-user", "--mount"]


def _namespaces_work() -> bool:
    try:
        return subprocess.run([*UNSHARE, "true"], capture_output=True, check=False).returncode == 0
    except FileNotFoundError:
        return False


@pytest.fixture
def operator_alertmanager(tmp_path: Path) -> Iterator[tuple[stack.Server, NotificationSink]]:
    """A real Alertmanager on the recipe's layout, its keys pointing at a local sink."""
    if not _namespaces_work():
        pytest.skip("unshare --user --mount is not permitted here")
    recipe = _recipe()
    with NotificationSink(expected_routing_key=KEY) as sink:
        # The only change to the config: PagerDuty's URL (Slack's is the secret's value).
        config = yaml.safe_load(recipe.config_files["alertmanager.yaml"].read_text())
        for receiver in config["receivers"]:
            for pagerduty in receiver.get("pagerduty_configs", []):
                pagerduty["url"] = sink.url + PAGERDUTY_PATH
        root = tmp_path / "etc-alertmanager"
        values = {
            "pagerduty_routing_key": KEY,
            "slack_webhook_url": f"{sink.url}{SLACK_PREFIX}/services/T000/B000/XXXX",
        }
        _mount(recipe, root, values, yaml.safe_dump(config, sort_keys=False))
        host_etc = tmp_path / "host-etc"
        host_etc.mkdir()
        data = tmp_path / "data"
        data.mkdir()
        binary = stack.find_binary("prometheus-alertmanager", "alertmanager")

        def argv(port: int) -> list[str]:
            return [
                "env",
                f"ROOT={root}",
                f"HOST_ETC={host_etc}",
                *UNSHARE,
                "sh",
                "-c",
                NAMESPACE_SCRIPT,
                "sh",
                binary,
                f"--config.file={CONFIG_FILE}",
                f"--storage.path={data}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
            ]

        server = stack.listening("alertmanager", "Alertmanager", argv, tmp_path, None, 30.0)
        try:
            yield server, sink
        finally:
            server.stop()


@pytest.mark.integration
def test_alertmanager_on_the_recipe_layout_delivers_rendered_notifications(
    operator_alertmanager: tuple[stack.Server, NotificationSink],
) -> None:
    """With the shipped timings (group_wait 10 s for PagerDuty, 30 s for Slack)."""
    server, sink = operator_alertmanager
    post_alerts(server.url, [fallen_off_bus()])
    try:
        notes = sink.wait_for(lambda ns: {n.service for n in ns} == {"pagerduty", "slack"}, 60)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\nAlertmanager's log:\n{server.log_tail()}") from exc
    assert [n.errors for n in notes] == [[] for _ in notes]
    slack = next(n.payload for n in notes if n.service == "slack")["attachments"][0]
    assert slack["title"] == "[FIRING:1] GPUFallenOffBus on node-a"
    assert "GPU 1 stopped answering" in slack["text"] and "Runbook:" in slack["text"]
    page = next(n.payload for n in notes if n.service == "pagerduty")
    assert page["routing_key"] == KEY and page["payload"]["summary"].startswith(
        "GPUFallenOffBus on node-a: GPU 1"
    )
    assert "level=error" not in server.log_tail(200), server.log_tail(200)
