"""``python -m graphrec.build`` end to end: success, config files, and bad input exiting 2 with nothing written."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from graphrec.build import main
from kg import load_graph
from tests.kg.demo_files import write_demo


@pytest.fixture
def demo(tmp_path):
    return write_demo(tmp_path / "data")


def args_for(files, out) -> list[str]:
    return [
        "--interactions", str(files["interactions"]), "--items", str(files["items"]), "--users", str(files["users"]),
        "--kg", str(files["kg"]), "--social", str(files["social"]), "--out", str(out),
    ]


def test_build_prints_a_summary_and_writes_the_artifact(demo, tmp_path, capsys):
    out = tmp_path / "graph"
    assert main(args_for(demo, out) + ["--event-weight", "purchase=5", "--event-weight", "view=1",
                                       "--event-weight", "click=2", "--seed", "7"]) == 0
    printed = capsys.readouterr().out
    assert "users 5  items 6  interactions 12" in printed
    assert "top-20% items hold 50.0% of interactions" in printed
    assert "connected components (user-item, networkx)" in printed
    assert "item column 'tags': multi (values separated by '|')" in printed
    assert "rejected rows: none" in printed and f"wrote {out}" in printed
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["build_config"]["seed"] == 7
    assert manifest["build_config"]["event_weights"] == {"purchase": 5.0, "view": 1.0, "click": 2.0}
    assert manifest["counts"]["interactions"] == 12
    assert load_graph(out).counts() == manifest["counts"]
    # A second build to the same place needs --overwrite.
    assert main(args_for(demo, out)) == 2
    assert "exists and is not empty; pass --overwrite" in capsys.readouterr().err
    assert main(args_for(demo, out) + ["--overwrite", "--quiet"]) == 0


def test_config_file_with_flag_overrides(demo, tmp_path, capsys):
    config = tmp_path / "build.yaml"
    config.write_text(
        f"interactions: {demo['interactions']}\nitems: {demo['items']}\nsplit: temporal\nk_core: 2\n"
        "valid_fraction: 0.0\nitem_text_columns: [title]\n"
    )
    out = tmp_path / "graph"
    assert main(["--config", str(config), "--valid-fraction", "0.5", "--out", str(out), "--quiet"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["split"]["method"] == "temporal" and manifest["split"]["valid_fraction"] == 0.5
    assert manifest["item_text_columns"] == ["title"]
    assert manifest["filters"]["k_core"]["items_removed"] == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text("interactions: x.csv\nsplit_method: random\n")
    assert main(["--config", str(bad), "--out", str(tmp_path / "o2")]) == 2
    assert "unknown build setting 'split_method'" in capsys.readouterr().err


def test_lenient_prints_the_rejected_report(demo, tmp_path, capsys):
    lines = demo["interactions"].read_text().splitlines()
    lines[3] = ",i1,110,purchase"
    demo["interactions"].write_text("\n".join(lines) + "\n")
    out = tmp_path / "graph"
    assert main(args_for(demo, out) + ["--lenient"]) == 0
    printed = capsys.readouterr().out
    assert f"{demo['interactions']}: missing user id: 1 (e.g. line 4" in printed
    assert json.loads((out / "manifest.json").read_text())["rejected"] == {str(demo["interactions"]): {"missing user id": 1}}


def edit_line(path, number, text):
    lines = path.read_text().splitlines()
    lines[number - 1] = text
    path.write_text("\n".join(lines) + "\n")


def renamed_column(files):
    edit_line(files["interactions"], 1, "usr,item_id,timestamp,event")
    return files["interactions"], None, "no user column"


def null_user(files):
    edit_line(files["interactions"], 5, ",i2,120,view")
    return files["interactions"], 5, "missing user id"


def bad_timestamp(files):
    edit_line(files["interactions"], 9, "u2,i3,12th of May,view")
    return files["interactions"], 9, "non-numeric timestamp"


def wrong_field_count(files):
    edit_line(files["interactions"], 7, "u1,i4,140")
    return files["interactions"], 7, "wrong number of fields"


def empty_log(files):
    files["interactions"].write_text("")
    return files["interactions"], None, "empty file"


def duplicate_item(files):
    with open(files["items"], "a") as handle:
        handle.write("i3,Again,Text,film,,1.0,2000\n")
    return files["items"], 8, "duplicate item id"


def unknown_link_item(files):
    link = files["kg"].with_name("link.csv")
    link.write_text("item_id,entity_id\ni1,creator:1\ni99,creator:2\n")
    files["link"] = link
    return link, 3, "unknown item id"


def kg_missing_tail(files):
    edit_line(files["kg"], 4, "i3\tcreated_by\t")
    return files["kg"], 4, "missing tail"


def latin1_items(files):
    raw = files["items"].read_bytes().replace(b"Love Letter", "Lové Letter".encode("latin-1"))
    files["items"].write_bytes(raw)
    return files["items"], 3, "not valid utf-8"


@pytest.mark.parametrize(
    "damage",
    [renamed_column, null_user, bad_timestamp, wrong_field_count, empty_log, duplicate_item,
     unknown_link_item, kg_missing_tail, latin1_items],
)
def test_malformed_input_exits_2_naming_file_and_line(demo, tmp_path, capsys, damage):
    path, line, reason = damage(demo)
    out = tmp_path / "out" / "graph"
    argv = args_for(demo, out) + (["--link", str(demo["link"])] if "link" in demo else [])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("graphrec.build: error: ") and "Traceback" not in err
    assert str(path) in err and reason in err
    if line is not None:
        assert f"line {line}" in err
    # Nothing half-written: no artifact and no temporary directory beside it.
    assert not out.exists()
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_module_entry_point_runs(demo, tmp_path):
    out = tmp_path / "graph"
    done = subprocess.run(
        [sys.executable, "-m", "graphrec.build", *args_for(demo, out), "--quiet"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"wrote {out}"
    done = subprocess.run(
        [sys.executable, "-m", "graphrec.build", "--interactions", str(tmp_path / "missing.csv"),
         "--out", str(tmp_path / "other")],
        capture_output=True, text=True,
    )
    assert done.returncode == 2 and "missing.csv: no such file" in done.stderr
