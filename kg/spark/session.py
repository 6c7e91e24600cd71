"""Getting a SparkSession for the build and batch top-K."""

from __future__ import annotations

import os
import shutil
import sys
from typing import Any

__all__ = ["SparkUnavailable", "spark_session"]


class SparkUnavailable(RuntimeError):
    """PySpark or Java is missing: the message says what to install."""


def spark_session(master: str | None = None, *, app_name: str = "graphrec", conf: dict[str, str] | None = None) -> Any:
    """The active SparkSession, or a new one on ``master``.

    Args:
        master: a master URL (``local[4]``, ``spark://host:7077``, ``yarn``, ...);
            ``None`` keeps the one ``spark-submit`` set, else ``local[*]``.
        app_name: the application name shown in the Spark UI.
        conf: extra ``spark.*`` settings.

    Raises:
        SparkUnavailable: pyspark is not installed or no Java runtime is found.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise SparkUnavailable(
            "--engine spark needs pyspark: pip install 'graphrec[spark]' (pyspark>=3.5 and a Java 17 runtime)"
        ) from None
    if not os.environ.get("JAVA_HOME") and shutil.which("java") is None:
        raise SparkUnavailable("--engine spark needs a Java runtime (Java 17): none on PATH and JAVA_HOME is unset")
    builder = SparkSession.builder.appName(app_name)
    if master is not None:
        builder = builder.master(master)
    elif not os.environ.get("SPARK_MASTER") and "spark.master" not in (conf or {}):
        active = SparkSession.getActiveSession()
        if active is not None:
            return active
        builder = builder.master("local[*]")
    settings = {
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.session.timeZone": "UTC",
    }
    if (master or "local").startswith("local"):
        settings["spark.sql.shuffle.partitions"] = "8"
        # Local workers run the driver's interpreter, whose packages (pyarrow, graphrec) they need; otherwise
        # PySpark starts the python3 on PATH, e.g. the system's when the virtual environment is not activated.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    settings.update(conf or {})
    for key, value in settings.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


def spark_failure(exc: BaseException) -> str | None:
    """One line for an exception raised by a Spark job (``None`` when ``exc`` is not Spark's).

    Executor-side errors (a Python exception in a task, a Java one in the JVM) come
    back as long traces; the CLIs print this line instead (exit status 2).
    """
    module = type(exc).__module__ or ""
    if not (module.startswith("pyspark") or module.startswith("py4j")):
        return None
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    # A Python task's own exception is the last "Name: message" line of its trace.
    detail = next((line for line in reversed(lines) if "Error: " in line or "Exception: " in line), lines[-1] if lines else "")
    return f"the Spark job failed: {detail[:500]}"
