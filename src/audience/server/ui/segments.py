"""Segments in the browser: the list, one segment's insights (with a breakdown and its history),
and the editor — conditions built from drop-downs (or SQL), whose count and insights refresh as
the user edits, saved as a draft or activated."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from audience.compile.conditions import OPERATORS_BY_KIND
from audience.definitions.conditions import RELATIVE_OPS
from audience.definitions.loader import as_documents, validate_data
from audience.definitions.segment import Segment
from audience.errors import AudienceError, InvalidInput
from audience.server.app import Served, ServedDep
from audience.server.errors import status_of
from audience.server.ui import condition_form as form_codec
from audience.server.ui.pages import (
    PageEditor,
    PageUser,
    Posted,
    error_page,
    named,
    render,
    said_of,
    still_as_opened,
)
from audience.server.ui.untouched import keep_untouched
from audience.store.accounts import User

if TYPE_CHECKING:
    from audience.workspace import Workspace

router = APIRouter(prefix="/ui")

OPERATOR_ORDER = (
    "=", "!=", "<", "<=", ">", ">=", "between", "not_between", "in", "not_in",
    "contains", "not_contains", "starts_with", "ends_with", "is_empty", "is_not_empty",
    "is_true", "is_false", "before", "after", "on_or_before", "on_or_after",
    "within_last", "more_than_ago", "today", "yesterday", "is_null", "is_not_null",
)  # fmt: skip
"""Operators in the order the drop-down lists them."""

OPERATOR_LABELS = {
    "=": "is",
    "!=": "is not",
    "<": "less than",
    "<=": "at most",
    ">": "more than",
    ">=": "at least",
    "between": "between",
    "not_between": "not between",
    "in": "is one of",
    "not_in": "is none of",
    "contains": "contains",
    "not_contains": "does not contain",
    "starts_with": "starts with",
    "ends_with": "ends with",
    "is_empty": "is empty",
    "is_not_empty": "is not empty",
    "is_true": "is true",
    "is_false": "is false",
    "before": "before",
    "after": "after",
    "on_or_before": "on or before",
    "on_or_after": "on or after",
    "within_last": "within the last",
    "more_than_ago": "more than … ago",
    "today": "is today",
    "yesterday": "is yesterday",
    "is_null": "is unknown",
    "is_not_null": "is known",
}
PICKLIST_SIZE = 25
PICKLIST_SECONDS = 600.0
"""How long a column's most frequent values are reused before they are counted again."""


class Picklists:
    """The most frequent values of the columns the editors use, counted once in a while: at
    ten million profiles a column's top values take a scan, and an editor redraws often."""

    def __init__(self, seconds: float = PICKLIST_SECONDS) -> None:
        self._seconds = seconds
        self._found: dict[tuple[str, str, str], tuple[float, list[str]]] = {}
        self._lock = threading.Lock()

    def values(self, ws: Workspace, table: str, column: str) -> list[str]:
        """`table.column`'s most frequent values (the workspace's, counted lately)."""
        key, now = (str(ws.directory), table, column), time.monotonic()
        with self._lock:
            found = self._found.get(key)
        if found is not None and now - found[0] < self._seconds:
            return found[1]
        counted: list[str] = ws.attribute_values(table, column, PICKLIST_SIZE)
        with self._lock:
            self._found[key] = (now, counted)
        return counted


PICKLISTS = Picklists()


def first_column(ws: Workspace) -> str:
    """The column a new condition starts on: the profile's first that is not its id."""
    tables = ws.settings.tables
    columns = _columns(ws.catalog.columns(tables.profile))
    return next((c for c in columns if c != tables.id), next(iter(columns), ""))


@router.get("/segments", response_class=HTMLResponse)
def segments_page(request: Request, serving: ServedDep, user: PageUser) -> HTMLResponse:
    """Every segment, its status and versions."""
    with serving.use(user) as ws:
        summaries = ws.segment_summaries()
    return render(request, "segments.html", user, segments=summaries)


@router.get("/new/segment", response_class=HTMLResponse)
def new_segment(request: Request, serving: ServedDep, user: PageEditor) -> HTMLResponse:
    """The editor, empty but for one condition to start from."""
    blocks: dict[str, form_codec.Node | None] = {"w": None, "x": None}
    with serving.use(user) as ws:
        first = first_column(ws)
    blocks["w"] = form_codec.Node(
        type="group", children=[form_codec.Node(fields={"attribute": first})]
    )
    return _editor_page(request, serving, user, {"name": "", "description": ""}, blocks, "")


@router.get("/edit/segment/{name:path}", response_class=HTMLResponse)
def edit_segment(request: Request, name: str, serving: ServedDep, user: PageEditor) -> Response:
    """The editor, holding the segment's newest version."""
    try:
        with serving.use(user) as ws:
            segment, version = ws.segment(name)
    except AudienceError as missing:
        return error_page(request, missing, user)
    (document,) = as_documents([segment])
    blocks, unshown = form_codec.from_conditions(document.get("where"), document.get("exclude"))
    identity = {
        "name": segment.name,
        "description": segment.description,
        "original": name,
        "version": str(version),
    }
    return _editor_page(
        request, serving, user, identity, blocks, segment.sql or "", unshown=unshown
    )


@router.get("/segments/{name:path}", response_class=HTMLResponse)
def segment_page(
    request: Request,
    name: str,
    serving: ServedDep,
    user: PageUser,
    by: str | None = None,
    said: str | None = None,
    refresh: bool = False,
) -> Response:
    """One segment: its insights now (recorded in its history when refreshed), a breakdown,
    its SQL."""
    try:
        with serving.use(user) as ws:
            segment, version = ws.segment(name)
            columns = _columns(ws.catalog.columns(ws.settings.tables.profile))
            insights = ws.segment_insights(name, by=by or None, record=refresh)
            history = ws.segment_history(name)
            sql = ws.segment_sql(name)
    except AudienceError as error:
        return error_page(request, error, user)
    return render(
        request,
        "segment.html",
        user,
        segment=segment,
        version=version,
        insights=insights,
        history=history,
        sql=sql,
        columns=columns,
        by=by or "",
        said={"draft": "Saved as a draft", "active": "Saved and activated"}.get(said or ""),
        may_edit=user.may("editor"),
    )


@router.post("/segments/editor", response_class=HTMLResponse)
def editor_changed(
    request: Request, serving: ServedDep, user: PageEditor, posted: Posted
) -> HTMLResponse:
    """The builder as the form now stands (after the button pressed, if one was): htmx swaps
    it in, and its insights panel then loads."""
    blocks = form_codec.parse_form(posted)
    with serving.use(user) as ws:
        first = first_column(ws)
    if blocks["w"] is None:  # from SQL to the builder: one condition to start from
        blocks["w"] = form_codec.Node(
            type="group", children=[form_codec.Node(fields={"attribute": first})]
        )
    action = posted.get("action", "")
    if action:
        form_codec.apply_action(blocks, action, first)
    if posted.get("mode") == "sql" and not posted.get("sql", "").strip():
        posted = posted | {"sql": _sql_of_conditions(serving, user, posted)}
    return _builder(request, serving, user, posted, blocks)


def _sql_of_conditions(serving: Served, user: User, posted: dict[str, str]) -> str:
    """The SQL the conditions built so far compile to: where writing SQL starts from (blank
    when they do not compile yet)."""
    try:
        with serving.use(user) as ws:
            document = _document(ws, posted | {"mode": "builder"}, status="draft")
            segment = validate_data(document | {"name": "New segment"}).definition
            assert isinstance(segment, Segment)
            return ws.sql_of(segment)
    except AudienceError:
        return ""


@router.post("/segments/editor/insights", response_class=HTMLResponse)
def editor_insights(
    request: Request, serving: ServedDep, user: PageEditor, posted: Posted
) -> HTMLResponse:
    """The count and insights of the segment as edited (nothing is saved or recorded)."""
    try:
        with serving.use(user) as ws:
            document = _document(ws, posted, status="draft")
            document["name"] = document["name"] or "New segment"  # named when it is saved
            segment = validate_data(document, origin="the editor").definition
            assert isinstance(segment, Segment)
            insights = ws.insights_of(segment)
    except AudienceError as error:
        return render(request, "_insights.html", user, problem=_problem(error))
    return render(request, "_insights.html", user, insights=insights)


@router.post("/segments/save", response_class=HTMLResponse)
def save(request: Request, serving: ServedDep, user: PageEditor, posted: Posted) -> Response:
    """Save the segment as a draft or activate it (an editor's): then its page; otherwise the
    editor again, each error beside its field."""
    status = "active" if posted.get("status") == "active" else "draft"
    blocks = form_codec.parse_form(posted)
    try:
        with serving.use(user) as ws:
            document = _document(ws, posted, status=status)
            if posted.get("original"):  # what the builder does not show is kept as it was
                found, version = ws.segment(posted["original"])
                still_as_opened("segment", found.name, posted.get("version", ""), version)
                (stored,) = as_documents([found])
                try:
                    shown = _document(ws, _form_of(stored), status=status)
                except InvalidInput:  # the builder cannot show it at all: all is the form's
                    shown = {}
                document = keep_untouched(stored | {"status": status}, shown, document)
            ws.apply_documents([validate_data(document, origin="the editor")])
    except AudienceError as error:
        return _editor_page(
            request,
            serving,
            user,
            posted,
            blocks,
            posted.get("sql", ""),
            error=error,
        )
    name = str(document["name"])
    return RedirectResponse(f"/ui/segments/{named(name)}?said={status}", status_code=303)


def _document(ws: Workspace, posted: dict[str, str], *, status: str) -> dict[str, Any]:
    """The segment document the form describes (what `apply -f` would take)."""
    document: dict[str, Any] = {
        "kind": "segment",
        "name": posted.get("name", "").strip(),
        "description": posted.get("description", "").strip(),
        "status": status,
    }
    if posted.get("mode") == "sql":
        document["sql"] = posted.get("sql", "")
        return document
    profile = ws.catalog.columns(ws.settings.tables.profile)
    events = ws.catalog.tables.get(ws.settings.tables.events, {})
    conditions = form_codec.to_conditions(form_codec.parse_form(posted), profile, events)
    if "where" not in conditions:
        raise InvalidInput("add at least one condition", field="where")
    return document | conditions


def _form_of(document: dict[str, Any]) -> dict[str, str]:
    """The form the editor posts for a stored segment, as it opens it."""
    form = {"name": str(document["name"]), "description": str(document.get("description", ""))}
    if document.get("sql") is not None:
        return form | {"mode": "sql", "sql": str(document["sql"])}
    blocks, _ = form_codec.from_conditions(document.get("where"), document.get("exclude"))
    return form | {"mode": "builder"} | form_codec.to_form(blocks)


def _problem(error: AudienceError) -> dict[str, Any]:
    """What went wrong, and the form field it is about (`w.1.value`), said in the builder's
    words ("Include, condition 2: …")."""
    path = form_codec.form_path(getattr(error, "field", None))
    message = said_of(error)
    if path is not None:
        message = f"{form_codec.describe_path(path)}: {message}"
    return {"message": message, "field": path}


def _columns(kinds: Any) -> dict[str, str]:
    return {name: kind for name, kind in kinds.items() if kind != "other"}


def _operators(kind: str) -> list[tuple[str, str]]:
    allowed = OPERATORS_BY_KIND.get(kind, OPERATORS_BY_KIND["other"])  # type: ignore[call-overload]
    return [(op, OPERATOR_LABELS[op]) for op in OPERATOR_ORDER if op in allowed]


def condition_context(
    serving: Served,
    user: User,
    blocks: dict[str, form_codec.Node | None],
    builder_url: str = "/ui/segments/editor",
) -> dict[str, Any]:
    """What the condition builder's parts need: the columns and their operators, picklists of
    the columns in use, the segments, and where its buttons post."""
    with serving.use(user) as ws:
        tables = ws.settings.tables
        profile = _columns(ws.catalog.columns(tables.profile))
        events = _columns(ws.catalog.tables.get(tables.events, {}))
        segments = sorted(ws.segments())
        picklists = {
            (table, column): PICKLISTS.values(ws, table, column)
            for table, columns in ((tables.profile, profile), (tables.events, events))
            for column in _used(blocks, table == tables.profile)
            if columns.get(column) == "string" and column not in (tables.id, tables.order_id)
        }
    return {
        "builder_url": builder_url,
        "blocks": blocks,
        "profile": profile,
        "events": events,
        "profile_table": tables.profile,
        "events_table": tables.events,
        "segments": segments,
        "picklists": picklists,
        "operators": {kind: _operators(kind) for kind in {*profile.values(), *events.values()}},
        "relative_ops": RELATIVE_OPS,
    }


def _used(blocks: dict[str, form_codec.Node | None], profile: bool) -> set[str]:
    """The columns the tree uses (of the profile table, or of purchase filters)."""
    used: set[str] = set()
    stack = [node for node in blocks.values() if node is not None]
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        if node.type == ("attribute" if profile else "purchased") and node.get("attribute"):
            used.add(node.get("attribute"))
    return used


def _builder(
    request: Request,
    serving: Served,
    user: User,
    posted: dict[str, str],
    blocks: dict[str, form_codec.Node | None],
) -> HTMLResponse:
    return render(
        request,
        "_builder.html",
        user,
        form=posted,
        mode=posted.get("mode", "builder"),
        kept=form_codec.to_form(blocks),
        **condition_context(serving, user, blocks),
    )


def _editor_page(
    request: Request,
    serving: Served,
    user: User,
    identity: dict[str, str],
    blocks: dict[str, form_codec.Node | None],
    sql: str,
    *,
    unshown: list[str] | None = None,
    error: AudienceError | None = None,
) -> HTMLResponse:
    form = {"mode": "sql" if sql else "builder", **identity, "sql": sql}
    problem = _problem(error) if error is not None else None
    return render(
        request,
        "segment_editor.html",
        user,
        status_code=200 if error is None else status_of(error),
        form=form,
        mode=form["mode"],
        unshown=unshown or [],
        problem=problem,
        may_save=user.may("editor"),
        **condition_context(serving, user, blocks),
    )
