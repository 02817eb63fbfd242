"""spiralprune: JAX-vectorised batch training of masked MLPs on the Cubist Spiral.

The engine (one model, one ``jit(vmap)`` boundary): ``datasets``, ``models``, ``masking``,
``schedules``, ``training``, ``populations``, ``lanes``, ``grids``, ``recording``,
``enumeration``, ``search``, ``pruning``. Reading records: ``analysis``, ``plotting``,
``playground``, ``frontier``. Everything that takes a config, a workdir or records (the study,
its stages, the figures, the leaderboard): ``study``, with the presets in ``configs``.

  from spiralprune import configs, study
  study.pipeline.run(configs.study.get_config("smoke"), "workdirs/study_smoke")

Submodules load on first use (``import spiralprune`` alone does not import jax).
"""

import importlib

__version__ = "0.1.0"

__all__ = ["analysis", "base", "configs", "datasets", "enumeration", "frontier", "grids", "lanes",
           "masking", "models", "playground", "plotting", "populations", "pruning", "recording",
           "schedules", "search", "study", "training"]


def __getattr__(name: str):
    if name in __all__:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
