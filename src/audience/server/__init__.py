"""The REST API (FastAPI, served by uvicorn): every route calls the `Workspace` façade the CLI
calls, and answers with the same JSON shapes as the CLI's `--json`."""
