"""Real-service fixtures, once for the whole suite: DuckDB and PostgreSQL workspaces, and S3.

PostgreSQL runs on 127.0.0.1:5432 (database `test`); each test session works in a schema of its own
and drops it at the end. S3 is moto's server on a free loopback port, reached over HTTP only:
boto3 talks to it through `endpoint_url`, the code path real S3 and S3-compatible stores take.
SFTP is Debian's OpenSSH server on a free loopback port, with keys of its own (`ssh_server`).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from audience.workspace import Workspace
from faultproxy import FaultProxy
from realservices import (
    ENGINES,
    POSTGRES_URL,
    SAMPLE_PROFILES,
    SAMPLE_SEED,
    make_workspace,
    new_postgres_schema,
)
from sshserver import SshServer, start_ssh_server


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The PostgreSQL server the tests use."""
    return POSTGRES_URL


@pytest.fixture(scope="session")
def postgres_schema() -> Iterator[str]:
    """The session's schema, holding the PostgreSQL sample workspace."""
    with new_postgres_schema() as schema:
        yield schema


@pytest.fixture
def own_postgres_schema() -> Iterator[str]:
    """A schema of the test's own."""
    with new_postgres_schema() as schema:
        yield schema


@pytest.fixture(scope="session")
def sample_workspaces(
    tmp_path_factory: pytest.TempPathFactory, postgres_schema: str
) -> Iterator[dict[str, Workspace]]:
    """The same sample customer 360 in DuckDB and in PostgreSQL."""
    workspaces = {}
    for engine in ENGINES:
        ws = make_workspace(tmp_path_factory.mktemp(f"ws-{engine}"), engine, postgres_schema)
        ws.load_sample(profiles=SAMPLE_PROFILES, seed=SAMPLE_SEED)
        workspaces[engine] = ws
    yield workspaces
    for ws in workspaces.values():
        ws.close()


@pytest.fixture(params=ENGINES)
def sample_workspace(
    request: pytest.FixtureRequest, sample_workspaces: dict[str, Workspace]
) -> Workspace:
    """Each engine's sample workspace in turn."""
    return sample_workspaces[request.param]


@pytest.fixture(scope="session")
def sample_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A closed DuckDB file holding the sample, to copy into fresh workspaces."""
    directory = tmp_path_factory.mktemp("sample-template")
    with make_workspace(directory, "duckdb") as ws:
        ws.load_sample(profiles=SAMPLE_PROFILES, seed=SAMPLE_SEED)
    return directory / "customer360.duckdb"


@pytest.fixture
def fresh_workspace(tmp_path: Path, sample_database: Path) -> Iterator[Workspace]:
    """A DuckDB workspace of its own (sample data, empty store and ledger), fixed clock."""
    directory = tmp_path / "workspace"
    directory.mkdir()
    shutil.copy(sample_database, directory / "customer360.duckdb")
    with make_workspace(directory, "duckdb") as ws:
        yield ws


@pytest.fixture(scope="session")
def sample_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Spark warehouse folder holding the sample, to copy into fresh Spark workspaces."""
    directory = tmp_path_factory.mktemp("spark-sample-template")
    with make_workspace(directory, "spark") as ws:
        ws.load_sample(profiles=SAMPLE_PROFILES, seed=SAMPLE_SEED)
    return directory / "spark-warehouse"


@pytest.fixture(params=["duckdb", "spark"])
def fresh_engine_workspace(
    request: pytest.FixtureRequest, tmp_path: Path, sample_database: Path
) -> Iterator[Workspace]:
    """A workspace of its own on DuckDB, then on Spark (sample data, empty store and ledger)."""
    directory = tmp_path / "workspace"
    directory.mkdir()
    if request.param == "spark":
        shutil.copytree(request.getfixturevalue("sample_warehouse"), directory / "spark-warehouse")
    else:
        shutil.copy(sample_database, directory / "customer360.duckdb")
    with make_workspace(directory, request.param) as ws:
        yield ws


# Credentials and settings the tests give boto3, so nothing is read from ~/.aws or the
# instance metadata service.
AWS_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
}


def start_moto(port: int = 0) -> tuple[ThreadedMotoServer, str]:
    """Start a moto server on 127.0.0.1 (a free port unless given); return it and its URL."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    host, bound = server.get_host_and_port()
    return server, f"http://{host}:{bound}"


@pytest.fixture(scope="session")
def aws_environment() -> Iterator[None]:
    """Fake AWS credentials for the whole session."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in AWS_ENVIRONMENT.items():
            patch.setenv(name, value)
        yield


@pytest.fixture(scope="session")
def moto_endpoint(aws_environment: None) -> Iterator[str]:
    """The URL of a moto S3 (and STS) server running for the whole session."""
    server, url = start_moto()
    yield url
    server.stop()


@pytest.fixture
def moto_server(aws_environment: None) -> Callable[[int], tuple[ThreadedMotoServer, str]]:
    """Start a moto server of a test's own (on the given port, or a free one if 0), for tests
    that stop it; the caller stops it."""
    return start_moto


@pytest.fixture
def s3(moto_endpoint: str) -> Any:
    """A boto3 S3 client on the moto server, for tests to look at what was delivered."""
    return boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")


@pytest.fixture
def fault_proxy(moto_endpoint: str) -> Iterator[FaultProxy]:
    """A real HTTP proxy on a loopback port in front of the moto server, which delays, stalls or
    refuses the requests a test names (`proxy.add(Fault(...))`) and passes the rest on; point a
    destination's `endpoint_url` at `proxy.url`."""
    proxy = FaultProxy(moto_endpoint)
    yield proxy
    proxy.close()


@pytest.fixture(scope="session")
def ssh_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    """A real OpenSSH server on a free loopback port for the whole session (see sshserver.py)."""
    server = start_ssh_server(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()
