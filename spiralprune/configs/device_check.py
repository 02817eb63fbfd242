"""The device_check presets: ``get_config(preset)`` returns a ``ConfigDict``.

The runbook (commands, runtimes, expected results, the meaning of every field) is the
docstring of ``experiments/configs/device_check.py``, the file passed to ``--config=``.
"""

import ml_collections

from spiralprune.pruning import registry

PRESETS = ("gpu", "tiny")
STUDY_BUDGETS = tuple(range(15, 27)) + (30, 33, 37, 40, 44, 50, 53, 55, 57, 60, 65)
SCHEDULES = ("constant", "cosine", "step")


def _phase_two(**kw) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.cap_s = 150.0
    c.config = (3, 3, 3)
    c.width = 16
    c.lrs = (0.05, 0.1)
    c.schedules = SCHEDULES
    c.target = 0.95
    c.max_weights = 0          # 0: no cap; else the study's subset rule w1 + w2 + w3 < this
    c.first_k_layer = 1        # 0-based layer of the first-k rule (1 is W2)
    c.first_k = 0              # 0: every mask; else the first k masks per nonzero count
    c.epochs = 50
    c.recipe = ml_collections.ConfigDict()   # further training.Spec fields
    c.chunk_size = 16384       # runs per recorded chunk (search.py's accelerator default)
    c.pieces = 5               # task shares run one after another; the cap is checked between
    c.reference = "the study: 30 nonzeros at 96.04%; prototype on one H100: 133 s, 30 nonzeros"
    c.update(kw)
    return c


def get_config(arg: str = "gpu") -> ml_collections.ConfigDict:
    """Returns the preset ``arg`` (one of PRESETS).

    Fields: total_s (the whole check's budget in seconds), min_stage_s (a stage starting with
    less left is skipped), stages (which run, in order), workdir ("" = a temporary directory,
    deleted at the end), and one sub-config per stage with its cap_s (see the module docstring).
    Throughput cells are (name, kind, widths, population sizes): kind "block" trains the
    (D, D, D) model under random block masks, "compact" the given shape drawn from the width-16
    init distribution, "dense" the given shape unmasked.
    """
    if arg not in PRESETS:
        raise ValueError(f"unknown device_check preset {arg!r}; choose from {PRESETS}")
    c = ml_collections.ConfigDict()
    c.preset = arg
    c.total_s = 460.0
    c.min_stage_s = 30.0
    c.stages = ("throughput", "phase_two", "prune", "subset")
    c.workdir = ""
    c.seed = 0

    t = c.throughput = ml_collections.ConfigDict()
    t.cap_s = 150.0
    t.epochs = 3
    t.batch_size = 128
    t.num_points = 0           # 0: the whole spiral, else a fixed random subset
    t.precisions = ("highest", "default")
    t.engines = ("vmap", "lanes")   # used only when training.Spec has an ``engine`` field
    t.lanes_max_weights = 100
    t.lanes_precisions = ("highest",)   # lanes multiply-adds elementwise: no TF32 to compare
    t.cells = (
        ("w16_block", "block", (16, 16, 16), (16384, 4096, 65536)),
        ("c333", "compact", (3, 3, 3), (16384, 65536, 2048)),
        ("c733", "compact", (7, 3, 3), (16384, 65536)),
        ("c322", "compact", (3, 2, 2), (16384,)),
        ("c632", "compact", (6, 3, 2), (16384,)),
        ("w64", "dense", (64, 64, 64), (2048, 256, 8192)),
        ("w256", "dense", (256, 256, 256), (256, 32, 1024)),
    )

    c.phase_two = _phase_two()
    c.subset = _phase_two(
        cap_s=460.0, config=(7, 3, 3), lrs=(0.05,), max_weights=33, first_k=3, pieces=6,
        target=0.995, reference="the study: 45 nonzeros at 99.59%; prototype on one H100: "
                                "182 s, 45 nonzeros at 99.58%")

    p = c.prune = ml_collections.ConfigDict()
    p.cap_s = 150.0
    p.width = 16
    p.methods = registry.METHODS   # dense, random and the nine pruners
    p.budgets = STUDY_BUDGETS
    p.lrs = (0.05, 0.1, 0.2)
    p.schedules = SCHEDULES
    p.overrides = ml_collections.ConfigDict()   # fields of configs/prune.py's paper preset

    if arg == "tiny":
        c.total_s = 120.0
        c.min_stage_s = 0.0
        t.cap_s = 60.0
        t.epochs = 1
        t.num_points = 640
        t.cells = (("c322", "compact", (3, 2, 2), (32,)),)
        tiny_recipe = dict(batch_size=1024, milestones=(1,), cosine_t_max=1)
        c.phase_two = _phase_two(cap_s=60.0, config=(2, 1, 1), lrs=(0.1,),
                                 schedules=("constant", "cosine"), epochs=1, chunk_size=4,
                                 pieces=2, reference="toy scale")
        c.phase_two.recipe = ml_collections.ConfigDict(tiny_recipe)
        # The subset rule on (2,1,1) (w1 + w2 + w3 < 8, first mask per W2 count; it keeps all
        # 4 masks) in one chunk of 4: the same compiled program as phase two.
        c.subset = _phase_two(cap_s=60.0, config=(2, 1, 1), lrs=(0.1,), schedules=("constant",),
                              max_weights=8, first_k=1, epochs=1, chunk_size=4, pieces=1,
                              target=0.6, reference="toy scale")
        c.subset.recipe = ml_collections.ConfigDict(tiny_recipe)
        p.cap_s = 60.0
        p.width = 3
        p.methods = ("random", "gmp")
        p.budgets = (15, 20)
        p.lrs = (0.1,)
        p.schedules = ("cosine",)
        p.overrides = ml_collections.ConfigDict(dict(
            epochs=1, batch_size=64, milestones=(1,), cosine_t_max=1, num_points=640,
            method_args={"gmp": {"gmp_steps": 4}}))
    return c
