"""A campaign's results in the browser: treatment against control per sub-audience, with 95 %
intervals as a table and a chart, and the same rows as a CSV download."""

from __future__ import annotations

import csv
import io

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from audience.activation.results import parse_window
from audience.errors import AudienceError
from audience.server.app import ServedDep
from audience.server.errors import status_of
from audience.server.ui.pages import PageUser, error_page, render

router = APIRouter(prefix="/ui")


@router.get("/campaigns/{name:path}/results.csv")
def results_csv(name: str, serving: ServedDep, user: PageUser, window: str = "30d") -> Response:
    """One row per group (`campaign results --csv`)."""
    try:
        with serving.use(user) as ws:
            found = ws.results.campaign(name, window=parse_window(window))
    except AudienceError as error:
        return Response(str(error), status_code=status_of(error), media_type="text/plain")
    rows = found.csv_rows()
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else ["campaign"])
    writer.writeheader()
    writer.writerows(rows)
    # ASCII only: the header is Latin-1, and a name in another script would break it.
    filename = "".join(c if c.isascii() and c.isalnum() else "_" for c in name) + "_results.csv"
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get("/campaigns/{name:path}/results", response_class=HTMLResponse)
def results_page(
    request: Request, name: str, serving: ServedDep, user: PageUser, window: str = "30d"
) -> HTMLResponse:
    """Treatment against control, over a window from each customer's first send."""
    try:
        span = parse_window(window)
        with serving.use(user) as ws:
            found = ws.results.campaign(name, window=span)
    except AudienceError as error:
        return error_page(request, error, user)
    lifts = [g.versus_control.incremental_conversion for g in found.groups if g.versus_control]
    bounds = [e for e in lifts if e is not None]
    scale = max([abs(b) for e in bounds for b in (e.low, e.high)] + [0.01])
    return render(
        request,
        "results.html",
        user,
        results=found,
        name=name,
        window=window,
        chart=[
            (f"{g.sub_audience} · {g.group}", g.versus_control.incremental_conversion)
            for g in found.groups
            if g.versus_control is not None and g.versus_control.incremental_conversion
        ],
        scale=scale,
    )
