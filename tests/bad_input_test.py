"""Malformed inputs across the binaries and the API: each is refused with a one-line message
before any compute, and a refused run leaves its workdir untouched (so the corrected command
works in the same workdir). A few cases go through the real binaries (exit status 2, one line
on stderr, no traceback); the rest call the same code in-process."""

import os
import pathlib
import re
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from spiralprune import datasets, masking, models, populations, recording, training
from spiralprune.configs import prune as prune_config
from spiralprune.configs import search as search_config
from spiralprune.configs import study as study_config
from spiralprune.configs import train as train_config
from spiralprune.study import pipeline as study
from spiralprune.study import prune, search, train

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def no_compute(monkeypatch, request):
    """Any training reached by a bad input fails the test: refusals come before compute."""
    if "trains" in request.node.name:
        return

    def refuse(*args, **kwargs):
        raise AssertionError("training started for a bad input")
    monkeypatch.setattr(populations, "_compiled", refuse)


def _search(**fields):
    c = search_config.get_config("smoke")
    for k, v in fields.items():
        c[k] = v
    return c


def _prune(edit):
    c = prune_config.get_config("smoke")
    edit(c)
    return c


def _set(path, value):
    def edit(c):
        *head, last = path.split(".")
        node = c
        for h in head:
            node = node[h]
        node[last] = value
    return edit


SEARCH_CASES = [
    (dict(lrs=(-1.0,)), "learning rates must be positive"),
    (dict(lrs=(float("nan"),)), "learning rates must be positive"),
    (dict(lrs=(float("inf"),)), "learning rates must be positive"),
    (dict(lrs=()), "empty grid"),
    (dict(epochs=0), "epochs and chunk_size must be >= 1"),
    (dict(chunk_size=0), "epochs and chunk_size must be >= 1"),
    (dict(schedules=("cosin",)), "cosin"),
    (dict(schedules=()), "empty grid"),
    (dict(targets=(1.5,)), "target accuracy must be in"),
    (dict(targets=(0.0,)), "target accuracy must be in"),
    (dict(targets=()), "targets is empty"),
    (dict(init="xavier2"), "unknown init"),
    (dict(width=0), "width must be >= 1"),
    (dict(width=10000), "bytes of device memory"),
    (dict(phase_two_config=(5, 1, 1)), "wider than the model width"),
    (dict(phase_two_config=None, phase_one=False), "phase_one=False needs phase_two_config"),
    (dict(task_index=2, num_tasks=2), "task_index"),
    (dict(num_tasks=0), "task_index must be in"),
    (dict(cosine_t_max=0), "cosine_t_max must be >= 1"),
    (dict(subset_lrs=(0.0,)), "subset_lrs must be positive"),
    (dict(max_phase_two_runs=0), "max_phase_two_runs must be >= 1"),
    (dict(max_structured_params=1), "no configuration"),
    (dict(subset_first_k=0), "subset_first_k must be >= 1"),
    (dict(lrs=(1e-50,)), "is 0 or infinite in float32"),
    (dict(lrs=(1e39,)), "is 0 or infinite in float32"),
    (dict(lrs=(0.1, 0.1)), "repeats a value"),
    (dict(schedules=("cosine", "cosine")), "repeats a value"),
    (dict(init="bench95", width=20), "is 16 wide"),
    (dict(base_seed=2 ** 32), "search.base_seed must be a whole number in [0, 2^32)"),
    (dict(base_seed=-1), "search.base_seed must be a whole number in [0, 2^32)"),
]


@pytest.mark.parametrize("fields,match", SEARCH_CASES,
                         ids=[next(iter(f)) + str(i) for i, (f, _) in enumerate(SEARCH_CASES)])
def test_search_refuses_before_writing(tmp_path, fields, match):
    workdir = tmp_path / "wd"
    with pytest.raises(ValueError, match=re.escape(match)) as e:
        search.run(_search(**fields), workdir)
    assert "\n" not in str(e.value)
    assert not workdir.exists()


PRUNE_CASES = [
    (_set("method_args.gmp.gmp_steps", -3), "must be >= 1"),
    (_set("method_args", {"gmp": {"gmp_steps": 2.5}}), "need an integer"),
    (_set("method_args.gmp.reference_counts", 1), "need True or False"),
    (_set("method_args", {"gmp": {"gmp_step": 4}}), "unknown method_args"),
    (_set("method_args", {"rigl": {"rigl_alpha": 2.0}}), "must be in [0, 1]"),
    (_set("grids.random.widths", (10000,)), "bytes of device memory"),
    (_set("grids.random.lrs", (-1.0,)), "learning rates must be > 0"),
    (_set("grids.random.lrs", (float("nan"),)), "learning rates must be > 0"),
    (_set("grids.random.schedules", ("cosin",)), "cosin"),
    (_set("grids.random.methods", ("snipp",)), "snipp"),
    (_set("grids.random.init", "nope"), "nope"),
    (_set("grids.random.repeats", 0), "repeats must be >= 1"),
    (_set("grids.random.budgets", (0,)), "budget"),
    (_set("grids", {}), "no runs"),
    (_set("chunk_size", 0), "chunk_size must be >= 1"),
    (_set("num_points", -5), "num_points must be in"),
    (_set("num_points", 10**7), "num_points must be in"),
    (_set("precision", "hihgest"), "precision"),
    (_set("epochs", 0), ">= 1"),
    (_set("batch_size", 0), ">= 1"),
    (_set("task_index", 3), "task_index"),
    (_set("grids.random.lrs", (1e-50,)), "is 0 or infinite in float32"),
    (_set("grids.random.lrs", (1e39,)), "is 0 or infinite in float32"),
    (_set("grids.random.budgets", (15, 15)), "repeats a value"),
    (_set("grids.random.schedules", ("constant", "constant")), "repeats a value"),
    (_set("grids.random.budgets", ()), "budgets is empty"),
    (_set("num_points", 1), "larger than the 1 training points"),
    (_set("batch_size", 100000), "larger than the 640 training points"),
    (_set("seed", 2 ** 32), "seed must be in [0, 2^32)"),
]


def test_prune_grid_without_runs_is_an_error(tmp_path):
    def edit(c):
        c.grids = {"random": c.grids.random}
        c.grids.random.budgets = (10**6, 10**7)   # every budget >= N_w
    with pytest.raises(ValueError, match="no runs"):
        prune.run(_prune(edit), tmp_path / "wd")
    assert not (tmp_path / "wd").exists()


@pytest.mark.parametrize("edit,match", PRUNE_CASES, ids=[str(i) for i in range(len(PRUNE_CASES))])
def test_prune_refuses_before_writing(tmp_path, edit, match):
    workdir = tmp_path / "wd"
    with pytest.raises(ValueError, match=re.escape(match)) as e:
        prune.run(_prune(edit), workdir)
    assert "\n" not in str(e.value)
    assert not workdir.exists()


def _study(edit):
    c = study_config.get_config("smoke")
    c.figures = False
    edit(c)
    return c


STUDY_CASES = [
    (_set("targets", (1.5, 0.9)), "targets must be"),
    (_set("search.lrs", (-1.0,)), "learning rates must be positive"),
    (_set("search.width", 10000), "bytes of device memory"),
    (_set("prune.method_args.gmp.gmp_steps", -3), "must be >= 1"),
    (_set("fixed_inits", "mine"), "fixed_inits"),
    (_set("task_index", 5), "task_index"),
]


@pytest.mark.parametrize("edit,match", STUDY_CASES, ids=[str(i) for i in range(len(STUDY_CASES))])
def test_study_refuses_before_writing(tmp_path, edit, match):
    with pytest.raises(ValueError, match=re.escape(match)) as e:
        study.run(_study(edit), tmp_path / "wd")
    assert "\n" not in str(e.value)
    assert not (tmp_path / "wd").exists()


TRAIN_CASES = [
    (dict(width=-1), "widths"),
    (dict(keep=(0.0,)), "keep fractions"),
    (dict(keep=(1.5,)), "keep fractions"),
    (dict(lrs=(-0.1,)), "learning rates must be positive"),
    (dict(lrs=(float("nan"),)), "learning rates must be positive"),
    (dict(epochs=0), ">= 1"),
    (dict(lrs=(0.1, 0.1)), "lrs (0.1, 0.1) repeats a value"),
    (dict(keep=(0.5, 0.5)), "keep (0.5, 0.5) repeats a value"),
    (dict(seed=2 ** 32), "seed must be in [0, 2^32)"),
    (dict(repeats=0), "repeats must be >= 1"),
]


@pytest.mark.parametrize("fields,match", TRAIN_CASES, ids=[str(i) for i in range(len(TRAIN_CASES))])
def test_train_refuses_before_compute(fields, match):
    config = train_config.get_config("smoke")
    for k, v in fields.items():
        config[k] = v
    with pytest.raises(ValueError, match=re.escape(match)) as e:
        train.run(config)
    assert "\n" not in str(e.value)


def _variants(p=2, **kw):
    masks = masking.ones_like(models.init(__import__("jax").random.key(0), (3, 3, 3)))
    args = dict(masks=masks, lr=np.full(p, 0.1), schedule=["constant"] * p,
                seed=np.arange(p)) | kw
    return populations.make_variants(**args)


VARIANT_CASES = [
    (dict(lr=[0.1, float("nan")]), r"got \[nan\]"),
    (dict(lr=[0.1, float("inf")]), r"got \[inf\]"),
    (dict(lr=[0.1, -1.0]), r"got \[-1.0\]"),
    (dict(lr=[]), "at least one run"),
    (dict(seed=[0.5, 1.0]), "seeds must be integers"),
    (dict(seed=[0, -1]), "non-negative"),
    (dict(schedule=["constant", "cosin"]), "cosin"),
    (dict(seed=[0, 1, 2]), "leading size"),
    (dict(seed=[0, 2 ** 32]), r"below 2\^32 \(uint32\), got \[4294967296\]"),
    (dict(masks=__import__("jax").tree.map(
        lambda a: np.full(a.shape, 0.5, np.float32),
        masking.ones_like(models.init(__import__("jax").random.key(0), (3, 3, 3))))),
     r"must be bool or 0/1, got \[0.5"),
]


@pytest.mark.parametrize("kw,match", VARIANT_CASES, ids=[str(i) for i in range(len(VARIANT_CASES))])
def test_make_variants_refuses(kw, match):
    with pytest.raises(ValueError, match=match) as e:
        _variants(**kw)
    assert "\n" not in str(e.value)


x, y = datasets.cubist_spiral()
DATA_CASES = [
    ((x[:, :1], y), "shape (N, 2)"),
    ((x.reshape(-1), y), "shape (N, 2)"),
    ((x, y[:-1]), "unequal lengths"),
    ((x[:0], y[:0]), "empty"),
    ((x, y * 2), "labels must be 0 or 1, got [2"),
    ((x, y - 1), "labels must be 0 or 1, got [-1"),
    ((x, y.reshape(-1, 1)), "shape (N,)"),
    ((np.where(np.arange(len(y))[:, None] == 0, np.nan, x), y), "non-finite"),
    ((x,), "pair"),
]


DATA_CASES.append(((x[:100], y[:100]), "batch_size 128 is larger than the 100 training points"))


@pytest.mark.parametrize("data,match", DATA_CASES, ids=[str(i) for i in range(len(DATA_CASES))])
def test_population_run_refuses_bad_data(data, match):
    spec = training.Spec(widths=(3, 3, 3), epochs=1)
    with pytest.raises(ValueError, match=re.escape(match)) as e:
        populations.run(_variants(), data, spec=spec)
    assert "\n" not in str(e.value)


def test_workdir_that_is_a_file_and_records_without_config(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(ValueError, match="is not a directory"):
        recording.Store(afile, {"a": 1}, kind="search")
    wd = tmp_path / "wd"
    recording.Store(wd, {"seed": 0}, kind="prune").write("s", 0, {"a": np.arange(2)})
    (wd / "config.json").unlink()
    before = sorted(p.name for p in wd.rglob("*"))
    with pytest.raises(ValueError, match="has records but no config.json"):
        recording.Store(wd, {"seed": 7}, kind="prune")
    assert sorted(p.name for p in wd.rglob("*")) == before


def test_disk_full_is_one_line_naming_the_file(tmp_path, monkeypatch):
    store = recording.Store(tmp_path / "wd", {"a": 1}, kind="search")

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(np, "savez", full)
    with pytest.raises(OSError, match="no space left while writing .*000000.npz; the workdir "
                                      "is intact, rerun to resume"):
        store.write("s", 0, {"a": np.arange(2)})
    assert not list((tmp_path / "wd" / "shards").rglob("*.npz"))
    assert not list((tmp_path / "wd" / "shards").rglob("*.tmp"))


def test_foreign_shard_is_refused_naming_the_file(tmp_path):
    mine = recording.Store(tmp_path / "mine", {"seed": 0}, kind="prune")
    mine.write("s", 0, {"a": np.arange(2)})
    other = recording.Store(tmp_path / "other", {"seed": 7}, kind="prune")
    other.write("s", 1, {"a": np.arange(3)})
    foreign = tmp_path / "mine" / "shards" / "s" / "000001.npz"
    foreign.write_bytes((tmp_path / "other" / "shards" / "s" / "000001.npz").read_bytes())
    for load in (lambda: recording.Store.open(tmp_path / "mine").load(),
                 lambda: recording.Store(tmp_path / "mine", {"seed": 0}, kind="prune").done("s"),
                 lambda: recording.load_runs([tmp_path / "mine", tmp_path / "other"])):
        with pytest.raises(ValueError, match="000001.npz was recorded under another config") as e:
            load()
        assert "\n" not in str(e.value)
    assert foreign.exists()  # refused, never moved aside as corrupt nor recomputed over
    foreign.unlink()
    df = recording.load_runs([tmp_path / "mine", tmp_path / "other"])
    assert list(df.columns[:2]) == ["workdir", "config_hash"]
    assert df.groupby("workdir")["config_hash"].nunique().eq(1).all()
    assert df["config_hash"].nunique() == 2


def _one_line(proc, prog):
    out, err = proc.communicate(timeout=180)
    lines = [ln for ln in err.splitlines() if not re.match(r"[IWE]\d{4} ", ln)]
    assert proc.returncode == 2, err
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), err
    assert "Traceback" not in err and "USAGE" not in err.upper()
    return lines[0]


def test_binaries_print_one_line_and_exit_2(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    configs = ROOT / "experiments" / "configs"
    cases = [
        ("search", [f"--config={configs}/search.py:nope", f"--workdir={tmp_path}/a"],
         "unknown search preset 'nope'; choose from"),
        ("prune", [f"--config={configs}/prune.py:smoke", "--config.lr=0.1",
                   f"--workdir={tmp_path}/b"], "'lr'"),
        ("train", [f"--config={configs}/nofile.py:smoke"], "does not exist"),
        ("prune", [f"--config={configs}/prune.py:smoke", f"--workdir={tmp_path}/c", "stray"],
         "unexpected arguments: stray"),
        ("search", [f"--config={configs}/search.py:smoke", f"--workdir={afile}"],
         "is not a directory"),
        ("prune", [f"--config={configs}/prune.py:smoke", f"--workdir={tmp_path}/d",
                   "--config.method_args.gmp.gmp_steps=-3"], "must be >= 1"),
    ]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    procs = [subprocess.Popen([sys.executable, f"experiments/{prog}.py", *args], cwd=ROOT,
                              text=True, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for prog, args, _ in cases]
    for proc, (prog, _, match) in zip(procs, cases):
        assert match in _one_line(proc, prog)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def _table(workdir):
    cols = ["stage", "chunk", "row", "seed", "accuracy", "nnz"]
    return (recording.Store.open(workdir).load()[cols]
            .sort_values(["stage", "chunk", "row"]).reset_index(drop=True))


def test_two_writers_share_a_search_and_a_killed_one_resumes_trains(tmp_path):
    """Two processes on one workdir finish the smoke search with the table of a search that
    was killed after its first shard and resumed (its dead claim taken over at once)."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    cmd = [sys.executable, "experiments/search.py",
           "--config=experiments/configs/search.py:smoke", "--config.chunk_size=2"]
    shared, killed = tmp_path / "shared", tmp_path / "killed"
    writers = [subprocess.Popen(cmd + [f"--workdir={shared}"], cwd=ROOT, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
               for _ in range(2)]
    victim = subprocess.Popen(cmd + [f"--workdir={killed}"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not list(killed.glob("shards/*/*.npz")) and time.monotonic() < deadline:
        assert victim.poll() is None
        time.sleep(0.05)
    victim.kill()
    victim.wait()
    outs = [w.communicate(timeout=300) for w in writers]
    assert all(w.returncode == 0 for w in writers), outs
    summaries = [out.split("== search")[-1] for out, _ in outs]
    assert summaries[0] == summaries[1] and "complete" in summaries[0]
    config = search_config.get_config("smoke")
    config.chunk_size = 2
    search.run(config, killed)
    pd.testing.assert_frame_equal(_table(shared), _table(killed))
    for wd in (shared, killed):
        assert not list(wd.glob("shards/*/.*.claim"))


# --- A pruner's JAX mistakes: one line naming the pruner (and the layer) and what to do. ---

def _np_scores(key, params, masks, batch):
    return {n: {"kernel": np.abs(np.asarray(p["kernel"])), "bias": p["bias"]}
            for n, p in params.items()}


def _list_scores(key, params, masks, batch):
    return [p["kernel"] for p in params.values()]


def _if_budget(key, params, masks, data, budget):
    return masks if budget > 20 else masks


def _no_last_layer(key, params, masks, batch):
    return {n: {"kernel": p["kernel"], "bias": p["bias"]} for n, p in params.items()
            if n != models.LAYERS[-1]}


@pytest.mark.parametrize("fn,kind,match", [
    (_np_scores, "scores", "TracerArrayConversionError on layer0's kernel: use jnp, not np"),
    (_list_scores, "scores", "returned a list; return jax arrays instead"),
    (_if_budget, "masks", "the budget (and every array) is a traced value: use jnp.where"),
    (_no_last_layer, "scores", f"score function returned no {models.LAYERS[-1]!r}"),
])
def test_pruner_jax_mistakes_get_a_hint(fn, kind, match):
    from spiralprune import pruning
    from spiralprune.pruning import checks, registry
    name = f"mistake{fn.__name__}"
    pruning.register(name, fn, kind=kind)
    try:
        with pytest.raises(ValueError, match=re.escape(match)) as e:
            checks.check(name, 16, [20], "bench95")
        assert "\n" not in str(e.value) and f"pruner {name!r}" in str(e.value)
    finally:
        registry._REGISTRY.pop(name, None)


def test_study_refuses_a_file_workdir_before_printing_its_plan(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(ValueError, match="is not a directory"):
        study.run(_study(lambda c: None), afile, dry_run=True)
    assert capsys.readouterr().out == ""



def test_a_prune_config_given_to_search_is_one_line(tmp_path):
    with pytest.raises(ValueError, match="not a search config") as e:
        search.run(prune_config.get_config("smoke"), tmp_path / "wd")
    assert "\n" not in str(e.value) and not (tmp_path / "wd").exists()


@pytest.mark.parametrize("stage", ["search", "prune"])
def test_an_empty_workdir_is_refused_not_taken_for_a_default(tmp_path, monkeypatch, stage):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="workdir is empty"):
        if stage == "search":
            search.run(_search(), "")
        else:
            prune.run(prune_config.get_config("smoke"), "")
    assert not list(tmp_path.iterdir())


def test_a_bad_claim_stale_env_is_refused_before_writing(tmp_path, monkeypatch):
    monkeypatch.setenv("SPIRALPRUNE_CLAIM_STALE_S", "soon")
    with pytest.raises(ValueError, match="SPIRALPRUNE_CLAIM_STALE_S must be a number of "
                                         "seconds > 0, got 'soon'"):
        recording.Store(tmp_path / "wd", {"a": 1}, kind="search")
    assert not (tmp_path / "wd").exists()


def test_masks_of_other_widths_are_one_line():
    import jax
    params = models.init(jax.random.key(0), 4)
    masks = masking.ones_like(models.init(jax.random.key(0), 3))
    with pytest.raises(ValueError, match=r"mask \['layer0'\]\['bias'\] has shape|mask "
                                         r"\['layer0'\]\['kernel'\] has shape"):
        masking.apply(params, masks)


def test_a_pruner_path_with_non_ascii_letters_names_a_valid_stage():
    from spiralprune.pruning import plugins
    stage = plugins.stage_name("/data/prüfer/mine.py:schnitt")
    assert recording._check_name(stage, "stage") == stage


def test_a_pruner_module_that_exits_is_one_line(tmp_path):
    from spiralprune.pruning import checks
    path = tmp_path / "quits.py"
    path.write_text("import sys\nsys.exit(0)\n\ndef f(key, params, masks, batch):\n"
                    "    return params\n")
    with pytest.raises(ValueError, match=r"called sys.exit\(0\)"):
        checks.check_method(f"{path}:f")
    path = tmp_path / "quits_later.py"
    path.write_text("import sys\n\ndef f(key, params, masks, batch):\n    sys.exit(0)\n")
    with pytest.raises(ValueError, match=r"quits_later.py:f' called sys.exit\(0\); a pruner "):
        checks.check(f"{path}:f", 3, [10])


@pytest.mark.parametrize("kw,match", [
    (dict(epochs=2.5), "Spec.epochs must be a whole number"),
    (dict(batch_size=64.5), "Spec.batch_size must be a whole number"),
    (dict(milestones=(30, 15)), "Spec.milestones must be increasing"),
    (dict(milestones=(-1,)), "Spec.milestones must be increasing"),
    (dict(gamma=0.0), "Spec.gamma must be in (0, 1]"),
    (dict(gamma=2.0), "Spec.gamma must be in (0, 1]"),
    (dict(momentum=1.0), "Spec.momentum must be in [0, 1)"),
    (dict(momentum=-0.1), "Spec.momentum must be in [0, 1)"),
    (dict(weight_decay=-1e-4), "Spec.weight_decay must be in [0, 1]"),
    (dict(weight_decay=float("nan")), "Spec.weight_decay must be in [0, 1]"),
])
def test_spec_refuses_a_recipe_with_a_wrong_meaning(kw, match):
    with pytest.raises(ValueError, match=re.escape(match)):
        training.Spec(**kw)
    assert training.Spec(epochs=2.0).epochs == 2 and isinstance(training.Spec(epochs=2.0).epochs,
                                                                 int)


def test_masks_of_one_half_are_refused_not_cast_to_true():
    import jax
    params = models.init(jax.random.key(0), (3, 3, 3))
    half = jax.tree.map(lambda p: np.full(p.shape, 0.5, np.float32), params)
    with pytest.raises(ValueError, match=r"must be bool or 0/1, got \[0.5") as e:
        masking.apply(params, half)
    assert "\n" not in str(e.value)
    kernels = [np.full(s, 0.5) for s in models.layer_shapes((3, 3, 3))]
    with pytest.raises(ValueError, match="kernel mask of layer0 must be bool or 0/1"):
        masking.from_kernels(kernels)
    ones = jax.tree.map(lambda p: np.ones(p.shape, np.float32), params)   # 0/1 floats are fine
    assert masking.nnz(masking.apply(params, ones)) == masking.nnz(params)


def _benchmark():
    from spiralprune.study import benchmark
    return benchmark


def test_every_benchmark_preset_passes_its_own_check():
    from spiralprune.configs import benchmark as benchmark_config
    for preset in benchmark_config.PRESETS:
        _benchmark().check(benchmark_config.get_config(preset))
    config = benchmark_config.get_config("plan")
    config.checks = ("quik",)
    with pytest.raises(ValueError, match="checks \\('quik',\\): choose from"):
        _benchmark().check(config)


@pytest.mark.parametrize("field,value,match", [
    ("populations", (0,), "populations must be whole numbers >= 1, got (0,)"),
    ("populations", (), "populations must be whole numbers >= 1"),
    ("widths", (0,), "width"),
    ("epochs", 0, "epochs must be a whole number >= 1"),
    ("engines", ("vmapp",), "engines ('vmapp',): choose from"),
])
def test_benchmark_refuses_before_the_loop_baseline(field, value, match):
    from spiralprune.configs import benchmark as benchmark_config
    config = benchmark_config.get_config("smoke")
    config[field] = value
    with pytest.raises(ValueError, match=re.escape(match)) as e:
        _benchmark().run(config)
    assert "\n" not in str(e.value)


def test_calls_benchmark_wants_one_population_per_width():
    from spiralprune.configs import benchmark as benchmark_config
    config = benchmark_config.get_config("calls")
    config.populations = (64,)
    with pytest.raises(ValueError, match="one population per width, got 1 populations for 5"):
        _benchmark().run(config)


def test_every_config_file_loads_from_outside_the_repository(tmp_path):
    # --config=experiments/configs/X.py is loaded by path, with experiments/ (not the
    # repository) on sys.path: a config file that imports ``experiments.*`` fails there.
    files = sorted(str(p) for p in (ROOT / "experiments" / "configs").glob("*.py")
                   if p.name != "__init__.py")
    code = ("import importlib.util, sys\n"
            "sys.path[:] = [p for p in sys.path if p not in ('', %r)]\n"
            "for f in sys.argv[1:]:\n"
            "    spec = importlib.util.spec_from_file_location('cfg', f)\n"
            "    m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
            "    m.get_config()\n" % str(ROOT))
    out = subprocess.run([sys.executable, "-c", code, *files], cwd=tmp_path,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-600:]
    assert len(files) >= 8


def test_a_shard_copied_over_another_chunk_or_in_as_an_extra_one_is_refused(tmp_path):
    store = recording.Store(tmp_path / "wd", {"seed": 0}, kind="prune")
    for i in range(2):
        store.write("s", i, {"a": np.arange(2) + 10 * i}, first_row=2 * i)
    folder = tmp_path / "wd" / "shards" / "s"
    meta = recording._read_shard(folder / "000001.npz")[0]
    assert (meta["stage"], meta["chunk"], meta["rows"]) == ("s", "000001", [2, 4])
    first = (folder / "000000.npz").read_bytes()
    (folder / "000001.npz").write_bytes(first)                 # over another chunk's name
    (folder / "000007.npz").write_bytes(first)                 # in as an extra chunk
    for name in ("000001", "000007"):
        with pytest.raises(ValueError, match=f"{name}.npz holds chunk s/000000, not the chunk "
                                             "of its file name") as e:
            store.is_done("s", name)
        assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="holds chunk s/000000"):
        recording.Store.open(tmp_path / "wd").load()
    (folder / "000001.npz").unlink()
    (folder / "000007.npz").unlink()
    assert recording.Store.open(tmp_path / "wd").load()["a"].tolist() == [0, 1]


def test_a_shard_without_its_stage_and_chunk_is_read_by_its_name(tmp_path):
    """Shards written before they named their chunk stay readable (shipped workdirs)."""
    store = recording.Store(tmp_path / "wd", {"seed": 0}, kind="prune")
    arrays = recording._shard_arrays({"a": np.arange(3)}, None,
                                     {"config_hash": store.config_hash, "record_format": 2})
    path = tmp_path / "wd" / "shards" / "s" / "000004.npz"
    path.parent.mkdir(parents=True)
    np.savez(path, **arrays)
    assert store.done("s") == {"000004"}
    assert recording.Store.open(tmp_path / "wd").load()["a"].tolist() == [0, 1, 2]


@pytest.mark.parametrize("name", ["config.json", "store.json", "notes/winners.json"])
def test_invalid_json_in_a_workdir_is_refused_naming_the_file(tmp_path, name):
    store = recording.Store(tmp_path / "wd", {"seed": 0}, kind="prune")
    store.put_json("winners", {"a": 1})
    (tmp_path / "wd" / name).write_text('{"seed": 0,')
    for call in (lambda: recording.Store(tmp_path / "wd", {"seed": 0}, kind="prune")
                 .get_json("winners"),
                 lambda: recording.Store.open(tmp_path / "wd").get_json("winners")):
        with pytest.raises(ValueError, match=re.escape(f"{name} is not valid JSON")) as e:
            call()
        assert "\n" not in str(e.value)


def test_an_empty_claim_file_does_not_stall_a_writer(tmp_path, monkeypatch):
    monkeypatch.setattr(recording, "_UNWRITTEN_CLAIM_S", 0.2)
    store = recording.Store(tmp_path / "wd", {"seed": 0}, kind="prune")
    claim = tmp_path / "wd" / "shards" / "s" / ".000000.claim"
    claim.parent.mkdir(parents=True)
    claim.write_text("")
    assert store.claim("s", 0) is None   # just created: maybe a writer filling it in
    time.sleep(0.3)
    held = store.claim("s", 0)
    assert held is not None
    held.release()


def test_temp_files_of_killed_writers_are_swept_on_resume(tmp_path):
    store = recording.Store(tmp_path / "wd", {"seed": 0}, kind="prune")
    store.write("s", 0, {"a": np.arange(2)})
    store.put_json("n", {"a": 1})
    old = [tmp_path / "wd" / "shards" / "s" / ".000001.npz.123.abcd.tmp",
           tmp_path / "wd" / "notes" / ".n.json.123.abcd.tmp", tmp_path / "wd" / ".x.123.tmp"]
    new = tmp_path / "wd" / "shards" / "s" / ".000002.npz.456.ef01.tmp"  # a live writer's
    for path in old + [new]:
        path.write_bytes(b"partial")
    stamp = time.time() - 10 * recording.claim_stale_s()
    for path in old:
        os.utime(path, (stamp, stamp))
    recording.Store(tmp_path / "wd", {"seed": 0}, kind="prune")
    assert not any(p.exists() for p in old) and new.exists()


def test_ctrl_c_and_sigterm_stop_in_one_line_and_leave_no_claims_trains(tmp_path):
    """Ctrl-C (SIGINT) and SIGTERM while a chunk is claimed: one line saying how to resume,
    no traceback, no claim or temp file left; the same command then resumes to the end."""
    import signal
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)}
    cmds = {sig: [sys.executable, "experiments/search.py",
                  "--config=experiments/configs/search.py:smoke", "--config.chunk_size=2",
                  f"--workdir={tmp_path / sig.name}"] for sig in (signal.SIGINT, signal.SIGTERM)}
    procs = {sig: subprocess.Popen(cmd, cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE) for sig, cmd in cmds.items()}
    for sig, proc in procs.items():
        deadline = time.monotonic() + 240
        while (not list((tmp_path / sig.name).glob("shards/*/.*.claim"))
               and time.monotonic() < deadline):
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.02)
        proc.send_signal(sig)
    for sig, proc in procs.items():
        _, err = proc.communicate(timeout=120)
        lines = [ln for ln in err.splitlines() if not re.match(r"[IWE]\d{4} ", ln)]
        what = "Ctrl-C" if sig == signal.SIGINT else "SIGTERM"
        assert proc.returncode == (130 if sig == signal.SIGINT else 143), err
        assert len(lines) == 1 and lines[0].startswith(
            f"search: stopped by {what}; rerun the same command to resume: python "
            "experiments/search.py"), err
        assert "Traceback" not in err
        wd = tmp_path / sig.name
        assert not list(wd.rglob(".*.claim")) and not list(wd.rglob("*.tmp"))
    config = search_config.get_config("smoke")
    config.chunk_size = 2
    search.run(config, tmp_path / "SIGTERM")   # resumes to the end
    assert not list((tmp_path / "SIGTERM").rglob(".*.claim"))


def test_a_pruner_that_never_returns_is_a_bounded_check(monkeypatch):
    import threading

    from spiralprune import pruning
    from spiralprune.pruning import checks, registry
    release = threading.Event()

    def stuck(key, params, masks, batch):
        release.wait()   # a Python loop that never ends, as far as the check can tell
        return params

    pruning.register("stuck", stuck, kind="scores")
    monkeypatch.setenv("SPIRALPRUNE_CHECK_TIMEOUT_S", "0.5")
    try:
        with pytest.raises(ValueError, match=r"pruner 'stuck' did not return within 0.5 s on "
                                             "one model") as e:
            checks.check("stuck", 3, [10])
        assert "\n" not in str(e.value)
    finally:
        release.set()
        registry._REGISTRY.pop("stuck", None)
    monkeypatch.setenv("SPIRALPRUNE_CHECK_TIMEOUT_S", "soon")
    with pytest.raises(ValueError, match="SPIRALPRUNE_CHECK_TIMEOUT_S must be a number"):
        checks.check("snip", 3, [10])


ENDLESS = """import jax, jax.numpy as jnp

def spin(key, params, masks, batch):
    n = jax.lax.while_loop(lambda c: c >= 0, lambda c: (c + 1) % 7, jnp.int32(0))
    return jax.tree.map(lambda p: jnp.abs(p) + n, params)
"""


def test_an_endless_while_loop_pruner_times_out_and_obeys_ctrl_c(tmp_path):
    """An endless ``lax.while_loop`` in a pruner: the check gives up after its timeout with one
    line, and Ctrl-C stops the binary at once (one line, no traceback, no abort at exit)."""
    import signal
    (tmp_path / "endless.py").write_text(ENDLESS)
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "experiments/leaderboard.py",
           "--config=experiments/configs/leaderboard.py:smoke",
           f"--config.methods={tmp_path}/endless.py:spin"]
    timed = subprocess.Popen(cmd + [f"--workdir={tmp_path}/a"], cwd=ROOT, text=True,
                             env=env | {"SPIRALPRUNE_CHECK_TIMEOUT_S": "2"},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stopped = subprocess.Popen(cmd + [f"--workdir={tmp_path}/b"], cwd=ROOT, text=True, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert "did not return within 2 s on one model" in _one_line(timed, "leaderboard")
    time.sleep(3)   # its check is spinning by now
    stopped.send_signal(signal.SIGINT)
    _, err = stopped.communicate(timeout=60)
    lines = [ln for ln in err.splitlines() if not re.match(r"[IWE]\d{4} ", ln)]
    assert stopped.returncode == 130 and len(lines) == 1, err
    assert lines[0].startswith("leaderboard: stopped by Ctrl-C; rerun the same command"), err


def _one_grid(method, **grid):
    def edit(c):
        c.grids = {"random": dict(init="torch", methods=(method,), widths=(3,), budgets=(15, 20),
                                  lrs=(0.1,), schedules=("constant",), repeats=1) | grid}
        c.method_args = {}
    return _prune(edit)


def test_a_pruner_scoring_nan_for_other_keys_is_refused_before_training(tmp_path):
    import jax
    import jax.numpy as jnp

    from spiralprune import pruning
    from spiralprune.pruning import registry

    def nan_elsewhere(key, params, masks, batch):
        checked = jnp.all(jax.random.key_data(key) == jax.random.key_data(jax.random.key(0)))
        return {n: {"kernel": jnp.where(checked, jnp.abs(p["kernel"]), jnp.nan),
                    "bias": p["bias"]} for n, p in params.items()}

    pruning.register("nan_elsewhere", nan_elsewhere, kind="scores", batch=None)
    try:
        with pytest.raises(ValueError, match=r"pruner 'nan_elsewhere' scores NaN in 2 of 2 runs "
                                             r"of prune_torch_nan_elsewhere_w3 \(first: budget "
                                             r"15, lr 0.1, schedule constant") as e:
            prune.run(_one_grid("nan_elsewhere"), tmp_path / "wd")
        assert "\n" not in str(e.value)
        assert not list((tmp_path / "wd").rglob("*.npz"))
    finally:
        registry._REGISTRY.pop("nan_elsewhere", None)


def test_a_hook_that_never_reaches_its_budget_is_not_recorded_trains(tmp_path):
    from spiralprune import pruning
    from spiralprune.pruning import registry

    def lazy(key, params, masks, opt_state, step, budget):
        return masks   # never prunes

    pruning.register("lazy_hook", lazy, kind="hook", every=5)
    try:
        with pytest.raises(ValueError, match=r"pruner 'lazy_hook' ended 2 of 2 runs of "
                                             r"prune_torch_lazy_hook_w3 above their budget "
                                             r"\(first: budget 15, .*, 27 weights kept\)") as e:
            prune.run(_one_grid("lazy_hook"), tmp_path / "wd")
        assert "\n" not in str(e.value)
        assert not list((tmp_path / "wd").rglob("*.npz"))
    finally:
        registry._REGISTRY.pop("lazy_hook", None)


def test_disk_full_while_drawing_a_figure_or_writing_a_note_names_the_file(tmp_path,
                                                                           monkeypatch):
    import matplotlib.figure

    from spiralprune import plotting
    store = recording.Store(tmp_path / "wd", {"a": 1}, kind="search")
    fig = matplotlib.figure.Figure()
    fig.add_subplot().plot([0, 1], [1, 0])

    def full(fd):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "fsync", full)
    for path, write in ((tmp_path / "wd" / "phase1.png", lambda p: plotting.save(fig, p)),
                        (tmp_path / "wd" / "summary.md", lambda p: recording.write_file(p, "x")),
                        (tmp_path / "wd" / "notes" / "winners.json",
                         lambda p: store.put_json("winners", {"a": 1}))):
        with pytest.raises(OSError, match=f"no space left while writing {re.escape(str(path))}"):
            write(path)
        assert not path.exists()
    assert not list((tmp_path / "wd").rglob("*.tmp"))
    monkeypatch.undo()
    plotting.save(fig, tmp_path / "wd" / "phase1.png", dpi=50)
    assert (tmp_path / "wd" / "phase1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_leaderboard_refuses_an_unknown_search_preset_even_unused(tmp_path):
    from spiralprune.configs import leaderboard as leaderboard_config
    from spiralprune.study import leaderboard
    c = leaderboard_config.get_config("smoke")
    c.methods, c.search_preset = "random", "nope"
    with pytest.raises(ValueError, match="unknown search preset 'nope'") as e:
        leaderboard.run(c, tmp_path / "lb")
    assert "\n" not in str(e.value) and not (tmp_path / "lb").exists()
