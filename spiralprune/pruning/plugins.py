"""Pruners given by import path: ``package.module:function`` or ``path/to/file.py:function``.

A dotted module is imported from the module search path as usual or, failing that, from the
working directory (a script's search path starts at its own folder, not where it was started):
the top-level package is located there with ``importlib.machinery.PathFinder`` and imported
under its own name, leaving the search path as it was. A ``.py`` file is imported once under a
private module name. Names in records: ``stage_name`` (what a record stage may hold) and
``short_name`` (for display).
"""

import importlib
import importlib.machinery
import importlib.util
import os
import pathlib
import sys


def is_path(name: str) -> bool:
    """Whether ``name`` is an import path ``package.module:attribute``."""
    return isinstance(name, str) and ":" in name


def stage_name(name: str) -> str:
    """``name`` with every character a record stage may not hold replaced by "-"."""
    # ASCII only: a record stage is [A-Za-z0-9_.-]+ (a path with other letters becomes "-").
    return "".join(c if (c.isascii() and c.isalnum()) or c in "_.-" else "-" for c in name)


def short_name(name: str) -> str:
    """A display name: the attribute of an import path, else the name."""
    return name.rpartition(":")[2] if is_path(name) else name


def display_names(names) -> dict:
    """One name per pruner, used in the table, CSV, Markdown and figure: the short name
    (``short_name``), or ``file_or_module:function`` where two short names collide."""
    names = list(dict.fromkeys(names))
    short = {n: short_name(n) for n in names}
    out = {}
    for n in names:
        if list(short.values()).count(short[n]) == 1:
            out[n] = short[n]
        else:
            module, _, attr = n.rpartition(":")
            out[n] = f"{pathlib.Path(module).stem}:{attr}" if module else n
    if len(set(out.values())) != len(out):   # still ambiguous: the full names
        out = {n: n for n in names}
    return out


def _exec(key: str, spec):
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module
    try:
        spec.loader.exec_module(module)
    except SystemExit as e:   # a module that exits would end the binary with no word
        del sys.modules[key]
        raise ValueError(f"importing pruner module {spec.origin or spec.name} called "
                         f"sys.exit({e.code!r}); a pruner module must only define functions"
                         ) from None
    except BaseException:
        del sys.modules[key]
        raise
    return module


def import_module(module_name: str):
    """A module by dotted name (also from the working directory) or a ``.py`` file path."""
    if module_name.endswith(".py"):
        path = pathlib.Path(module_name).expanduser().resolve()
        if not path.is_file():
            raise FileNotFoundError(f"no file {module_name}")
        key = f"_spiralprune_user_{stage_name(str(path))}"
        if key not in sys.modules:
            _exec(key, importlib.util.spec_from_file_location(key, path))
        return sys.modules[key]
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        top = module_name.partition(".")[0]
        if e.name != top or top in sys.modules:
            raise
        spec = importlib.machinery.PathFinder.find_spec(top, [os.getcwd()])
        if spec is None:
            raise
        _exec(top, spec)  # a package's submodules then import through its __path__
        return importlib.import_module(module_name)
