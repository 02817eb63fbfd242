"""The plan's estimates against measured wall time (the ``plan`` benchmark).

Three checks, each a fresh workdir under ``root``, trained here after the estimate is
computed from the same rates the dry run uses: the Quick start (the study's ``quick`` preset,
run as a user runs it: the binary, figures included), a width-64 slice of the width sweep
(piece ``sweep_w64`` reduced to SNIP, compacted, and GMP, full width, at lr 0.1 and cosine:
46 runs) and a BENCH-995 phase-two slice (piece ``bench995_phase_two_632``'s first masks).
The estimate is good when the wall time is within +-30% of it.
"""

import os
import pathlib
import shutil
import subprocess
import sys
import time

from spiralprune.configs import study as study_config
from spiralprune.study import plan as study_plan
from spiralprune.study import prune as prune_stage
from spiralprune.study import rates as rates_mod
from spiralprune.study import reproduce

CHECKS = ("quick", "sweep_w64_slice", "bench995_slice")


def _row(check: str, what: str, estimate: float, wall: float) -> dict:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return dict(check=check, what=what, estimate_s=float(estimate), wall_s=float(wall),
                ratio=float(wall / estimate) if estimate > 0 else float("nan"),
                load_after=float(load))


def quick(root, rates: dict) -> dict:
    """The Quick start from scratch: the binary, as the README runs it."""
    wd = pathlib.Path(root) / "quick"
    shutil.rmtree(wd, ignore_errors=True)
    parts = study_plan.plan(study_config.get_config("quick"), wd, rates)
    estimate = sum(p.seconds for p in parts) + study_plan.FIGURES_S
    binary = pathlib.Path(__file__).resolve().parents[2] / "experiments" / "study.py"
    t0 = time.perf_counter()
    with open(pathlib.Path(root) / "quick.log", "w") as log:
        subprocess.run([sys.executable, str(binary), f"--workdir={wd}",
                        f"--config={binary.parent / 'configs' / 'study.py'}:quick"],
                       check=True, stdout=log, stderr=subprocess.STDOUT)
    return _row("quick", "the Quick start (study.py:quick, figures included)", estimate,
                time.perf_counter() - t0)


def sweep_w64_slice(root, rates: dict) -> dict:
    """Width 64 of the sweep, SNIP (compacted) and GMP (full width), lr 0.1, cosine."""
    config = reproduce.piece("sweep_w64").config()
    grid = config.grids.random
    grid.methods, grid.lrs, grid.schedules = ("snip", "gmp"), (0.1,), ("cosine",)
    wd = pathlib.Path(root) / "sweep_w64_slice"
    shutil.rmtree(wd, ignore_errors=True)
    pp = prune_stage.plan(config)
    estimate = sum(p.seconds for p in study_plan.prune_parts(pp, wd, rates))
    t0 = time.perf_counter()
    prune_stage.run(pp, wd)
    return _row("sweep_w64_slice", "sweep_w64 reduced to snip (compacted) and gmp, lr 0.1, "
                "cosine (46 runs)", estimate, time.perf_counter() - t0)


def bench995_slice(root, rates: dict, masks: int = 1024) -> dict:
    """BENCH-995 phase two on (6,3,2): its first ``masks`` masks of at most 38 nonzeros."""
    p = reproduce.piece("bench995_phase_two_632")
    idx = p.mask_indices()[:masks]
    wd = pathlib.Path(root) / "bench995_slice"
    shutil.rmtree(wd, ignore_errors=True)
    runs = len(idx) * len(p.lrs) * len(reproduce.SCHEDULES)
    estimate = reproduce.search_part("slice", [p.config], [1.0], runs, wd, p.epochs,
                                     p.chunk_size, rates, "").seconds
    t0 = time.perf_counter()
    reproduce.run_phase_two(p, wd.parent, mask_indices=idx, workdir=wd,
                            progress=lambda _: None)
    return _row("bench995_slice", f"bench995_phase_two_632, its first {len(idx):,} masks "
                f"({runs:,} runs)", estimate, time.perf_counter() - t0)


def check(root, checks=CHECKS, fresh: bool = True) -> tuple[dict, list[dict]]:
    """Measures this machine's rates (``fresh``: again), then runs each check.

    Returns:
      (the rates table, one row per check: estimate_s, wall_s, ratio = wall / estimate).
    """
    fns = {"quick": quick, "sweep_w64_slice": sweep_w64_slice, "bench995_slice": bench995_slice}
    unknown = [c for c in checks if c not in fns]
    if unknown:
        raise ValueError(f"unknown estimate checks {unknown}; choose from {CHECKS}")
    pathlib.Path(root).mkdir(parents=True, exist_ok=True)
    table, _ = rates_mod.load(fresh=fresh)
    rates = rates_mod.with_table(rates_mod.assumed(), table)
    return table, [fns[c](root, rates) for c in checks]


def format_rows(rows: list[dict]) -> str:
    """The checks as a Markdown table."""
    lines = ["| check | estimate | measured | measured / estimate | load after |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['what']} | {study_plan.format_seconds(r['estimate_s'])} | "
              f"{study_plan.format_seconds(r['wall_s'])} | {r['ratio']:.2f} | "
              f"{r['load_after']:.1f} |" for r in rows]
    return "\n".join(lines)
