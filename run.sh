#!/usr/bin/env bash
# The two set-up commands of the README. Each one does all of its own set-up:
#   ./run.sh demo [options]   the local demo stack on a simulated fleet
#   ./run.sh test             the whole test suite (what CI runs)
# System packages (Prometheus, Alertmanager, promtool, amtool, jsonnet, Chromium) are installed with
# apt-get when running as root; otherwise the exact install line is printed.
set -euo pipefail
cd "$(dirname "$0")"

APT_PACKAGES=(prometheus prometheus-alertmanager jsonnet python3-venv chromium victoria-metrics)
VENV=.venv
EXTRAS="scorer,mixin,test,dev"

need_packages() {
    local missing=()
    command -v prometheus >/dev/null || missing+=(prometheus)
    command -v promtool >/dev/null || missing+=(prometheus)
    command -v prometheus-alertmanager >/dev/null || command -v alertmanager >/dev/null || missing+=(prometheus-alertmanager)
    command -v amtool >/dev/null || missing+=(prometheus-alertmanager)
    command -v jsonnet >/dev/null || missing+=(jsonnet)
    command -v chromium >/dev/null || missing+=(chromium)
    command -v victoria-metrics >/dev/null || missing+=(victoria-metrics)
    python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
    printf '%s\n' "${missing[@]}" | sort -u | grep -v '^$' || true
}

ensure_system_packages() {
    local missing
    missing=$(need_packages)
    [ -z "$missing" ] && return 0
    # shellcheck disable=SC2086
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing system packages: $(echo $missing)" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null
        apt-get install -y -qq --no-install-recommends $missing >/dev/null
    else
        echo "missing system packages; install them with: sudo apt-get install -y $(echo $missing)" >&2
        exit 1
    fi
}

# pip and setuptools print dozens of warnings on every editable install: keep them in a log and
# show the log only when the step fails, so a run starts with what matters.
INSTALL_LOG="$VENV/install.log"

quietly() {
    if ! "$@" >>"$INSTALL_LOG" 2>&1; then
        echo "error: '$*' failed; the last lines of $INSTALL_LOG:" >&2
        tail -n 40 "$INSTALL_LOG" >&2
        exit 1
    fi
}

ensure_venv() {
    local stamp="$VENV/.installed" want
    want=$(cat pyproject.toml | sha256sum | cut -d' ' -f1)
    if [ ! -x "$VENV/bin/python" ]; then
        echo "creating virtual environment in $VENV" >&2
        python3 -m venv "$VENV"
    fi
    : > "$INSTALL_LOG"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || [ ! -d build ]; then
        echo "installing gpu-health-monitor[$EXTRAS] into $VENV (log: $INSTALL_LOG)" >&2
        quietly "$VENV/bin/python" -m pip install -q --upgrade pip
        # editable_mode=strict builds a link tree, so mypy and pytest see the namespaced
        # package (gpu_health.exporter lives in exporter/) exactly as an install would.
        quietly "$VENV/bin/python" -m pip install -q -e ".[$EXTRAS]" --config-settings editable_mode=strict
        echo "$want" > "$stamp"
    else
        # New modules appear in the link tree only on reinstall; it is quick without deps.
        quietly "$VENV/bin/python" -m pip install -q --no-deps -e . --config-settings editable_mode=strict
    fi
}

run_tests() {
    ensure_system_packages
    ensure_venv
    echo "== ruff" >&2
    "$VENV/bin/ruff" check .
    echo "== mypy" >&2
    "$VENV/bin/mypy" -p gpu_health
    echo "== gpu-health generate --check (rules/, grafana/, deploy/ match the mixin)" >&2
    "$VENV/bin/gpu-health" generate --check
    echo "== pytest (slow tests included; 6 workers, one module per worker)" >&2
    # --durations: the slowest tests in every CI log, to keep the suite inside its time.
    # --no-loadscope-reorder: modules start in collection order, so tests/alertmanager's
    # real-time waits (the two longest tests, single-test modules) start first; xdist would
    # otherwise queue modules by test count and start them last, 9 minutes in (838 s against
    # 535 s for the whole run, measured on the same machine).
    # -n 6 on the 2-core CI machine: those two tests hold two workers for about 4 minutes while
    # using 0.05 of a core between them, and other modules wait on real time too (a bench that
    # waits for Prometheus' compaction, the demo), so four more workers keep both cores busy
    # (the whole pytest run: 893 s with 3 workers, 822 s with 4, 774 s with 5, one machine, one
    # day; later 812 s with 5 and 762 s with 6, one machine, one day; 3.9 GB used at most).
    # A later -n (./run.sh test -n 12) overrides it on a larger machine.
    # OMP_NUM_THREADS=1: six workers on two cores, and XGBoost's OpenMP threads spin while
    # they wait for a core (tests/scorer/test_scorer_properties.py beside three busy loops:
    # 31.3 s of CPU with XGBoost's default threads, 17.2 s with one; 45.1 s and 36.0 s of wall).
    # Training keeps its own n_jobs. An OMP_NUM_THREADS already set is kept.
    export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
    "$VENV/bin/python" -m pytest -m "slow or not slow" -n 6 --dist loadfile \
        --no-loadscope-reorder --durations=15 "$@"
}

run_demo() {
    ensure_system_packages
    ensure_venv
    exec "$VENV/bin/gpu-health" demo "$@"
}

usage() {
    echo "usage: ./run.sh demo [options]   start the demo stack on a simulated fleet"
    echo "                                  (./run.sh demo --help for its options)"
    echo "       ./run.sh test [pytest options]  run the whole test suite"
}

case "${1:-}" in
    test) shift; run_tests "$@" ;;
    demo) shift; run_demo "$@" ;;
    -h|--help|help) usage ;;
    "") usage >&2; exit 2 ;;
    *) echo "./run.sh: unknown command '$1'" >&2; usage >&2; exit 2 ;;
esac
