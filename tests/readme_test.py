"""README.md's Python section runs as written: the study, the figures and the leaderboard."""

import importlib
import pathlib
import re

import spiralprune

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, re.DOTALL)


def test_the_study_figures_and_leaderboard_snippet_runs(tmp_path, monkeypatch, capsys):
    snippets = [b for b in _blocks() if "study.pipeline.run" in b]
    assert len(snippets) == 1, "README.md should show the study called from Python once"
    code = snippets[0]
    for call in ("study.figures.run", "study.leaderboard.run"):
        assert call in code
    monkeypatch.chdir(tmp_path)   # its relative workdirs land here
    monkeypatch.delenv("SPIRALPRUNE_WORKDIRS", raising=False)
    scope = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["result"]["status"] == "complete"
    assert (tmp_path / "workdirs" / "study_smoke" / "summary.md").is_file()
    assert scope["figs"]["figures"] and all(pathlib.Path(f).exists()
                                            for f in scope["figs"]["figures"])
    assert (tmp_path / "workdirs" / "leaderboard" / "smoke" / "leaderboard.md").is_file()
    out = capsys.readouterr().out
    assert scope["result"]["finding"] in out and scope["board"]["markdown"] in out


def test_every_public_name_resolves():
    for package in ("spiralprune", "spiralprune.study", "spiralprune.configs",
                    "spiralprune.pruning"):
        module = importlib.import_module(package)
        assert module.__all__, package
        for name in module.__all__:
            assert getattr(module, name) is not None, f"{package}.{name}"
    assert spiralprune.study.pipeline.run and spiralprune.configs.study.get_config
