"""Benchmarks population training: model-epochs per second against population size P.

  python experiments/benchmark.py --config=experiments/configs/benchmark.py:quick

See experiments/configs/benchmark.py for presets and what each cell measures.
"""

import datetime
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


def measure(width: int, p: int, config, data) -> float:
    """Seconds to train P models of ``width`` (compilation excluded)."""
    spec = training.Spec(widths=width, epochs=config.epochs, precision=config.precision)
    v = _variants(width, p, config.sparsity, config.seed)
    populations.run(v, data, spec=spec)          # compile + warm up at this exact shape
    t0 = time.perf_counter()
    populations.run(v, data, spec=spec)
    return time.perf_counter() - t0


def measure_loop(width: int, config, data) -> float:
    """Seconds per model when models are trained one after another (compiled, P = 1)."""
    spec = training.Spec(widths=width, epochs=config.epochs, precision=config.precision)
    runs = [jax.tree.map(lambda a, i=i: a[i:i + 1], _variants(width, config.loop_models,
                                                               config.sparsity, config.seed))
            for i in range(config.loop_models)]
    populations.run(runs[0], data, spec=spec)
    t0 = time.perf_counter()
    for v in runs:
        populations.run(v, data, spec=spec)
    return (time.perf_counter() - t0) / config.loop_models


def run(config) -> list[dict]:
    """Runs every cell of the config, prints the table and appends it to config.output."""
    data = datasets.cubist_spiral()
    rows = []
    for width in config.widths:
        flops = flops_per_model_epoch(models.check_widths(width))
        sec = measure_loop(width, config, data)
        rows.append(dict(width=width, P="loop", seconds=sec, rate=config.epochs / sec,
                         gflops=config.epochs * flops / sec / 1e9))
        print(_fmt_row(rows[-1]), flush=True)
        for p in config.populations:
            sec = measure(width, p, config, data)
            rate = p * config.epochs / sec
            rows.append(dict(width=width, P=p, seconds=sec, rate=rate, gflops=rate * flops / 1e9))
            print(_fmt_row(rows[-1]), flush=True)
            if sec > config.max_cell_s:
                break
    if config.output:
        _append(config, rows)
    return rows


def _fmt_row(r: dict) -> str:
    return (f"| {r['width']} | {r['P']} | {r['seconds']:.2f} | {r['rate']:,.1f} | "
            f"{r['gflops']:,.2f} |")


def _append(config, rows) -> None:
    stamp = datetime.date.today().isoformat()
    lines = [
        "", f"### benchmark `{config.preset}` on {device_name()}, {stamp}", "",
        f"Command: `python experiments/benchmark.py "
        f"--config=experiments/configs/benchmark.py:{config.preset}`; epochs per cell "
        f"{config.epochs}, matmul precision `{config.precision}`, jax {jax.__version__}.", "",
        "| width | P | seconds | model-epochs/s | achieved GFLOP/s |",
        "|---|---|---|---|---|"] + [_fmt_row(r) for r in rows]
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
