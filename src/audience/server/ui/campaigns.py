"""The campaign builder, in the order the seeds describe it: name; Include and Exclude
segments; sub-audiences with their criteria; treatments whose percentages must total 100 with
the control; destinations per treatment; attributes per destination (from its defaults and the
source table, renamed as the destination wants them); files; schedule and launch date; a live
plan before saving; then save as a draft, or schedule it (an admin's)."""

from __future__ import annotations

import zoneinfo
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from audience.definitions.campaign import Campaign
from audience.definitions.loader import as_documents, validate_data
from audience.errors import AudienceError
from audience.server.app import Served, ServedDep
from audience.server.auth import require
from audience.server.errors import status_of
from audience.server.ui import campaign_form as codec
from audience.server.ui.campaign_form import CampaignForm
from audience.server.ui.condition_form import Node, describe_path
from audience.server.ui.pages import (
    PageEditor,
    Posted,
    error_page,
    named,
    render,
    said_of,
    still_as_opened,
)
from audience.server.ui.segments import condition_context, first_column
from audience.server.ui.untouched import keep_untouched
from audience.store.accounts import User

if TYPE_CHECKING:
    from audience.workspace import Workspace

router = APIRouter(prefix="/ui")

BUILDER_URL = "/ui/campaigns/editor"
TIME_ZONES = sorted(zoneinfo.available_timezones())


@router.get("/new/campaign", response_class=HTMLResponse)
def new_campaign(request: Request, serving: ServedDep, user: PageEditor) -> HTMLResponse:
    """The builder, with one treatment of 90 % and a 10 % control to start from."""
    with serving.use(user) as ws:
        destinations = sorted(ws.destinations())
    built = codec.new_form(destinations[0] if destinations else None)
    return _page(request, serving, user, built)


@router.get("/edit/campaign/{name:path}", response_class=HTMLResponse)
def edit_campaign(request: Request, name: str, serving: ServedDep, user: PageEditor) -> Response:
    """The builder, holding the campaign as it is saved."""
    try:
        with serving.use(user) as ws:
            campaign, version = ws.campaign(name)
    except AudienceError as missing:
        return error_page(request, missing, user)
    (document,) = as_documents([campaign])
    built, unshown = codec.from_document(document)
    built.version = str(version)
    return _page(request, serving, user, built, unshown=unshown)


@router.post("/campaigns/editor", response_class=HTMLResponse)
def builder_changed(
    request: Request, serving: ServedDep, user: PageEditor, posted: Posted
) -> HTMLResponse:
    """The builder as the form now stands, after the button pressed (htmx swaps it in)."""
    built = codec.parse_form(posted)
    with serving.use(user) as ws:
        first = first_column(ws)
        defaults = _defaults(ws)
    _start_conditions(built, first)
    if action := posted.get("action", ""):
        codec.apply_action(built, action, first, defaults)
    return render(request, "_campaign_builder.html", user, **_context(serving, user, built))


@router.post("/campaigns/editor/plan", response_class=HTMLResponse)
def builder_plan(
    request: Request, serving: ServedDep, user: PageEditor, posted: Posted
) -> HTMLResponse:
    """Who would land in each sub-audience and group if the campaign as built ran now; nothing
    is saved or sent."""
    built = codec.parse_form(posted)
    try:
        with serving.use(user) as ws:
            campaign = _campaign(ws, built, name=built.name or "New campaign")
            plan = ws.plan_of(campaign)
    except AudienceError as error:
        return render(request, "_plan.html", user, problem=_problem(error))
    return render(request, "_plan.html", user, plan=plan)


@router.post("/campaigns/save", response_class=HTMLResponse)
def save(request: Request, serving: ServedDep, user: PageEditor, posted: Posted) -> Response:
    """Save the campaign (an editor's), and with "Schedule" put it on its schedule (an
    admin's): then its page; otherwise the builder again, each error beside its field."""
    built = codec.parse_form(posted)
    schedule = posted.get("then") == "schedule"
    try:
        require(user, "admin" if schedule else "editor")
        with serving.use(user) as ws:
            campaign = _campaign(ws, built, name=built.name)
            document = as_documents([campaign])[0]
            if built.original:  # what the builder does not show is kept as it was
                found, version = ws.campaign(built.original)
                still_as_opened("campaign", found.name, built.version, version)
                (stored,) = as_documents([found])
                shown = _campaign(ws, codec.from_document(stored)[0], name=built.name)
                document = keep_untouched(stored, as_documents([shown])[0], document)
            ws.apply_documents([validate_data(document, origin="the builder")])
            if schedule:
                ws.activations.schedule("campaign", campaign.name)
    except AudienceError as error:
        return _page(request, serving, user, built, error=error)
    said = "schedule" if schedule else "saved"
    return RedirectResponse(
        f"/ui/activations/campaign/{named(campaign.name)}?said={said}", status_code=303
    )


@router.post("/campaigns/{name:path}/test")
def test_send(request: Request, name: str, serving: ServedDep, user: PageEditor) -> Response:
    """Send a sample of ten rows per file, named TEST_… (an editor's); then the test run."""
    try:
        with serving.use(user) as ws:
            run = ws.campaign_run(name, test_records=10)
    except AudienceError as error:
        return error_page(request, error, user)
    return RedirectResponse(f"/ui/runs/{run.id}", status_code=303)


def _campaign(ws: Workspace, built: CampaignForm, *, name: str) -> Campaign:
    tables = ws.settings.tables
    profile = ws.catalog.columns(tables.profile)
    events = ws.catalog.tables.get(tables.events, {})
    document = codec.to_document(built, profile, events, _defaults(ws)) | {"name": name}
    loaded = validate_data(document, origin="the builder").definition
    assert isinstance(loaded, Campaign)
    return loaded


def _defaults(ws: Workspace) -> dict[str, list[Any]]:
    """Each destination's default attributes, as documents write them."""
    return {
        name: [
            item if isinstance(item, str) else item.model_dump(by_alias=True, exclude_defaults=True)
            for item in destination.default_attributes
        ]
        for name, destination in ws.destinations().items()
    }


def _start_conditions(built: CampaignForm, first_column: str) -> None:
    """A sub-audience just switched to conditions starts with one."""
    for sub in built.sub_audiences:
        if sub.criteria == "conditions" and sub.conditions is None:
            sub.conditions = Node(type="group", children=[Node(fields={"attribute": first_column})])


def _problem(error: AudienceError) -> dict[str, Any]:
    path = codec.form_path(getattr(error, "field", None))
    message = said_of(error)
    if path is not None and path.startswith("a."):
        sub, _, rest = path[2:].partition(".")
        where = f"Sub-audience {int(sub) + 1}"
        if rest.startswith("w"):
            where += ", " + describe_path(rest).replace("Include", "criteria")
        elif rest.startswith("t."):
            where += f", treatment {int(rest.split('.')[1]) + 1}"
        message = f"{where}: {message}"
    return {"message": message, "field": path}


def _context(serving: Served, user: User, built: CampaignForm) -> dict[str, Any]:
    with serving.use(user) as ws:
        tables = ws.settings.tables
        segments = sorted(ws.segments())
        destinations = ws.destinations()
        source_columns = list(ws.catalog.tables.get(tables.source, {}))
        profile_columns = list(ws.catalog.columns(tables.profile))
        defaults = _defaults(ws)
    attributes = {
        name: built.attributes.get(name) or codec.rows_of(defaults.get(name, []))
        for name in built.destinations()
    }
    return {
        "built": built,
        "segments": segments,
        "destinations": sorted(destinations),
        "attributes": attributes,
        "edited": {
            name
            for name, rows in attributes.items()
            if [codec.document_of(row) for row in rows] != defaults.get(name, [])
        },
        "source_table": tables.source,
        "source_columns": source_columns,
        "profile_columns": profile_columns,
        "time_zones": TIME_ZONES,
        **condition_context(serving, user, built.condition_roots(), BUILDER_URL),
    }


def _page(
    request: Request,
    serving: Served,
    user: User,
    built: CampaignForm,
    *,
    unshown: list[str] | None = None,
    error: AudienceError | None = None,
) -> HTMLResponse:
    return render(
        request,
        "campaign_editor.html",
        user,
        status_code=200 if error is None else status_of(error),
        unshown=unshown or [],
        problem=None if error is None else _problem(error),
        may_save=user.may("editor"),
        may_schedule=user.may("admin"),
        **_context(serving, user, built),
    )
