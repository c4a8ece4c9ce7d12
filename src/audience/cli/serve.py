"""`audience serve`: the REST API and the web UI over one workspace."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from audience.cli.common import WorkspaceOption, err
from audience.cli.runtime import report_worker_error

HERE = Path(".")


def serve(
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on; 0.0.0.0 opens it to the network.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port.")] = 8000,
    worker: Annotated[
        bool | None,
        typer.Option(
            "--worker/--no-worker",
            help="Run a worker in the server (default: on a DuckDB workspace; with PostgreSQL "
            "run `audience worker` processes instead).",
            show_default=False,
        ),
    ] = None,
    trusted_proxy: Annotated[
        list[str] | None,
        typer.Option(
            "--trusted-proxy",
            help="Address of a reverse proxy whose X-Forwarded-For and X-Forwarded-Proto are "
            "believed (repeat for several). Without one, they are ignored: any client could "
            "otherwise pick the address sign-in limits count.",
        ),
    ] = None,
    workspace: WorkspaceOption = HERE,
) -> None:
    """Serve the REST API (OpenAPI at /docs) and the web UI (at /). Every route but /health
    needs an API token or a signed-in session: make the first admin with `audience user add NAME
    --role admin`."""
    import uvicorn

    from audience.server.app import create_app
    from audience.settings import load_settings

    load_settings(workspace)  # a missing or broken workspace is one line, before listening
    err.print(f"Serving {workspace.resolve()} on http://{host}:{port} (API docs: /docs)")
    app = create_app(workspace, worker=worker, on_worker_error=report_worker_error)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        proxy_headers=bool(trusted_proxy),
        forwarded_allow_ips=trusted_proxy or [],
    )
