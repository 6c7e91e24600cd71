"""The Spark engine of the build: the same graph artifact from a cluster.

``python -m graphrec.build --engine spark [--spark-master URL]`` runs
:func:`kg.spark.build.build_graph_spark`. PySpark is imported only here and only
when this engine runs (``pip install graphrec[spark]``; Java 17), so nothing
else in ``kg`` needs it. See docs/SCALE.md for what runs on the executors and
what still runs on the driver.
"""

from __future__ import annotations

__all__ = ["build_graph_spark", "spark_session"]


def __getattr__(name: str):
    if name == "build_graph_spark":
        from kg.spark.build import build_graph_spark

        return build_graph_spark
    if name == "spark_session":
        from kg.spark.session import spark_session

        return spark_session
    raise AttributeError(name)
