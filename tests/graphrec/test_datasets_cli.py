"""``python -m graphrec.datasets`` and :func:`write_streamed`: the synthetic data set at any size."""

from __future__ import annotations

import pandas as pd
import pyarrow.parquet as pq
import pytest

from graphrec.datasets import SyntheticConfig, generate, write, write_streamed
from graphrec.datasets.__main__ import config_for, main

SMALL = SyntheticConfig(num_users=150, num_items=90, num_interactions=3_000, num_topics=4, seed=7)


def test_streamed_files_equal_the_in_memory_writer(tmp_path):
    streamed = write_streamed(SMALL, tmp_path / "streamed")
    reference = write(generate(SMALL), tmp_path / "reference")
    for name in ("items", "users", "kg", "social"):
        assert getattr(streamed, name).read_bytes() == getattr(reference, name).read_bytes(), name
    got = pq.read_table(streamed.interactions)
    assert got.equals(pq.read_table(reference.interactions))
    assert got.num_rows == SMALL.num_interactions


def test_config_scales_users_items_and_entities_with_the_log():
    small, large = config_for(1_000_000), config_for(10_000_000)
    assert (small.num_users, small.num_items) == (50_000, 20_000)
    assert (large.num_users, large.num_items) == (500_000, 200_000)
    assert large.num_creators == 10 * small.num_creators and large.num_series == 10 * small.num_series
    assert config_for(5_000, users=100, items=60).num_users == 100


def test_cli_writes_the_data_set_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "data"
    argv = ["--interactions", "4000", "--users", "200", "--items", "80", "--topics", "5", "--out", str(out)]
    assert main(argv + ["--quiet"]) == 0
    log = pd.read_parquet(out / "interactions.parquet")
    assert len(log) == 4000 and log["user_id"].nunique() == 200
    assert len(pd.read_csv(out / "items.csv")) == 80
    assert main(argv + ["--quiet"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(argv + ["--overwrite"]) == 0
    assert "4,000 events, 200 users, 80 items" in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra, message",
    [(["--topics", "99"], "num_topics"), (["--users", "5000"], "num_interactions"), (["--items", "2"], "num_items")],
)
def test_cli_bad_settings_exit_2_naming_the_setting(tmp_path, capsys, extra, message):
    assert main(["--interactions", "1000", "--out", str(tmp_path / "d"), "--quiet", *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("graphrec.datasets: error:") and message in err
    assert not (tmp_path / "d").exists()


def test_the_documented_build_command_builds_a_graph_with_text_kg_and_social(tmp_path, capsys):
    from graphrec.build import main as build_main
    from graphrec.datasets.__main__ import BUILD_COMMAND
    from kg import load_graph

    data = tmp_path / "data"
    assert main(["--interactions", "3000", "--users", "150", "--items", "60", "--out", str(data), "--quiet"]) == 0
    command = BUILD_COMMAND.replace("\\\n", " ").replace("DIR", str(data)).replace("GRAPH", str(tmp_path / "g"))
    assert build_main(command.split()[3:] + ["--quiet"]) == 0, capsys.readouterr().err
    graph = load_graph(tmp_path / "g")
    counts = graph.counts()
    assert counts["users"] == 150 and counts["items"] <= 60 and counts["social"] > 0 and counts["triples"] > 0
