"""Benchmarks population training: model-epochs per second against population size P.

  python experiments/benchmark.py --config=experiments/configs/benchmark.py:quick

See experiments/configs/benchmark.py for presets and what each cell measures.
"""

import datetime
import sys
import time

import jax
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from spiralprune import datasets, masking, models, populations, training


def flops_per_model_epoch(widths, n: int = datasets.NUM_POINTS, batch: int = 128) -> float:
    """Dense training flops per model-epoch: ~6 flops per weight per sample (fwd + bwd)."""
    return 6.0 * models.num_weights(widths) * (n // batch) * batch


def device_name() -> str:
    """A short description of the default device (kind and count)."""
    devs = jax.local_devices()
    return f"{len(devs)} x {devs[0].device_kind} ({devs[0].platform})"


def _variants(width: int, p: int, sparsity: float, seed: int):
    rng = np.random.default_rng(seed)
    kernels = [rng.random((p,) + s) >= sparsity for s in models.layer_shapes(width)]
    return populations.make_variants(masks=masking.from_kernels(kernels), lr=np.full(p, 0.1),
                                     schedule=np.arange(p) % 3, seed=np.arange(p) + seed)


def _timed(v, data, spec) -> float:
    populations.run(v, data, spec=spec)          # compile + warm up at this exact shape
    t0 = time.perf_counter()
    populations.run(v, data, spec=spec)
    return time.perf_counter() - t0


def measure(width: int, p: int, config, data, seed: int | None = None) -> tuple[float, float]:
    """Seconds per epoch of training P models, and the fixed seconds per population.

    Two runs of the same population, ``epochs`` and ``2 * epochs`` long: their difference is
    the training time of ``epochs`` epochs alone (no compilation, no final evaluation, no
    transfers); the rest of the short run is the fixed cost (evaluation on all 49,982 points,
    init, host-device copies), paid once per run whatever the number of epochs.

    Returns:
      (seconds per epoch for all P models, fixed seconds for all P models).
    """
    v = _variants(width, p, config.sparsity, config.seed if seed is None else seed)
    times = []
    for epochs in (config.epochs, 2 * config.epochs):
        spec = training.Spec(widths=width, epochs=epochs, precision=config.precision)
        times.append(_timed(v, data, spec))
    per_epoch = max(times[1] - times[0], 1e-9) / config.epochs
    return per_epoch, max(times[0] - per_epoch * config.epochs, 0.0)


def measure_loop(width: int, config, data) -> tuple[float, float]:
    """``measure`` for models trained one after another (compiled, P = 1), per model."""
    results = [measure(width, 1, config, data, seed=config.seed + i)
               for i in range(config.loop_models)]
    return tuple(float(np.mean(r)) for r in zip(*results))


def run(config) -> list[dict]:
    """Runs every cell of the config, prints the table and appends it to config.output."""
    data = datasets.cubist_spiral()
    rows = []
    for width in config.widths:
        flops = flops_per_model_epoch(models.check_widths(width))
        cells = [("loop", 1, measure_loop(width, config, data))]
        for p in config.populations:
            cells.append((p, p, measure(width, p, config, data)))
            if cells[-1][2][0] * 3 * config.epochs > config.max_cell_s:
                break
        for label, p, (per_epoch, fixed) in cells:
            rate = p / per_epoch
            rows.append(dict(width=width, P=label, epoch_s=per_epoch, fixed_s=fixed, rate=rate,
                             gflops=rate * flops / 1e9))
            print(_fmt_row(rows[-1]), flush=True)
    if config.output:
        _append(config, rows)
    return rows


def _fmt_row(r: dict) -> str:
    return (f"| {r['width']} | {r['P']} | {r['epoch_s']:.3f} | {r['fixed_s']:.2f} | "
            f"{r['rate']:,.1f} | {r['gflops']:,.2f} |")


def _append(config, rows) -> None:
    stamp = datetime.date.today().isoformat()
    lines = [
        "", f"### benchmark `{config.preset}` on {device_name()}, {stamp}", "",
        f"Command: `python {' '.join(sys.argv)}`; matmul precision `{config.precision}`, "
        f"{int(config.sparsity * 100)}% of weights masked, jax {jax.__version__}. "
        "`epoch s`: seconds per training epoch of all P models (difference of a "
        f"{config.epochs}- and a {2 * config.epochs}-epoch run); `fixed s`: the once-per-run "
        "rest (final evaluation on all points, init, copies) for all P; loop rows are per "
        "model, trained one after another.", "",
        "| width | P | epoch s | fixed s | model-epochs/s | achieved GFLOP/s |",
        "|---|---|---|---|---|---|"] + [_fmt_row(r) for r in rows]
    with open(config.output, "a") as f:
        f.write("\n".join(lines) + "\n")


def main(argv):
    del argv
    flags.FLAGS.config.lock()
    run(flags.FLAGS.config)


if __name__ == "__main__":
    config_flags.DEFINE_config_file("config", "experiments/configs/benchmark.py:quick",
                                    "benchmark preset")
    app.run(main)
