"""The process's one Spark application, started from the workspace's `[engine]` settings.

Spark allows one running context per process; every `SparkEngine` gets a session of its own on
it (`newSession`: its own current database and temporary tables, shared executors). What goes
wrong before Spark runs — no Java, no pyspark, a master that does not answer — is told in one
line naming the setting to fix, never as a Java stack trace.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from audience.engines.base import driver_message
from audience.errors import EngineError, EngineUnavailable
from audience.settings import EngineSettings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

DEFAULT_CONF: dict[str, str] = {
    # SPEC §2: relative dates are day boundaries in UTC, whatever the machine's zone.
    "spark.sql.session.timeZone": "UTC",
    # TIMESTAMP means what it means in DuckDB and PostgreSQL: a time without a zone.
    "spark.sql.timestampType": "TIMESTAMP_NTZ",
    # Another session or process may rewrite a table (see spark_tables): list its files afresh
    # for every query rather than trust a cached listing.
    "spark.sql.filesourceTableRelationCacheSize": "0",
    # A progress bar on the terminal would interleave with the CLI's own output.
    "spark.ui.showConsoleProgress": "false",
    "spark.driver.extraJavaOptions": "-Dlog4j2.configurationFile="
    + (Path(__file__).parent / "spark-log4j2.properties").as_uri(),
}
"""Settings every Audience Spark application runs with; `[engine] conf` may override them."""

_CONNECT_TIMEOUT = 5.0
"""Seconds to wait for a standalone master to accept a connection before saying it is down."""
_MEMORY = re.compile(r"^(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[KMGT])B$")

_started: tuple[SparkSession, str] | None = None
_starting = threading.Lock()


def spark_session(settings: EngineSettings, warehouse: Path) -> SparkSession:
    """A new session on the process's Spark application, which starts on first use with
    `settings` (`warehouse` is where Spark's own default database goes)."""
    global _started
    with _starting:
        if _started is None:
            _started = (_start(settings, warehouse), settings.master)
        session, master = _started
    if master != settings.master:
        raise EngineUnavailable(
            f"this process already runs Spark with master {master!r}; engine.master = "
            f"{settings.master!r} needs a process of its own"
        )
    return session.newSession()


def _start(settings: EngineSettings, warehouse: Path) -> SparkSession:
    _check_java()
    _check_master(settings.master)
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise EngineUnavailable(
            "the Spark engine needs pyspark: install Audience with its extra, "
            "pip install 'audience[spark]' (or set engine.type to duckdb or postgres)"
        ) from None
    # pyspark logs every failed query's plan at ERROR on its own loggers; Audience reports the
    # error itself, in one line.
    for name in ("SQLQueryContextLogger", "DataFrameQueryContextLogger"):
        logging.getLogger(name).disabled = True
    # Audience hands Spark Arrow, never pandas: pyspark's warning about pandas' version is
    # not the user's concern.
    warnings.filterwarnings(
        "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
    )
    builder = SparkSession.builder.master(settings.master).appName(settings.app_name)
    conf = {**DEFAULT_CONF, "spark.sql.warehouse.dir": warehouse.as_uri()}
    if settings.memory_limit is not None:
        conf["spark.driver.memory"] = spark_memory(settings.memory_limit)
    for key, value in {**conf, **settings.conf}.items():
        builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
    except Exception as exc:  # py4j and pyspark raise plain exceptions when the JVM fails
        raise EngineUnavailable(
            f"cannot start Spark (engine.master = {settings.master!r}, engine.conf): "
            f"{driver_message(exc)}"
        ) from None
    return session


def spark_memory(memory_limit: str) -> str:
    """`memory_limit` as Spark spells memory: "2GB" → "2048m" (Spark's units are binary)."""
    found = _MEMORY.match(memory_limit.strip().upper().replace("IB", "B"))
    if found is None:  # the settings model admits nothing else
        raise EngineError(f"engine.memory_limit: cannot read {memory_limit!r}")
    scale = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}[found["unit"]]
    return f"{max(1, round(float(found['number']) * scale))}m"


def _check_java() -> None:
    """pyspark starts the JVM from JAVA_HOME, else from `java` on the PATH; without one it
    fails with a message about a gateway."""
    home = os.environ.get("JAVA_HOME")
    java = Path(home) / "bin" / "java" if home else shutil.which("java")
    if java is None or not Path(java).exists():
        where = f"JAVA_HOME ({home}) has no bin/java" if home else "no java on the PATH"
        raise EngineUnavailable(
            f"the Spark engine needs Java 17 and found {where}: install openjdk-17-jre-headless "
            "(`make install` does) or set JAVA_HOME"
        )


def _check_master(master: str) -> None:
    """A standalone master that is down makes Spark retry for a minute before giving up: ask
    it directly first."""
    if not master.startswith("spark://"):
        return
    for address in master.removeprefix("spark://").split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=_CONNECT_TIMEOUT):
                return
        except (OSError, ValueError):
            continue
    raise EngineUnavailable(
        f"cannot reach the Spark master {master} (engine.master): nothing answers there"
    )
