import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spiralprune import datasets, masking, models, populations, training


def _data(n=640):
    x, y = datasets.cubist_spiral()
    sub = np.random.default_rng(1).choice(len(y), n, replace=False)
    return jnp.asarray(x[sub]), jnp.asarray(y[sub])


def _variants(p=5, width=4):
    rng = np.random.default_rng(0)
    kernels = [jnp.asarray(rng.random((p,) + s) < 0.7) for s in models.layer_shapes(width)]
    return populations.make_variants(masks=masking.from_kernels(kernels),
                                     lr=rng.choice([0.05, 0.1, 0.2], p),
                                     schedule=rng.integers(0, 3, p), seed=rng.integers(0, 99, p))


SPEC = training.Spec(widths=(4, 4, 4), epochs=2)


def test_member_equals_the_same_run_alone_and_chunking_does_not_matter():
    data, v = _data(), _variants()
    whole = populations.run(v, data, spec=SPEC)
    chunked = populations.run(v, data, spec=SPEC, chunk_size=2)   # 3 chunks, the last padded
    for i in (0, 3, 4):
        alone = populations.run(jax.tree.map(lambda a, i=i: a[i:i + 1], v), data, spec=SPEC)
        for a, b in zip(jax.tree.leaves(alone), jax.tree.leaves(whole)):
            np.testing.assert_allclose(a[0], b[i], rtol=1e-5, atol=1e-6)
    for a, b in zip(jax.tree.leaves(chunked), jax.tree.leaves(whole)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # Different seeds really give different runs (the comparison above is not vacuous).
    assert len(set(np.round(whole["loss"], 6))) == 5


def test_given_init_is_used():
    data = _data()
    init = models.bench_init("bench95", 4)
    v = populations.make_variants(masks=masking.ones_like(init), lr=[0.1, 0.1],
                                  schedule=[0, 0], seed=[0, 1], params=init)
    spec = training.Spec(widths=4, epochs=1, init="given")
    out = populations.run(v, data, spec=spec)
    # Same init, different data orders: close but not identical results.
    assert not np.array_equal(out["params"]["layer1"]["kernel"][0],
                              out["params"]["layer1"]["kernel"][1])
    with pytest.raises(ValueError, match="carry no params"):
        populations.run(_variants(2), data, spec=spec)


@pytest.mark.parametrize("engine", ["vmap", "lanes"])
def test_precompile_leaves_nothing_for_run_to_compile(engine):
    # The pruning binary compiles the next group's program on a second thread while a group
    # trains; that only pays if run() then finds it compiled. XLA reports each backend
    # compilation to jax.monitoring listeners.
    compiled = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, secs, **kw: compiled.append(event) if "backend_compile" in event else None)
    data, v = _data(), _variants(p=3, width=3)
    spec = training.Spec(widths=3, epochs=1, eval_chunk=321, engine=engine)  # a new program
    populations.precompile(v, data, spec=spec, chunk_size=2)
    n = len(compiled)
    assert n >= 1
    out = populations.run(v, data, spec=spec, chunk_size=2)
    assert len(compiled) == n, "run compiled again"
    assert out["accuracy"].shape == (3,) and np.all(np.isfinite(out["loss"]))
    # Bad input is refused as run refuses it, before compiling anything.
    with pytest.raises(ValueError, match="carry no params"):
        populations.precompile(v, data, spec=training.Spec(widths=3, init="given"))


def test_compiled_ahead_compiles_the_next_item_before_it_is_handed_out():
    import threading
    import time
    done, seen, threads = set(), [], set()

    def compile_next(item):
        threads.add(threading.get_ident())
        time.sleep(0.05)   # slower than the consumer: the generator must wait for it
        if item == "c":
            raise RuntimeError("the caller's run reports this one")
        done.add(item)

    for item in populations.compiled_ahead(["a", "b", "c", "d"], compile_next):
        # Every item after the first was compiled (or failed) before it was handed out.
        assert item == "a" or item in done or item == "c"
        seen.append(item)
    assert seen == ["a", "b", "c", "d"] and done == {"b", "d"}
    assert threads and threading.get_ident() not in threads   # on another thread


@pytest.mark.parametrize("kwargs, match", [
    (dict(lr=[0.1, -0.1]), "positive"),
    (dict(lr=[0.1, 0.1], schedule=["constant", "linear"]), "unknown lr schedule"),
    (dict(lr=[0.1, 0.1], seed=[0, -1]), "non-negative"),
    (dict(lr=[0.1, 0.1, 0.1]), "leading size"),
])
def test_bad_variants(kwargs, match):
    base = dict(masks=masking.ones_like(models.init(jax.random.key(0), 3)), lr=[0.1, 0.1],
                schedule=[0, 0], seed=[0, 1], budget=[1, 2])
    base.update(kwargs)
    with pytest.raises(ValueError, match=match):
        populations.make_variants(**base)


def test_schedule_names_from_a_pandas_column():
    masks = masking.ones_like(models.init(jax.random.key(0), 3))
    names = np.array(["step", "constant", "cosine"], dtype=object)
    v = populations.make_variants(masks=masks, lr=[0.1] * 3, schedule=names, seed=[0, 1, 2])
    np.testing.assert_array_equal(v.schedule, [2, 0, 1])


def test_masks_that_do_not_fit_the_spec():
    with pytest.raises(ValueError, match="shape"):
        populations.run(_variants(2, width=3), _data(), spec=SPEC)
    with pytest.raises(ValueError, match="widths"):
        training.Spec(widths=(0, 3, 3))
    with pytest.raises(ValueError, match="unknown init"):
        training.Spec(init="he")


def test_balanced_chunks_pad_little_and_respect_the_cap():
    assert populations.balanced_chunk(558, 512) == 288          # 2 x 288, not 512 + 512
    assert populations.balanced_chunk(100, 1024) == 128
    assert populations.balanced_chunk(5, 2) == 2                 # the cap wins over rounding
    for p, cap, devs in ((1000, 300, 1), (24_576, 16_384, 8), (7, 3, 2), (1, 1, 1)):
        c = populations.balanced_chunk(p, cap, devs)
        assert c % devs == 0 and c <= -(-cap // devs) * devs
        pieces = -(-p // c)
        assert pieces == -(-p // (-(-cap // devs) * devs))       # no more calls than needed


def test_cpu_vmap_calls_are_cache_sized_and_change_no_run():
    # the power of two nearest 2e5 / params, worked by hand: width 64 has 8,577 params
    # (2e5 / 8,577 = 23.3 -> 32), width 16 609 (328 -> 256), width 32 2,241 (89 -> 64)
    assert populations.cpu_call_runs((64,) * 3) == 32
    assert populations.cpu_call_runs((16,) * 3) == 256
    assert populations.cpu_call_runs((32,) * 3) == 64
    assert populations.cpu_call_runs((128,) * 3) == populations.CPU_CALL_MIN_RUNS
    assert populations.cpu_call_runs((3, 3, 3)) == 4096
    with populations.uncapped_cpu_calls():   # the benchmark's baseline: no cap inside it
        assert populations.cpu_call_runs((64,) * 3) == 1 << 16
    assert populations.cpu_call_runs((64,) * 3) == 32   # and the cap back after it
    if jax.default_backend() != "cpu":
        pytest.skip("the cap is the CPU's")
    p, width = 70, 32
    data = _data(256)
    v = _variants(p, width)
    spec = training.Spec(widths=(width,) * 3, epochs=1, engine="vmap")
    calls = []
    out = populations.run(v, data, spec=spec, chunk_size=1024,
                          progress=lambda done, total: calls.append(done))
    ndev = len(jax.local_devices())
    cap = populations.cpu_call_runs(spec.widths) * ndev
    assert calls[-1] == p and len(calls) == -(-p // cap) > 1       # chunk_size 1024 was capped
    assert np.diff([0] + calls).max() <= cap
    for i in (0, p - 1):   # each run equals itself trained alone
        alone = populations.run(jax.tree.map(lambda a, i=i: a[i:i + 1], v), data, spec=spec)
        for a, b in zip(jax.tree.leaves(alone), jax.tree.leaves(out)):
            np.testing.assert_allclose(a[0], b[i], rtol=1e-5, atol=1e-6)


def test_auto_chunk_is_a_multiple_of_devices_and_bounded():
    devs = jax.local_devices()
    c = populations.auto_chunk(training.Spec(), 10**6, devs)
    assert c % len(devs) == 0 and 1 <= c <= 1 << 16
    assert populations.auto_chunk(training.Spec(), 3, devs) >= 3


def test_sharded_over_8_host_devices_equals_unsharded(tmp_path):
    script = textwrap.dedent("""
        import numpy as np, jax, jax.numpy as jnp
        from spiralprune import datasets, masking, models, populations, training
        assert len(jax.devices()) == 8
        x, y = datasets.cubist_spiral()
        sub = np.random.default_rng(1).choice(len(y), 640, replace=False)
        data = (jnp.asarray(x[sub]), jnp.asarray(y[sub]))
        p = 12
        rng = np.random.default_rng(0)
        kernels = [jnp.asarray(rng.random((p,) + s) < 0.7) for s in models.layer_shapes(4)]
        v = populations.make_variants(masks=masking.from_kernels(kernels),
                                      lr=np.full(p, 0.1), schedule=np.arange(p) % 3,
                                      seed=np.arange(p))
        for engine in ("vmap", "lanes"):   # both layouts shard the population axis
            spec = training.Spec(widths=4, epochs=1, engine=engine)
            a = populations.run(v, data, spec=spec)
            b = populations.run(v, data, spec=spec, devices=jax.devices()[:1])
            for u, w in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
                np.testing.assert_allclose(u, w, rtol=1e-5, atol=1e-6)
            assert len(set(np.round(a["loss"], 6))) == p   # no run is a copy of another
            print("SHARDED_OK", engine, populations.auto_chunk(spec, p, jax.devices()))
    """)
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
               JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, timeout=600)
    assert "SHARDED_OK vmap 16" in out.stdout, out.stderr[-2000:]
    assert "SHARDED_OK lanes 16" in out.stdout, out.stderr[-2000:]


def test_calls_benchmark_times_one_call_against_capped_calls():
    from spiralprune.configs import benchmark as benchmark_config
    from spiralprune.study import benchmark
    config = benchmark_config.get_config("calls")
    config.widths, config.populations, config.output, config.repeats = (64,), (40,), "", 1
    (row,) = benchmark.run(config)
    assert (row["runs"], row["call"], row["calls"]) == (40, 32, 2)
    assert row["one_s"] > 0 and row["capped_s"] > 0
    assert row["speedup"] == pytest.approx(row["one_s"] / row["capped_s"])
    assert row["capped_rate"] == pytest.approx(40 / row["capped_s"])
