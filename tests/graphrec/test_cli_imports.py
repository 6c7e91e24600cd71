"""The verbs answer ``--help`` and argument errors without loading the heavy libraries.

Not a timing test (timings are ``bench/cli_startup.py``'s job): it checks what a verb's
module and its parser import, in a fresh interpreter, which is what makes ``--help``
fast (torch_geometric alone takes seconds to import).
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.graphrec.conftest import ROOT

VERBS = ("build", "train", "recommend", "export", "evaluate")
HEAVY = ("torch", "torch_geometric", "transformers", "implicit", "pandas", "matplotlib")

PROBE = """
import contextlib, importlib, io, json, sys
heavy = {heavy!r}
found = {{}}
for verb in {verbs!r}:
    module = importlib.import_module("graphrec." + verb)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            status = module.main(["--help"])
        except SystemExit as exc:  # build's parser exits itself
            status = exc.code
        try:
            module.main(["--no-such-flag"])
        except SystemExit:
            pass
    found[verb] = {{"status": status, "heavy": [m for m in heavy if m in sys.modules]}}
print(json.dumps(found))
"""


def probe(verbs=VERBS) -> dict:
    code = PROBE.format(heavy=HEAVY, verbs=verbs)
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_help_and_usage_errors_import_no_heavy_library():
    found = probe()
    for verb in VERBS:
        assert found[verb]["status"] == 0, verb
        assert found[verb]["heavy"] == [], f"graphrec.{verb} --help imported {found[verb]['heavy']}"


def test_the_probe_sees_a_heavy_import():
    """The check can fail: a module that does import torch is reported."""
    code = f"import sys, graphrec.serving.dot_scorer; print([m for m in {HEAVY!r} if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert "torch" in done.stdout


ERRORS = """
import contextlib, io, json, sys
import graphrec.evaluate, graphrec.export, graphrec.recommend, graphrec.train
missing = {missing!r}
calls = {{
    "train": (graphrec.train.main, ["--graph", missing, "--out", missing + "-m"]),
    "recommend": (graphrec.recommend.main, ["--model", missing, "--out", missing + ".csv"]),
    "export": (graphrec.export.main, ["--model", missing, "--out", missing + "-e"]),
    "evaluate": (graphrec.evaluate.main, ["--graph", missing, "--recommendations", missing + ".csv"]),
}}
found = {{}}
for verb, (main, argv) in calls.items():
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        status = main(argv)
    found[verb] = {{"status": status, "error": err.getvalue().strip()}}
found["heavy"] = [m for m in ("torch", "torch_geometric", "transformers", "implicit") if m in sys.modules]
print(json.dumps(found))
"""


def test_a_missing_model_or_graph_fails_before_torch_loads(tmp_path):
    code = ERRORS.format(missing=str(tmp_path / "nowhere"))
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    for verb in ("train", "recommend", "export", "evaluate"):
        assert found[verb]["status"] == 2, (verb, found[verb])
        assert "nowhere: no such artifact directory" in found[verb]["error"], (verb, found[verb])
    assert found["heavy"] == []
