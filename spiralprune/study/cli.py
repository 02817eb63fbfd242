"""What every binary does with a user error: one line on stderr and exit status 2.

A user error is a bad flag, config field, preset or config file, a stray positional argument,
a refused config or workdir (``ValueError``) or a filesystem failure (``OSError``: a file given
as the workdir, a read-only workdir, a full disk). It is reported as ``<prog>: error: <one
line>`` without usage text or traceback. Any other exception is a bug and keeps its traceback;
set ``SPIRALPRUNE_TRACEBACK=1`` to see the traceback of a user error too.

  if __name__ == "__main__":
      ...define flags...
      cli.run("search", main)   # instead of app.run(main)
"""

import os
import pathlib
import sys

from absl import app, flags
from ml_collections import config_flags

USER_ERRORS = (ValueError, OSError)
_PREFIXES = ("ValueError: ", "KeyError: ", "AttributeError: ", "FileNotFoundError: ",
             "OSError: ", "IOError: ", "TypeError: ")


def workdirs_root() -> pathlib.Path:
    """Where default workdirs go (``workdirs/study_quick``, ``workdirs/leaderboard/<preset>``).

    One rule: ``$SPIRALPRUNE_WORKDIRS`` if set; else ``workdirs`` in the spiralprune checkout
    holding the current directory (the nearest ancestor whose pyproject.toml names the project,
    so a notebook in notebooks/ and a binary run from the root share records); else
    ``./workdirs``.
    """
    env = os.environ.get("SPIRALPRUNE_WORKDIRS", "")
    if env:
        return pathlib.Path(env).expanduser()
    here = pathlib.Path.cwd()
    for d in (here, *here.parents):
        try:
            if 'name = "spiralprune"' in (d / "pyproject.toml").read_text():
                return pathlib.Path(os.path.relpath(d / "workdirs"))   # e.g. ../workdirs
        except (OSError, UnicodeDecodeError):
            continue
    return pathlib.Path("workdirs")


def tracebacks() -> bool:
    """Whether user errors should raise with their traceback (env SPIRALPRUNE_TRACEBACK=1)."""
    return os.environ.get("SPIRALPRUNE_TRACEBACK", "") not in ("", "0")


def message(error: BaseException) -> str:
    """The one line a user sees for ``error``."""
    if isinstance(error, OSError) and error.filename is not None:
        text = f"cannot write or read {error.filename}: {error.strerror or type(error).__name__}"
    elif isinstance(error, OSError) and error.strerror:
        text = error.strerror
    else:
        text = str(error).strip("'\"") if isinstance(error, KeyError) else str(error)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[0] if lines else type(error).__name__


def fail(prog: str, text: str) -> None:
    """Prints ``<prog>: error: <text>`` (its first line) on stderr and exits with status 2."""
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    print(f"{prog}: error: {lines[0] if lines else 'error'}", file=sys.stderr, flush=True)
    sys.exit(2)


def _flag_error(error: flags.Error) -> str:
    """The useful line of an absl flag error (config_flags embeds the config's traceback)."""
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    last = lines[-1] if lines else "bad flags"
    for prefix in _PREFIXES:
        last = last.removeprefix(prefix)
    return last.strip("'\"") if last.startswith(("'", '"')) else last


def parse_flags(prog: str):
    """An ``app.run`` flags parser: one-line errors, and no positional arguments."""
    def parser(argv):
        try:
            rest = flags.FLAGS(argv)
        except flags.Error as e:
            if tracebacks():
                raise
            fail(prog, _flag_error(e))
        except (AttributeError, KeyError, TypeError, ValueError) as e:  # a misspelled field
            if tracebacks():
                raise
            fail(prog, f"unknown config field {str(e).strip(chr(34) + chr(39))!r} "
                       "(see the preset's fields in its config file)")
        for name in list(flags.FLAGS):
            value = flags.FLAGS[name].value
            if type(value).__name__ != "_ErrorConfig":  # config_flags' unloadable config
                continue
            error = object.__getattribute__(value, "_error")
            if tracebacks():
                raise error
            given = [a.split("=", 1)[1] for a in argv[1:] if a.startswith(f"--{name}=")]
            arg = given[-1] if given else flags.FLAGS[name].default_as_str or name
            path = arg.strip("'\"").split(":")[0]
            fail(prog, f"config file {path} does not exist" if not os.path.exists(path)
                 else f"cannot load config file {arg}: {message(error)}")
        if len(rest) > 1:
            fail(prog, f"unexpected arguments: {' '.join(rest[1:])}")
        return rest
    return parser


def define_config(prog: str, name: str, default: str, help_string: str) -> None:
    """``config_flags.DEFINE_config_file`` with one-line errors.

    config_flags applies ``--config.<field>`` overrides found in ``sys.argv`` when the flag is
    defined, so a misspelled field fails here, before the flags are parsed.
    """
    try:
        config_flags.DEFINE_config_file(name, default, help_string)
    except (AttributeError, KeyError, TypeError, ValueError, flags.Error) as e:
        if tracebacks():
            raise
        text = str(e).strip("'\"").replace("\\n", " ").replace("\n", " ")
        text = text.replace("\\'", "'").replace("\\\"", '"').replace("\\", "")
        fail(prog, f"unknown config field or bad value: {text}")


def run(prog: str, main) -> None:
    """``app.run(main)`` with one-line user errors (exit status 2) for flags and ``main``."""
    def guarded(argv):
        try:
            main(argv)
        except USER_ERRORS as e:
            if tracebacks():
                raise
            fail(prog, message(e))
    app.run(guarded, flags_parser=parse_flags(prog))
