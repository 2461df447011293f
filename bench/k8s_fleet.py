#!/usr/bin/env python3
"""Independent GPU-fleet telemetry simulator: a Kubernetes cluster scraped from
NVIDIA dcgm-exporter, written as a Prometheus TSDB plus ground truth.

Written by an outside tester from public facts only (dcgm-exporter metric and
label names, NVIDIA XID catalogue, Llama 3 / InfiniteHBD failure statistics)
and the author's own view of GPU failure physics and Kubernetes operations.

Provenance and use: this generator was written blind, by a separate session that never saw
this project's simulator (gpu_health.sim), from issue #16's description of an outside trial
plus public facts about dcgm-exporter on Kubernetes. It is kept in the repository only to
*evaluate* the scorer on a fleet whose physics and label churn we did not write: never train,
tune or choose weights or thresholds on what it generates, or it stops being held out. The
numbers the scorer ships with on it are in docs/model-card.md.

Output directory OUT:
  OUT/prometheus/    TSDB built with ``promtool tsdb create-blocks-from openmetrics``
  OUT/failures.csv   uuid,time,mode,precursor,precursor_start (Unix seconds)
  OUT/truth.json     counts, precursor share, lead-time quantiles, confounder counts

Design summary (see the docstrings of each function for the reasons):
  * slots (node, gpu index) hold a sequence of physical GPUs (UUIDs); a failure
    ends the GPU's series, a replacement with a new UUID arrives days later
    together with a node reboot;
  * every series carries the pod/namespace/container of the job holding the GPU
    (absent while idle), the exporter pod's ``instance`` and the driver version,
    so jobs, exporter restarts and the rolling driver upgrade split series;
  * volatile counters (*_VOL_*, PCIe replay, NVLink CRC, violation counters)
    restart at zero after a node reboot, aggregate ECC and remapped rows persist;
  * precursor intensity follows x(t)^p, x = (t - start)/(failure - start), so the
    early part of a precursor is weak and overlaps benign noise by design.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time as _time
from dataclasses import dataclass, field

import numpy as np

MODES = ["hbm", "pcie", "nvlink", "thermal", "power", "other"]
# Mode mix: Llama 3 (54 days, 16k H100) attributes the GPU-side interruptions mainly
# to "faulty GPU" and "GPU HBM3 memory"; NVLink and PCIe / host issues follow.
# Thermal and power are rarer but operationally common on air-cooled HGX racks.
MODE_P = np.array([0.28, 0.14, 0.14, 0.12, 0.10, 0.22])
# Probability that a failure of the mode has any telemetry precursor.  Memory
# degradation is the most visible (ECC, row remapping); "other" (GSP hangs,
# XID 79 out of nowhere, board faults) is taken as sudden.  Weighted share ~0.30.
PRECURSOR_P = {
    "hbm": 0.55,
    "pcie": 0.30,
    "nvlink": 0.30,
    "thermal": 0.35,
    "power": 0.25,
    "other": 0.0,
}
# Lead time (days) log-normal medians: HBM degradation escalates over days,
# interconnect and power faults more abruptly.  sigma=0.7 in log space.
LEAD_MEDIAN_D = {"hbm": 5.0, "pcie": 2.0, "nvlink": 2.0, "thermal": 3.0, "power": 1.5}

MODELS = {
    # name: tdp W, idle W, max SM MHz, idle SM MHz, GPU slowdown temp C, pci bus ids
    "NVIDIA H100 80GB HBM3": dict(
        tdp=700.0,
        idle=72.0,
        clk=1980,
        idle_clk=345,
        slow=87.0,
        bus=["18", "2A", "3A", "5D", "9A", "AB", "BA", "DB"],
    ),
    "NVIDIA A100-SXM4-80GB": dict(
        tdp=400.0,
        idle=58.0,
        clk=1410,
        idle_clk=210,
        slow=88.0,
        bus=["07", "0F", "47", "4E", "87", "90", "B7", "BD"],
    ),
}
DRIVERS = ["535.161.08", "550.90.07"]

METRICS = [
    "DCGM_FI_DEV_GPU_TEMP",
    "DCGM_FI_DEV_MEMORY_TEMP",
    "DCGM_FI_DEV_POWER_USAGE",
    "DCGM_FI_DEV_GPU_UTIL",
    "DCGM_FI_DEV_SM_CLOCK",
    "DCGM_FI_DEV_XID_ERRORS",
    "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL",
    "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
    "DCGM_FI_DEV_ECC_SBE_AGG_TOTAL",
    "DCGM_FI_DEV_ECC_DBE_AGG_TOTAL",
    "DCGM_FI_DEV_PCIE_REPLAY_COUNTER",
    "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL",
    "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS",
    "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS",
    "DCGM_FI_DEV_ROW_REMAP_FAILURE",
    "DCGM_FI_DEV_POWER_VIOLATION",
    "DCGM_FI_DEV_THERMAL_VIOLATION",
]
FLOAT_METRICS = {"DCGM_FI_DEV_POWER_USAGE"}
BLOCK_S = 18 * 3600  # promtool block size used (2h*3^2); files are cut on these bounds


@dataclass
class Gpu:
    """One physical GPU (one UUID) living in a slot from ``a`` to ``b`` (steps, b exclusive)."""

    idx: int
    node: int
    slot: int
    uuid: str
    a: int
    b: int
    fail: dict | None = None
    benign: set = field(default_factory=set)


def step_of(days: float, res: int) -> int:
    return round(float(days * 86400 / res))


def make_uuid(rng: np.random.Generator) -> str:
    h = "".join(f"{v:02x}" for v in rng.integers(0, 256, 16))
    return f"GPU-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def plan_nodes(rng: np.random.Generator, n_nodes: int, T: int, res: int) -> dict:
    """Node-level operations: models, rolling driver upgrade, maintenance reboots,
    exporter restarts and scrape gaps.

    * one GPU model per node; ~25% A100 nodes (an older pool kept in service);
    * the driver upgrade starts at ~55% of the history and rolls in batches of
      2-4 nodes every 3-6 h (drain, reboot, ~10-20 min without scrapes);
    * other reboots: maintenance at ~1 per node per 40 days; replacements add
      reboots later (see plan_failures);
    * exporter pod restarts (OOM, DaemonSet rollout, node pressure) ~1 per 8 days
      per node and at every reboot, each giving a new pod IP => new ``instance``;
    * scrape gaps: exporter unreachable ~1 per 12 days per node for 5 min - 8 h
      (log-normal, median 25 min), plus one cluster-wide 40-minute Prometheus outage.
    """
    n_a100 = max(1, round(n_nodes * 0.25))
    models = np.array(["NVIDIA H100 80GB HBM3"] * n_nodes, dtype=object)
    models[rng.choice(n_nodes, n_a100, replace=False)] = "NVIDIA A100-SXM4-80GB"
    upgrade = np.full(n_nodes, T + 10, dtype=np.int64)
    s = int(T * rng.uniform(0.5, 0.6))
    order = rng.permutation(n_nodes)
    k = 0
    while k < n_nodes:
        batch = order[k : k + int(rng.integers(2, 5))]
        for j, n in enumerate(batch):
            upgrade[n] = s + j * int(rng.integers(1, 4))
        k += len(batch)
        s += step_of(rng.uniform(3, 6) / 24, res)
    reboots: list[list[int]] = [[int(u)] if u < T else [] for u in upgrade]
    for n in range(n_nodes):
        for _ in range(rng.poisson(T * res / 86400 / 40)):
            reboots[n].append(int(rng.integers(step_of(1, res), T - 10)))
    restarts = [
        sorted(int(x) for x in rng.integers(1, T, rng.poisson(T * res / 86400 / 8)))
        for _ in range(n_nodes)
    ]
    gaps = []
    for n in range(n_nodes):
        for _ in range(rng.poisson(T * res / 86400 / 12)):
            st = int(rng.integers(0, T))
            ln = max(
                1, round(float(np.clip(rng.lognormal(np.log(25 * 60), 1.0), 300, 8 * 3600) / res))
            )
            gaps.append((n, st, min(T, st + ln)))
    g0 = int(rng.integers(T // 5, 4 * T // 5))
    glob_gap = (g0, g0 + max(1, step_of(40 / 1440, res)))
    return dict(
        models=models,
        upgrade=upgrade,
        reboots=reboots,
        restarts=restarts,
        gaps=gaps,
        glob_gap=glob_gap,
    )


def plan_failures(
    rng: np.random.Generator, n_nodes: int, T: int, res: int, nodes: dict, n_fail: int
) -> list[Gpu]:
    """Failure times, modes, affected GPUs and replacements.

    Times are uniform over the history (a fixed-rate fleet far above public
    rates, for statistics).  Node correlation after InfiniteHBD-Trace: with
    probability 0.23 a failure lands on a node that failed in the previous 30
    days (shared baseboard, power shelf, cooling).  A100 nodes carry 1.3x weight
    (older parts).  The failed slot stays empty for 2-7 days, then the GPU is
    swapped during a node reboot and a new UUID appears on the same index.
    """
    gpus: list[Gpu] = []
    slot_cur: dict[tuple[int, int], int] = {}
    slot_free_at: dict[tuple[int, int], int] = {}
    for n in range(n_nodes):
        for g in range(8):
            gpus.append(Gpu(len(gpus), n, g, make_uuid(rng), 0, T))
            slot_cur[(n, g)] = len(gpus) - 1
    w = np.where(nodes["models"] == "NVIDIA A100-SXM4-80GB", 1.3, 1.0)
    w = w / w.sum()
    times = np.sort(rng.uniform(0.4 * 86400 / res, T - 2, n_fail)).astype(np.int64)
    recent: list[tuple[int, int]] = []
    for tf in times:
        tf = int(tf)
        cand_nodes = [n for (n, t) in recent if tf - t < step_of(30, res)]
        for attempt in range(50):
            if cand_nodes and attempt < 5 and rng.random() < 0.23:
                n = int(rng.choice(cand_nodes))
            else:
                n = int(rng.choice(n_nodes, p=w))
            slots = [
                g
                for g in range(8)
                if slot_cur.get((n, g)) is not None
                and gpus[slot_cur[(n, g)]].a < tf - 12
                and slot_free_at.get((n, g), -1) < tf
            ]
            if slots:
                break
        else:
            continue
        g = int(rng.choice(slots))
        gi = slot_cur[(n, g)]
        mode = str(rng.choice(MODES, p=MODE_P))
        gpus[gi].b = tf
        gpus[gi].fail = dict(step=tf, mode=mode, offset=float(rng.uniform(0, res)))
        recent.append((n, tf))
        rep = tf + step_of(rng.uniform(2, 7), res)
        slot_cur[(n, g)] = None
        if rep < T - 12:
            nodes["reboots"][n].append(rep)
            start = rep + 4
            gpus.append(Gpu(len(gpus), n, g, make_uuid(rng), start, T))
            slot_cur[(n, g)] = len(gpus) - 1
            slot_free_at[(n, g)] = start
        else:
            slot_free_at[(n, g)] = T + 1
    return gpus


def node_timelines(nodes: dict, n_nodes: int, T: int, res: int, rng: np.random.Generator) -> dict:
    """Per-node arrays over time: driver index, exporter incarnation, reset epoch and
    scrape mask.  A reboot takes the node off the scrape for 2-4 steps (10-20 min)
    and bumps the reset epoch (GPU reset => volatile counters and XID gauge to 0)
    and the exporter incarnation (new pod, new IP).  An exporter restart misses
    at most one scrape."""
    drv = np.zeros((n_nodes, T), np.int8)
    inc = np.zeros((n_nodes, T), np.int32)
    epoch = np.zeros((n_nodes, T), np.int32)
    scraped = np.ones((n_nodes, T), bool)
    ips: dict[tuple[int, int], str] = {}
    n_restarts = 0
    for n in range(n_nodes):
        u = nodes["upgrade"][n]
        if u < T:
            drv[n, u:] = 1
        rb = sorted(set(nodes["reboots"][n]))
        nodes["reboots"][n] = rb
        for r in rb:
            epoch[n, r:] += 1
            inc[n, r:] += 1
            scraped[n, r : min(T, r + int(rng.integers(2, 5)))] = False
        for r in nodes["restarts"][n]:
            inc[n, r:] += 1
            if rng.random() < 0.5:
                scraped[n, r] = False
        n_restarts += len(rb) + len(nodes["restarts"][n])
        for k in range(int(inc[n, -1]) + 1):
            ips[(n, k)] = f"10.244.{n + 1}.{int(rng.integers(2, 255))}:9400"
    for n, a, b in nodes["gaps"]:
        scraped[n, a:b] = False
    ga, gb = nodes["glob_gap"]
    scraped[:, ga:gb] = False
    return dict(drv=drv, inc=inc, epoch=epoch, scraped=scraped, ips=ips, n_restarts=n_restarts)


NAMESPACES_TRAIN = ["llm-pretrain", "research", "ml-training", "vision", "rl-team"]
NAMESPACES_INF = ["inference", "serving", "batch-eval"]


def job_timelines(
    rng: np.random.Generator, gpus: list[Gpu], nodes: dict, n_nodes: int, T: int, res: int
) -> tuple[np.ndarray, list[dict]]:
    """Which job (pod) holds each slot at each step; 0 = idle (no pod labels).

    Training nodes (75%) mostly run whole-node pods (one pod with 8 GPUs, all
    8 series carry the same pod label); inference nodes mostly run one pod per
    GPU starting and ending independently.  Busy spells are log-normal (median
    14 h, 1 h - 5 d), idle gaps exponential (mean 1.5 h, 30% back-to-back).
    Reboots are preceded by a 1-2 h drain and a GPU failure kills the node's
    running job (NCCL collective dies), as in real clusters.
    """
    jobs: list[dict] = [dict(pod="", namespace="", container="", util=0.0, pfrac=0.0, pv=0.0)]
    slot_job = np.zeros((n_nodes * 8, T), np.int32)
    forced: list[list[tuple[int, int]]] = [[] for _ in range(n_nodes)]
    for n in range(n_nodes):
        for r in nodes["reboots"][n]:
            forced[n].append(
                (
                    max(0, r - step_of(rng.uniform(1, 2) / 24, res)),
                    r + step_of(rng.uniform(0.3, 1) / 24, res),
                )
            )
    for g in gpus:
        if g.fail:
            forced[g.node].append(
                (g.fail["step"], g.fail["step"] + step_of(rng.uniform(0, 2) / 24, res))
            )
    for n in range(n_nodes):
        fz = sorted(forced[n])
        training = rng.random() < 0.75

        def new_job(kind: str) -> int:
            h = hashlib.sha1(rng.bytes(8)).hexdigest()
            if kind == "train":
                base = str(
                    rng.choice(
                        ["llama-ft", "pretrain-7b", "moe-exp", "vit-l", "rlhf-ppo", "dpo-sweep"]
                    )
                )
                pod = f"{base}-{h[:5]}-worker-{int(rng.integers(0, 64))}"
                ns = str(rng.choice(NAMESPACES_TRAIN))
                cont = str(rng.choice(["pytorch", "trainer", "main"]))
                heavy = rng.random() < 0.15
                j = dict(
                    pod=pod,
                    namespace=ns,
                    container=cont,
                    util=float(rng.uniform(85, 99)),
                    pfrac=float(rng.uniform(0.8, 1.0)),
                    pv=float(
                        rng.uniform(0.08, 0.35) if heavy else rng.lognormal(np.log(0.01), 1.0)
                    ),
                )
            else:
                base = str(rng.choice(["vllm-llama", "triton-embed", "sdxl-api", "eval-harness"]))
                pod = f"{base}-{h[:10]}-{h[10:15]}"
                ns = str(rng.choice(NAMESPACES_INF))
                cont = str(rng.choice(["vllm", "triton", "server"]))
                j = dict(
                    pod=pod,
                    namespace=ns,
                    container=cont,
                    util=float(rng.uniform(20, 75)),
                    pfrac=float(rng.uniform(0.35, 0.7)),
                    pv=0.0,
                )
            jobs.append(j)
            return len(jobs) - 1

        s = int(rng.integers(0, step_of(0.5, res)))
        while s < T:
            # skip forced idle windows
            inside = [b for (a, b) in fz if a <= s < b]
            if inside:
                s = max(inside)
                continue
            dur = step_of(float(np.clip(rng.lognormal(np.log(14 / 24), 1.0), 1 / 24, 5)), res)
            e = s + max(1, dur)
            nxt = [a for (a, b) in fz if s < a < e]
            if nxt:
                e = min(nxt)
            e = min(e, T)
            full = rng.random() < (0.85 if training else 0.2)
            rows = slice(n * 8, n * 8 + 8)
            if full:
                slot_job[rows, s:e] = new_job("train")
            else:
                for g in range(8):
                    p = s + int(rng.integers(0, max(1, (e - s) // 4)))
                    while p < e:
                        if rng.random() < 0.75:
                            q = min(
                                e,
                                p
                                + max(
                                    1,
                                    step_of(
                                        float(
                                            np.clip(rng.lognormal(np.log(6 / 24), 1.0), 1 / 24, 3)
                                        ),
                                        res,
                                    ),
                                ),
                            )
                            slot_job[n * 8 + g, p:q] = new_job(
                                "infer" if not training or rng.random() < 0.5 else "train"
                            )
                            p = q + int(rng.exponential(step_of(0.5 / 24, res)))
                        else:
                            p += step_of(float(rng.uniform(0.5, 4)) / 24, res)
            gap = 0 if rng.random() < 0.3 else int(rng.exponential(step_of(1.5 / 24, res)))
            s = e + gap
    return slot_job, jobs


def _poisson(rng: np.random.Generator, lam: np.ndarray) -> np.ndarray:
    return rng.poisson(np.maximum(lam, 0.0)).astype(np.int64)


def _vol(inc: np.ndarray, epoch: np.ndarray) -> np.ndarray:
    """Cumulative sum that restarts at zero whenever ``epoch`` changes (GPU reset)."""
    cs = np.cumsum(inc)
    starts = np.flatnonzero(np.r_[True, epoch[1:] != epoch[:-1]])
    seg = np.cumsum(np.r_[True, epoch[1:] != epoch[:-1]]) - 1
    offs = np.where(starts > 0, cs[np.maximum(starts - 1, 0)], 0)
    base = offs[seg]
    return cs - base


def simulate(
    rng: np.random.Generator,
    gpus: list[Gpu],
    nodes: dict,
    nt: dict,
    slot_job: np.ndarray,
    jobs: list[dict],
    T: int,
    res: int,
) -> tuple[dict[str, np.ndarray], dict]:
    """Fill per-GPU metric rows over each GPU's life and return truth details.

    Baseline physics: power follows utilisation (~TDP at full training load,
    log-linear in util); GPU temperature = inlet (node) + per-GPU offset + ~42 C
    x power/TDP; HBM temperature runs 5-10 C above the die.  SM clock sits at
    max when busy and drops with power capping (POWER_VIOLATION, µs spent
    throttled, accrued by heavy jobs on healthy GPUs too) or thermal slowdown.
    Healthy GPUs see rare SBEs, the occasional PCIe replay and NVLink CRC flit,
    and application XIDs (13, 31, 43, 45) when jobs crash.
    """
    G = len(gpus)
    job_util = np.array([j["util"] for j in jobs])
    job_pf = np.array([j["pfrac"] for j in jobs])
    job_pv = np.array([j["pv"] for j in jobs])
    arr = {m: np.zeros((G, T), np.float64 if m in FLOAT_METRICS else np.int64) for m in METRICS}
    alive = np.zeros((G, T), bool)
    n_nodes = nt["drv"].shape[0]
    node_amb = rng.normal(27.0, 1.5, n_nodes)
    hot_nodes = rng.choice(n_nodes, max(1, round(n_nodes * 0.07)), replace=False)
    node_amb[hot_nodes] += rng.uniform(9, 13, len(hot_nodes))
    initial = [g for g in gpus if g.a == 0]
    nI = len(initial)

    def pick(frac: float) -> set[int]:
        return set(
            int(x)
            for x in rng.choice([g.idx for g in initial], max(1, round(nI * frac)), replace=False)
        )

    benign = {
        "sbe_steady": pick(0.06),
        "sbe_burst": pick(0.03),
        "pcie_steady": pick(0.05),
        "pcie_storm": pick(0.02),
        "nvlink_steady": pick(0.04),
        "hot_gpu": pick(0.03),
    }
    for k, ids in benign.items():
        for i in ids:
            gpus[i].benign.add(k)
    for g in gpus:
        a, b = g.a, g.b
        if b <= a:
            continue
        L = b - a
        n = g.node
        spec = MODELS[nodes["models"][n]]
        alive[g.idx, a:b] = True
        jid = slot_job[n * 8 + g.slot, a:b]
        busy = jid > 0
        ep = nt["epoch"][n, a:b]
        # --- baseline gauges
        util = np.where(busy, np.clip(job_util[jid] + rng.normal(0, 4, L), 0, 100), 0.0)
        pfrac = np.where(busy, job_pf[jid], 0.0)
        power = spec["idle"] + (spec["tdp"] * 0.97 - spec["idle"]) * (
            util / 100
        ) ** 1.2 * np.maximum(pfrac, 0.3)
        power = power + rng.normal(0, 0.012 * spec["tdp"], L)
        pv_frac = np.where(busy, np.clip(job_pv[jid] * rng.lognormal(0, 0.5, L), 0, 1), 0.0)
        off = rng.normal(0, 1.5) + (rng.uniform(5, 8) if "hot_gpu" in g.benign else 0.0)
        dtemp = np.zeros(L)
        clock_mult = np.ones(L)
        sbe_l = np.full(L, 2e-4)
        pcie_l = np.where(busy, 0.01, 0.001)
        nvl_l = np.where(busy, 0.03, 0.0)
        xid = np.zeros(L, np.int64)
        extra_remap = np.zeros(L, np.int64)
        remap_fail = np.zeros(L, np.int64)
        # --- benign confounders (never lead to failure by themselves)
        if "sbe_steady" in g.benign:
            sbe_l = sbe_l + rng.lognormal(np.log(0.3), 1.0)
        if "sbe_burst" in g.benign:
            st = int(rng.integers(0, max(1, L - 300)))
            ln = step_of(rng.uniform(1, 3), res)
            xb = np.clip((np.arange(L) - st) / max(1, ln), 0, None)
            sbe_l = sbe_l + np.where((xb > 0) & (xb <= 1), rng.uniform(5, 30) * xb**2, 0.0)
            k = min(L - 1, st + ln)
            extra_remap[k] += int(rng.integers(1, 4))
            xid[k] = 63
        if "pcie_steady" in g.benign:
            pcie_l = pcie_l + rng.lognormal(np.log(3), 1.0) * (0.2 + 0.8 * busy)
        if "pcie_storm" in g.benign:
            st = int(rng.integers(0, max(1, L - 100)))
            ln = step_of(rng.uniform(2, 12) / 24, res)
            pcie_l[st : st + ln] += rng.lognormal(np.log(200), 0.7)
        if "nvlink_steady" in g.benign:
            nvl_l = nvl_l + rng.lognormal(np.log(5), 1.0) * (0.2 + 0.8 * busy)
        pv_ep = np.zeros(L, bool)
        sbe_add = np.zeros(L, np.int64)
        # --- precursor physics
        vis_step = None
        f = g.fail
        if f is not None:
            mode = f["mode"]
            has = rng.random() < PRECURSOR_P[mode]
            f["precursor"] = False
            if has:
                lead = int(
                    np.clip(rng.lognormal(np.log(LEAD_MEDIAN_D[mode]), 0.7), 0.1, 21) * 86400 / res
                )
                ps = b - lead  # absolute step
                rel = np.arange(a, b)
                x = np.clip((rel - ps) / max(1, lead), 0, 1)
                p = rng.uniform(1.5, 3.0)
                xp = x**p
                amp = rng.lognormal(0, 0.8)  # some precursors are faint
                if mode == "hbm":
                    pre = _poisson(rng, 15 * amp * xp)
                    sbe_add = pre
                    remap = _poisson(rng, pre / 80.0)
                    dbe = (
                        _poisson(
                            rng, rng.uniform(0.02, 0.2) * (np.clip((x - 0.75) / 0.25, 0, 1) ** 2)
                        )
                        if rng.random() < 0.6
                        else np.zeros(L, np.int64)
                    )
                    extra_remap += remap
                    if rng.random() < 0.25:
                        remap_fail[x >= 0.92] = 1
                    xid[remap > 0] = 63
                    k92 = np.flatnonzero(15 * amp * xp > 5)
                    if len(k92):
                        xid[k92[0]] = 92
                    xid[dbe > 0] = np.where(rng.random(int((dbe > 0).sum())) < 0.5, 94, 48)
                    f["_dbe"] = dbe
                    cum = np.cumsum(pre) + np.cumsum(remap) * 3 + np.cumsum(dbe) * 3
                    vis = np.flatnonzero(cum >= 3)
                elif mode == "pcie":
                    pre = _poisson(rng, 150 * amp * xp * (0.3 + 0.7 * busy))
                    f["_pcie"] = pre
                    vis = np.flatnonzero(np.cumsum(pre) >= 10)
                elif mode == "nvlink":
                    pre = _poisson(rng, 300 * amp * xp * (0.2 + 0.8 * busy))
                    f["_nvl"] = pre
                    k74 = rng.random(L) < 0.02 * x**2
                    xid[k74] = 74
                    vis = np.flatnonzero(np.cumsum(pre) + 10 * np.cumsum(k74) >= 10)
                elif mode == "thermal":
                    D = rng.uniform(10, 22) * min(amp, 1.5)
                    dtemp = D * x**1.5
                    vis = np.flatnonzero(dtemp >= 3.0)
                else:  # power: power-brake / slowdown episodes, increasingly frequent
                    q = np.clip(0.3 * amp * xp, 0, 0.6)
                    pv_ep = (rng.random(L) < q) & (x > 0)
                    vis = np.flatnonzero(np.cumsum(pv_ep) >= 2)
                vis = vis[(vis < L)]
                if len(vis) and vis[0] < L - 1:
                    vis_step = a + int(vis[0])
                    f["precursor"] = True
                    f["ps"] = vis_step
                    f["phys_start"] = ps
        # --- thermal and power
        power = np.where(pv_ep, power * rng.uniform(0.45, 0.65, L), power)
        pv_frac = np.where(pv_ep, rng.uniform(0.4, 1.0, L), pv_frac)
        temp = (
            node_amb[n]
            + off
            + 42.0 * np.clip(power / spec["tdp"], 0, 1.1)
            + dtemp * (0.4 + 0.6 * power / spec["tdp"])
        )
        temp = temp + rng.normal(0, 0.7, L)
        tv_frac = np.clip((temp - spec["slow"]) / 5.0, 0, 1)
        clock_mult = 1 - 0.12 * np.clip(pv_frac, 0, 1) - 0.35 * tv_frac - 0.4 * pv_ep
        temp = temp - 3.0 * tv_frac  # slowdown holds temperature near the limit
        mtemp = temp + 6 + 4 * util / 100 + rng.normal(0, 0.7, L)
        clock = np.where(
            busy | pv_ep, np.round(spec["clk"] * clock_mult / 15) * 15, spec["idle_clk"]
        )
        # --- application XIDs on healthy GPUs: some job ends are crashes, plus background
        ends = np.flatnonzero((jid[:-1] > 0) & (jid[1:] != jid[:-1])) + 1
        crash = ends[rng.random(len(ends)) < 0.12]
        xid_app = np.zeros(L, np.int64)
        xid_app[crash] = rng.choice([13, 31, 43, 45], len(crash), p=[0.3, 0.3, 0.25, 0.15])
        bg = np.flatnonzero(busy & (rng.random(L) < 1 / (10 * 86400 / res)))
        xid_app[bg] = rng.choice([13, 31, 43], len(bg))
        xid = np.where(xid > 0, xid, xid_app)
        # --- error increments
        sbe = _poisson(rng, sbe_l) + sbe_add
        dbe = f.get("_dbe", np.zeros(L, np.int64)) if f else np.zeros(L, np.int64)
        pcie = _poisson(rng, pcie_l) + (f.get("_pcie", 0) if f else 0)
        nvl = _poisson(rng, nvl_l) + (f.get("_nvl", 0) if f else 0)
        if "sbe_steady" in g.benign:  # steady-leaking row gets remapped now and then
            extra_remap[rng.random(L) < 1 / (20 * 86400 / res)] += 1
        # --- last sample before a failure sometimes shows the fatal XID
        if f is not None and rng.random() < 0.5:
            xid[-1] = {
                "hbm": 95,
                "pcie": 79,
                "nvlink": 79,
                "thermal": 79,
                "power": 79,
                "other": 79,
            }[f["mode"]]
        # --- XID gauge: last code, cleared by a GPU reset
        reset = np.r_[False, ep[1:] != ep[:-1]]
        evt = np.where(xid > 0, np.arange(L), -1)
        evt = np.where(reset & (xid == 0), np.arange(L), evt)
        last = np.maximum.accumulate(evt)
        code = np.where(
            last >= 0, np.where(xid[np.maximum(last, 0)] > 0, xid[np.maximum(last, 0)], 0), 0
        )
        # --- counters
        i = g.idx
        arr["DCGM_FI_DEV_GPU_TEMP"][i, a:b] = np.round(temp)
        arr["DCGM_FI_DEV_MEMORY_TEMP"][i, a:b] = np.round(mtemp)
        arr["DCGM_FI_DEV_POWER_USAGE"][i, a:b] = np.round(
            np.clip(power, spec["idle"] * 0.8, spec["tdp"] * 1.02), 2
        )
        arr["DCGM_FI_DEV_GPU_UTIL"][i, a:b] = np.round(util)
        arr["DCGM_FI_DEV_SM_CLOCK"][i, a:b] = clock
        arr["DCGM_FI_DEV_XID_ERRORS"][i, a:b] = code
        agg0_sbe = int(rng.poisson(3)) if (a == 0 and rng.random() < 0.3) else 0
        arr["DCGM_FI_DEV_ECC_SBE_VOL_TOTAL"][i, a:b] = _vol(sbe, ep)
        arr["DCGM_FI_DEV_ECC_DBE_VOL_TOTAL"][i, a:b] = _vol(dbe, ep)
        arr["DCGM_FI_DEV_ECC_SBE_AGG_TOTAL"][i, a:b] = agg0_sbe + np.cumsum(sbe)
        arr["DCGM_FI_DEV_ECC_DBE_AGG_TOTAL"][i, a:b] = np.cumsum(dbe)
        arr["DCGM_FI_DEV_PCIE_REPLAY_COUNTER"][i, a:b] = _vol(pcie, ep)
        arr["DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL"][i, a:b] = _vol(nvl, ep)
        arr["DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS"][i, a:b] = np.minimum(
            np.cumsum(extra_remap), 512
        ) + (int(rng.integers(0, 3)) if agg0_sbe else 0)
        arr["DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS"][i, a:b] = np.cumsum(dbe)
        arr["DCGM_FI_DEV_ROW_REMAP_FAILURE"][i, a:b] = remap_fail
        arr["DCGM_FI_DEV_POWER_VIOLATION"][i, a:b] = _vol(
            np.round(pv_frac * res * 1e6).astype(np.int64), ep
        )
        arr["DCGM_FI_DEV_THERMAL_VIOLATION"][i, a:b] = _vol(
            np.round(tv_frac * res * 1e6).astype(np.int64), ep
        )
        for k in ("_dbe", "_pcie", "_nvl"):
            if f is not None:
                f.pop(k, None)
    info = dict(benign=benign, hot_nodes=[int(x) for x in hot_nodes], alive=alive)
    return arr, info


def write_tsdb(
    out: str,
    gpus: list[Gpu],
    nodes: dict,
    nt: dict,
    slot_job: np.ndarray,
    jobs: list[dict],
    arr: dict[str, np.ndarray],
    alive: np.ndarray,
    t0: int,
    T: int,
    res: int,
) -> dict:
    """Write OpenMetrics files cut on 18 h block bounds (each parsed once by
    promtool with --max-block-duration=18h), import each, delete it."""
    prom = os.path.join(out, "prometheus")
    os.makedirs(prom, exist_ok=True)
    tmp = os.path.join(out, "_om")
    os.makedirs(tmp, exist_ok=True)
    times = t0 + res * np.arange(T)
    bounds = [0]
    nb = (t0 // BLOCK_S + 1) * BLOCK_S
    while nb < times[-1]:
        bounds.append(int(np.searchsorted(times, nb)))
        nb += BLOCK_S
    bounds.append(T)
    valid = alive.copy()
    for g in gpus:
        valid[g.idx] &= nt["scraped"][g.node]
    drv_lbl = DRIVERS
    n_samples = 0
    series: set = set()
    for c in range(len(bounds) - 1):
        c0, c1 = bounds[c], bounds[c + 1]
        if c1 <= c0:
            continue
        tsl = [f" {int(t)}\n" for t in times[c0:c1]]
        runs = []
        for g in gpus:
            v = valid[g.idx, c0:c1]
            if not v.any():
                continue
            n = g.node
            jid = slot_job[n * 8 + g.slot, c0:c1]
            dv = nt["drv"][n, c0:c1]
            ic = nt["inc"][n, c0:c1]
            ch = (
                np.flatnonzero((jid[1:] != jid[:-1]) | (dv[1:] != dv[:-1]) | (ic[1:] != ic[:-1]))
                + 1
            )
            edges = np.r_[0, ch, c1 - c0]
            spec = MODELS[nodes["models"][n]]
            for r in range(len(edges) - 1):
                s0, s1 = edges[r], edges[r + 1]
                idx = np.flatnonzero(v[s0:s1]) + s0
                if len(idx) == 0:
                    continue
                j = jobs[int(jid[s0])]
                lab = (
                    f'gpu="{g.slot}",UUID="{g.uuid}",pci_bus_id="00000000:{spec["bus"][g.slot]}:00.0",'
                    f'device="nvidia{g.slot}",modelName="{nodes["models"][n]}",Hostname="gpu-node-{n:02d}",'
                    f'DCGM_FI_DRIVER_VERSION="{drv_lbl[int(dv[s0])]}"'
                )
                if j["pod"]:
                    lab += (
                        f',container="{j["container"]}",namespace="{j["namespace"]}",'
                        f'pod="{j["pod"]}"'
                    )
                lab += f',instance="{nt["ips"][(n, int(ic[s0]))]}",job="dcgm-exporter"'
                runs.append((g.idx, lab, idx.tolist()))
                series.add(lab)
        path = os.path.join(tmp, f"c{c:04d}.om")
        with open(path, "w") as fh:
            for m in METRICS:
                fh.write(f"# TYPE {m} gauge\n")
                blk = arr[m][:, c0:c1]
                cache: dict[int, list] = {}
                for gi, lab, idx in runs:
                    vs = cache.get(gi)
                    if vs is None:
                        row = blk[gi]
                        vs = (
                            np.round(row, 2).astype(str) if m in FLOAT_METRICS else row.astype(str)
                        ).tolist()
                        cache[gi] = vs
                    pre = f"{m}{{{lab}}} "
                    fh.write("".join([pre + vs[k] + tsl[k] for k in idx]))
                    n_samples += len(idx)
            fh.write("# EOF\n")
        r = subprocess.run(
            [
                "promtool",
                "tsdb",
                "create-blocks-from",
                "openmetrics",
                "-q",
                "--max-block-duration=18h",
                path,
                prom,
            ],
            capture_output=True,
            text=True,
        )
        if r.returncode != 0:
            sys.exit(f"promtool failed on {path}: {r.stderr[-2000:]}")
        os.remove(path)
        print(f"chunk {c + 1}/{len(bounds) - 1} done", file=sys.stderr, flush=True)
    shutil.rmtree(tmp, ignore_errors=True)
    return dict(samples=n_samples, series_label_sets=len(series), series=len(series) * len(METRICS))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--gpus",
        type=int,
        default=256,
        help="GPU slots, 8 per node; a remainder below 8 is dropped (default 256)",
    )
    ap.add_argument("--days", type=float, default=60.0, help="history length in days (default 60)")
    ap.add_argument(
        "--resolution",
        type=int,
        default=300,
        help="scrape interval in seconds (default 300); one sample per series per interval",
    )
    ap.add_argument(
        "--seed",
        type=int,
        default=1,
        help="random seed: the same seed, options and --end give the same fleet (default 1)",
    )
    ap.add_argument(
        "--failures",
        type=int,
        default=None,
        help="target number of failures (default: 66-84 drawn, scaled by gpus/256 * days/60); "
        "a failure that finds no eligible slot is dropped, truth.json has the real count",
    )
    ap.add_argument(
        "--end",
        type=int,
        default=None,
        help="Unix end of history, rounded down to the hour; the last sample is one "
        "--resolution before it (default: now - 6 h); pass it to make runs reproducible",
    )
    ap.add_argument(
        "--out",
        required=True,
        help="output directory: OUT/prometheus (replaced if present), OUT/failures.csv, "
        "OUT/truth.json",
    )
    args = ap.parse_args(argv)
    t_start = _time.time()
    rng = np.random.default_rng(args.seed)
    res = args.resolution
    end = args.end if args.end is not None else int(_time.time()) - 6 * 3600
    end -= end % 3600
    T = int(args.days * 86400 // res)
    t0 = end - T * res
    n_nodes = args.gpus // 8
    n_fail = (
        args.failures
        if args.failures is not None
        else round(float(rng.integers(66, 85) * args.gpus / 256 * args.days / 60))
    )
    os.makedirs(args.out, exist_ok=True)
    if os.path.exists(os.path.join(args.out, "prometheus")):
        shutil.rmtree(os.path.join(args.out, "prometheus"))
    nodes = plan_nodes(rng, n_nodes, T, res)
    gpus = plan_failures(rng, n_nodes, T, res, nodes, n_fail)
    nt = node_timelines(nodes, n_nodes, T, res, rng)
    slot_job, jobs = job_timelines(rng, gpus, nodes, n_nodes, T, res)
    arr, info = simulate(rng, gpus, nodes, nt, slot_job, jobs, T, res)
    print(f"simulated in {_time.time() - t_start:.0f}s; writing TSDB", file=sys.stderr, flush=True)
    tsdb = write_tsdb(args.out, gpus, nodes, nt, slot_job, jobs, arr, info["alive"], t0, T, res)
    # ---- ground truth
    rows, leads = [], []
    for g in gpus:
        if g.fail:
            f = g.fail
            tf = int(
                t0 + f["step"] * res - res + f["offset"]
            )  # between last sample and next scrape
            tf = max(tf, int(t0 + (f["step"] - 1) * res) + 1)
            if f.get("precursor"):
                ps = int(t0 + f["ps"] * res)
                leads.append((tf - ps) / 3600)
                rows.append(f"{g.uuid},{tf},{f['mode']},true,{ps}")
            else:
                rows.append(f"{g.uuid},{tf},{f['mode']},false,")
    with open(os.path.join(args.out, "failures.csv"), "w") as fh:
        fh.write("uuid,time,mode,precursor,precursor_start\n" + "\n".join(rows) + "\n")
    splits = 0
    for g in gpus:
        jid = slot_job[g.node * 8 + g.slot, g.a : g.b]
        splits += int((jid[1:] != jid[:-1]).sum())
    fails = [g.fail for g in gpus if g.fail]
    truth = dict(
        seed=args.seed,
        gpus=args.gpus,
        nodes=n_nodes,
        days=args.days,
        resolution_s=res,
        start=int(t0),
        end=int(end),
        physical_gpus=len(gpus),
        models={m: int((nodes["models"] == m).sum()) * 8 for m in MODELS},
        failures=len(fails),
        per_mode={m: sum(1 for f in fails if f["mode"] == m) for m in MODES},
        precursor_share=round(sum(1 for f in fails if f.get("precursor")) / max(1, len(fails)), 3),
        precursor_per_mode={
            m: sum(1 for f in fails if f["mode"] == m and f.get("precursor")) for m in MODES
        },
        lead_time_hours_quantiles={
            q: round(float(np.quantile(leads, float(q))), 1)
            for q in ["0.1", "0.25", "0.5", "0.75", "0.9"]
        }
        if leads
        else {},
        label_churn_series_splits_per_gpu=splits,
        label_churn_series_splits_all_metrics=splits * len(METRICS),
        pod_jobs=len(jobs) - 1,
        exporter_restarts=int(nt["n_restarts"]),
        node_reboots=int(sum(len(r) for r in nodes["reboots"])),
        gpu_resets=int(sum(len(r) for r in nodes["reboots"])) * 8,
        driver_upgrade={
            "from": DRIVERS[0],
            "to": DRIVERS[1],
            "nodes_upgraded": int((nodes["upgrade"] < T).sum()),
            "first": int(t0 + nodes["upgrade"].min() * res),
            "last": int(t0 + nodes["upgrade"][nodes["upgrade"] < T].max() * res)
            if (nodes["upgrade"] < T).any()
            else None,
        },
        replacements=len(gpus) - args.gpus,
        scrape_gaps=len(nodes["gaps"]) + 1,
        cluster_wide_gaps=1,
        benign_noisy_gpus=len(set().union(*info["benign"].values())),
        benign_by_kind={k: len(v) for k, v in info["benign"].items()},
        hot_but_healthy_nodes=[f"gpu-node-{n:02d}" for n in info["hot_nodes"]],
        tsdb=tsdb,
        build_seconds=round(_time.time() - t_start),
    )
    with open(os.path.join(args.out, "truth.json"), "w") as fh:
        json.dump(truth, fh, indent=1)
    print(json.dumps(truth, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
