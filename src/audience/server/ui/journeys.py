"""A journey in the browser: its canvas — the graph of nodes laid out by ELK (elkjs, from the
npm registry) and drawn with the customers at each node now and in all, and on each path out
of a split — with each node's details a click away, and the journey as YAML to edit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from audience.definitions.journey import Journey
from audience.definitions.loader import as_documents, dump_documents, validate_data
from audience.errors import AudienceError, InvalidInput
from audience.server.app import Served, ServedDep
from audience.server.errors import status_of
from audience.server.ui import journey_form
from audience.server.ui.pages import (
    PageEditor,
    PageUser,
    Posted,
    error_page,
    named,
    one_document,
    render,
    said_of,
)
from audience.store.accounts import User

router = APIRouter(prefix="/ui")

START, END = "start", "end"


@router.get("/new/journey", response_class=HTMLResponse)
def new_journey(request: Request, serving: ServedDep, user: PageEditor) -> HTMLResponse:
    """A journey to start from: who enters, how often it runs, and its first send."""
    return _new(request, serving, user, {})


@router.post("/new/journey", response_class=HTMLResponse)
def create_journey(
    request: Request, serving: ServedDep, user: PageEditor, posted: Posted
) -> Response:
    """Save the new journey as a draft (an editor's); then its canvas, to add its nodes."""
    form = posted
    name = form.get("name", "").strip()
    document: dict[str, Any] = {
        "kind": "journey",
        "name": name,
        "include": _checked(form, "include."),
        "schedule": {"every": {"value": form.get("every", "1"), "unit": form.get("unit", "days")}},
        "nodes": [
            {
                "name": form.get("first", "").strip(),
                "type": "activate",
                "destinations": _checked(form, "destination."),
            }
        ],
    }
    try:
        with serving.use(user) as ws:
            ws.apply_documents([validate_data(document, origin="the form")])
    except AudienceError as error:
        return _new(request, serving, user, form, error=error)
    return RedirectResponse(f"/ui/journeys/{named(name)}/canvas?said=saved", status_code=303)


def _checked(form: dict[str, str], prefix: str) -> list[str]:
    return [value for key, value in sorted(form.items()) if key.startswith(prefix)]


def _new(
    request: Request,
    serving: Served,
    user: User,
    form: dict[str, str],
    *,
    error: AudienceError | None = None,
) -> HTMLResponse:
    with serving.use(user) as ws:
        segments, destinations = sorted(ws.segments()), sorted(ws.destinations())
    message = None
    if error is not None:
        message = said_of(error)
    return render(
        request,
        "journey_new.html",
        user,
        status_code=200 if error is None else status_of(error),
        form=form,
        segments=segments,
        destinations=destinations,
        error=message,
    )


@router.get("/journeys/{name:path}/canvas", response_class=HTMLResponse)
def canvas(
    request: Request, name: str, serving: ServedDep, user: PageUser, said: str | None = None
) -> HTMLResponse:
    """The journey drawn as a graph, with its counts."""
    return _canvas(request, serving, user, name, said="Saved" if said == "saved" else None)


@router.post("/journeys/{name:path}/nodes", response_class=HTMLResponse)
def add_node(
    request: Request, name: str, serving: ServedDep, user: PageEditor, posted: Posted
) -> Response:
    """Add a node after another (an editor's)."""
    form = posted
    return _edited(request, serving, user, name, lambda d: journey_form.add_node(d, form))


@router.post("/journeys/{name:path}/nodes/{node:path}/change", response_class=HTMLResponse)
def change_node(
    request: Request, name: str, node: str, serving: ServedDep, user: PageEditor, posted: Posted
) -> Response:
    """Change where a node leads, or what it sends to or waits (an editor's)."""
    form = posted
    return _edited(request, serving, user, name, lambda d: journey_form.change_node(d, node, form))


@router.post("/journeys/{name:path}/nodes/{node:path}/remove", response_class=HTMLResponse)
def remove_node(
    request: Request, name: str, node: str, serving: ServedDep, user: PageEditor
) -> Response:
    """Remove a node (an editor's): what led to it leads on, and customers there move on."""
    with serving.use(user) as ws:
        waiting = {n.node: n.now for n in ws.journey_counts(name).nodes}.get(node, 0)
    return _edited(
        request,
        serving,
        user,
        name,
        lambda d: journey_form.remove_node(d, node, occupied=waiting > 0),
    )


def _edited(
    request: Request,
    serving: Served,
    user: User,
    name: str,
    edit: Callable[[dict[str, Any]], dict[str, Any]],
) -> Response:
    """Apply the journey as `edit` changes its document; the canvas again, with the error
    beside the forms when the definitions refuse it."""
    try:
        with serving.use(user) as ws:
            (document,) = as_documents([ws.journey(name)])
            document = edit(document)
            ws.apply_documents([validate_data(document, origin="the canvas")])
    except KeyError as missing:
        error: AudienceError = InvalidInput(f"no node is called {missing}", field="node")
        return _canvas(request, serving, user, name, error=error)
    except AudienceError as refused:
        return _canvas(request, serving, user, name, error=refused)
    return RedirectResponse(f"/ui/journeys/{named(name)}/canvas?said=saved", status_code=303)


@router.post("/journeys/{name:path}/save", response_class=HTMLResponse)
def save(
    request: Request, name: str, serving: ServedDep, user: PageEditor, posted: Posted
) -> Response:
    """Apply the journey as edited (an editor's): nodes added, removed or connected."""
    text = posted.get("document", "")
    try:
        documents = one_document(text, "journey", name)
        with serving.use(user) as ws:
            ws.apply_documents(documents)
    except AudienceError as error:
        return _canvas(request, serving, user, name, error=error, document=text)
    return RedirectResponse(f"/ui/journeys/{named(name)}/canvas?said=saved", status_code=303)


def graph(
    journey: Journey, counts: dict[str, tuple[int, int]], paths: dict[str, int]
) -> dict[str, Any]:
    """Nodes and edges for the canvas: every node with its counts (now, entered), a start, and
    an end wherever a path ends; each edge with its label and, out of a split, how many took
    it (`paths`, by the path's name, where no other split has a path of that name)."""
    nodes: list[dict[str, Any]] = [{"id": START, "label": "Start", "type": "start"}]
    edges: list[dict[str, Any]] = []
    first = journey.in_order()[0].name
    edges.append({"source": START, "target": first, "label": None, "control": False})
    labels = [p.name for n in journey.nodes for p in n.paths]
    ends = 0
    for node in journey.nodes:
        now, entered = counts.get(node.name, (0, 0))
        nodes.append(
            {"id": node.name, "label": node.name, "type": node.type, "now": now, "entered": entered}
        )
        for edge in journey.edges(node.name):
            target = edge.target
            if target is None:
                ends += 1
                target = f"{END}-{ends}"
                nodes.append({"id": target, "label": "End", "type": "end"})
            taken = None
            if node.paths and edge.label is not None and labels.count(edge.label) == 1:
                taken = paths.get(edge.label, 0)
            edges.append(
                {
                    "source": node.name,
                    "target": target,
                    "label": edge.label,
                    "control": edge.control,
                    "taken": taken,
                }
            )
    return {"nodes": nodes, "edges": edges}


def _canvas(
    request: Request,
    serving: Served,
    user: User,
    name: str,
    *,
    said: str | None = None,
    error: AudienceError | None = None,
    document: str | None = None,
) -> HTMLResponse:
    try:
        with serving.use(user) as ws:
            journey = ws.journey(name)
            counted = ws.journey_counts(name)
    except AudienceError as missing:
        return error_page(request, missing, user)
    counts = {n.node: (n.now, n.entered) for n in counted.nodes}
    with serving.use(user) as ws:
        destinations = sorted(ws.destinations())
    message = None
    if error is not None:
        message = said_of(error)
    return render(
        request,
        "journey.html",
        user,
        status_code=200 if error is None else status_of(error),
        journey=journey,
        counts=counted,
        graph=graph(journey, counts, counted.paths),
        destinations=destinations,
        new_node_types=journey_form.NEW_NODE_TYPES,
        document=document if document is not None else dump_documents([journey]),
        said=said,
        error=message,
    )
