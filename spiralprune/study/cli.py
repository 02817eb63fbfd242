"""What every binary does with a user error: one line on stderr and exit status 2.

A user error is a bad flag, config field, preset or config file, a stray positional argument,
a refused config or workdir (``ValueError``) or a filesystem failure (``OSError``: a file given
as the workdir, a read-only workdir, a full disk). It is reported as ``<prog>: error: <one
line>`` without usage text or traceback. Any other exception is a bug and keeps its traceback;
set ``SPIRALPRUNE_TRACEBACK=1`` to see the traceback of a user error too.

A stopped run (Ctrl-C, or SIGTERM from a scheduler) releases the chunk claims it holds,
removes its temp files (``recording.release_all``) and prints one line, ``<prog>: stopped by
Ctrl-C; rerun the same command to resume: <command>``, without a traceback (exit status 130,
143 for SIGTERM): what is recorded stays, and the same command resumes after it.

  if __name__ == "__main__":
      ...define flags...
      cli.run("search", main)   # instead of app.run(main)
"""

import contextlib
import logging
import os
import pathlib
import shlex
import signal
import sys

from absl import app, flags
from ml_collections import config_flags

from spiralprune import recording
from spiralprune.pruning import checks

# jax probes for a TPU at start-up and logs its absence at INFO on every CPU or GPU machine.
# Installed once here: the study package imports cli before its other modules.
logging.getLogger("jax._src.xla_bridge").addFilter(
    lambda record: "Unable to initialize backend" not in record.getMessage())

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
    if checks.abandoned():   # a pruner stuck in XLA: finalizing would abort the process
        sys.stdout.flush()
        os._exit(2)
    sys.exit(2)


def stop(prog: str, signum: int = signal.SIGINT) -> None:
    """Releases claims and temp files, prints the one line of a stopped run and exits."""
    recording.release_all()
    term = signum == signal.SIGTERM
    command = " ".join(shlex.quote(a) for a in ["python", *sys.argv])
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    with contextlib.suppress(Exception):
        print(f"{prog}: stopped by {'SIGTERM' if term else 'Ctrl-C'}; rerun the same command "
              f"to resume: {command}", file=sys.stderr, flush=True)
    # Nothing unwinds: worker threads (a group training, a compile ahead) are not waited for,
    # and records are atomic, so what was not written yet is simply computed on resume.
    os._exit(143 if term else 130)


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
        # Stop at once in the handler: an exception raised there can land in a garbage
        # collector callback, which swallows it, and threads would be waited for.
        with contextlib.suppress(ValueError):   # not in the main thread (a test): no handler
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, lambda n, frame: stop(prog, n))
        try:
            main(argv)
        except USER_ERRORS as e:
            if tracebacks():
                raise
            fail(prog, message(e))
        except KeyboardInterrupt:   # raised by other code, or before the handler was set
            if tracebacks():
                raise
            stop(prog)
    app.run(guarded, flags_parser=parse_flags(prog))
