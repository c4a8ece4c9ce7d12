"""Orchestrations in the browser: the query editor — a read-only query over the customer
database, the destination it goes to, an optional incremental column, a schedule — with a
preview of the first rows and how many the next run would send; then save it, or schedule it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from audience.definitions.loader import as_documents, validate_data
from audience.definitions.orchestration import Orchestration
from audience.errors import AudienceError
from audience.server.app import Served, ServedDep
from audience.server.auth import require
from audience.server.errors import status_of
from audience.server.ui.campaign_form import schedule_document, schedule_fields
from audience.server.ui.campaigns import TIME_ZONES
from audience.server.ui.pages import PageEditor, Posted, error_page, named, render, said_of
from audience.store.accounts import User

router = APIRouter(prefix="/ui")

PREVIEW_ROWS = 10


@router.get("/new/orchestration", response_class=HTMLResponse)
def new_orchestration(request: Request, serving: ServedDep, user: PageEditor) -> HTMLResponse:
    """The query editor, empty."""
    return _page(request, serving, user, {"schedule.kind": "manual"})


@router.get("/edit/orchestration/{name:path}", response_class=HTMLResponse)
def edit_orchestration(
    request: Request, name: str, serving: ServedDep, user: PageEditor
) -> Response:
    """The query editor, holding the orchestration as saved."""
    try:
        with serving.use(user) as ws:
            definition, _ = ws.activations.definition("orchestration", name)
    except AudienceError as missing:
        return error_page(request, missing, user)
    (document,) = as_documents([definition])
    form = {
        "name": str(document["name"]),
        "original": str(document["name"]),
        "description": str(document.get("description") or ""),
        "query": str(document["query"]),
        "destination": str(document["destination"]),
        "incremental_by": str(document.get("incremental_by") or ""),
    }
    schedule = document.get("schedule")
    fields = schedule_fields(schedule, []) if schedule else {"kind": "manual"}
    form |= {f"schedule.{key}": value for key, value in fields.items()}
    return _page(request, serving, user, form)


@router.post("/orchestrations/editor", response_class=HTMLResponse)
def editor_changed(
    request: Request, serving: ServedDep, user: PageEditor, posted: Posted
) -> HTMLResponse:
    """The editor as the form now stands (the schedule's fields follow its kind)."""
    return render(
        request,
        "_orchestration_form.html",
        user,
        **_context(serving, user, posted),
    )


@router.post("/orchestrations/editor/preview", response_class=HTMLResponse)
def preview(request: Request, serving: ServedDep, user: PageEditor, posted: Posted) -> HTMLResponse:
    """The first rows of the query as written, and how many the next run would send."""
    form = posted
    try:
        with serving.use(user) as ws:
            shown = ws.preview_of(_orchestration(form, "New orchestration"), PREVIEW_ROWS)
    except AudienceError as error:
        return render(request, "_preview.html", user, problem=_problem(error))
    return render(request, "_preview.html", user, preview=shown.shape())


@router.post("/orchestrations/save", response_class=HTMLResponse)
def save(request: Request, serving: ServedDep, user: PageEditor, posted: Posted) -> Response:
    """Save the orchestration (an editor's), and with "Schedule" put it on its schedule (an
    admin's): then its page; otherwise the editor again with the error beside its field."""
    form = posted
    schedule = form.get("then") == "schedule"
    try:
        require(user, "admin" if schedule else "editor")
        orchestration = _orchestration(form, form.get("name", "").strip())
        with serving.use(user) as ws:
            ws.apply_documents([validate_data(as_documents([orchestration])[0])])
            if schedule:
                ws.activations.schedule("orchestration", orchestration.name)
    except AudienceError as error:
        return _page(request, serving, user, form, error=error)
    said = "schedule" if schedule else "saved"
    return RedirectResponse(
        f"/ui/activations/orchestration/{named(orchestration.name)}?said={said}", status_code=303
    )


def _orchestration(form: dict[str, str], name: str) -> Orchestration:
    document: dict[str, Any] = {
        "kind": "orchestration",
        "name": name,
        "query": form.get("query", ""),
        "destination": form.get("destination", ""),
    }
    if form.get("description", "").strip():
        document["description"] = form["description"].strip()
    if form.get("incremental_by", "").strip():
        document["incremental_by"] = form["incremental_by"].strip()
    fields = {k[len("schedule.") :]: v for k, v in form.items() if k.startswith("schedule.")}
    if fields.get("kind", "manual") != "manual":
        document["schedule"] = schedule_document(fields)
    loaded = validate_data(document, origin="the editor").definition
    assert isinstance(loaded, Orchestration)
    return loaded


def _problem(error: AudienceError) -> dict[str, Any]:
    field = getattr(error, "field", None) or ""
    return {"message": said_of(error), "field": field.split(".")[0] or None}


def _context(serving: Served, user: User, form: dict[str, str]) -> dict[str, Any]:
    with serving.use(user) as ws:
        destinations = sorted(ws.destinations())
    return {
        "form": form,
        "destinations": destinations,
        "sch": {k[len("schedule.") :]: v for k, v in form.items() if k.startswith("schedule.")},
        "manual_schedule": True,
        "default_kind": "manual",
        "recurring_label": "Recurring",
        "time_zones": TIME_ZONES,
        "builder_url": "/ui/orchestrations/editor",
    }


def _page(
    request: Request,
    serving: Served,
    user: User,
    form: dict[str, str],
    *,
    error: AudienceError | None = None,
) -> HTMLResponse:
    return render(
        request,
        "orchestration_editor.html",
        user,
        status_code=200 if error is None else status_of(error),
        problem=None if error is None else _problem(error),
        may_save=user.may("editor"),
        may_schedule=user.may("admin"),
        **_context(serving, user, form),
    )
