"""Definitions: apply documents (the YAML shapes of SPEC Appendix A, as JSON) and read them."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query
from pydantic import JsonValue

from audience.definitions.loader import as_documents, validate_data
from audience.errors import DefinitionError, NotAllowed, NotFound
from audience.server.app import Editor, ServedDep, Viewer
from audience.shapes import Shape
from audience.store.accounts import role_to_apply
from audience.store.metadata import AppliedChange

router = APIRouter(prefix="/definitions", tags=["definitions"])

_DOCUMENT = re.compile(r"^document (\d+):")


class DefinitionShape(Shape):
    """One definition's current version and its document as applied."""

    kind: str
    name: str
    version: int
    body: dict[str, JsonValue]
    """The document as written (SPEC Appendix A), `${VAR}` references unresolved: its shape
    is its kind's."""


@router.post("")
def apply(
    documents: Annotated[
        list[dict[str, Any]],
        Body(description="Documents as `audience apply -f` takes them, as a JSON list."),
    ],
    serving: ServedDep,
    user: Editor,
) -> list[AppliedChange]:
    """Validate every document against the others, the store and the engine, then save them
    all — or none (`apply --json`). A bad one is a 422 naming its index and field."""
    loaded = []
    for index, data in enumerate(documents):
        try:
            loaded.append(validate_data(data, origin=f"document {index}"))
        except DefinitionError as error:
            error.field = f"{index}.{error.field}" if error.field else str(index)
            raise
        role = role_to_apply(loaded[-1].definition.kind)
        if not user.may(role):
            raise NotAllowed(f"applying a {loaded[-1].definition.kind} needs the {role} role")
    with serving.use(user) as ws:
        try:
            changes = ws.apply_documents(loaded)
        except DefinitionError as error:
            # Checked against the others and the engine: the error says which document.
            found = _DOCUMENT.match(error.where or "")
            if found and not (error.field or "").startswith(f"{found[1]}."):
                error.field = f"{found[1]}.{error.field}" if error.field else found[1]
            raise
    return changes


@router.get("")
def export(
    serving: ServedDep,
    user: Viewer,
    kind: Annotated[
        Literal["segment", "campaign", "journey", "orchestration", "destination"] | None,
        Query(description="Only definitions of this kind."),
    ] = None,
) -> list[dict[str, Any]]:
    """Every current definition as the documents `POST /definitions` takes back unchanged, each
    after those it uses (`audience export`, as JSON); segments with a newer draft edit come
    twice, active version first."""
    with serving.use(user) as ws:
        exported = ws.exported()
    return as_documents(d for d in exported if kind is None or d.kind == kind)


@router.get("/{kind}/{name:path}")
def definition(kind: str, name: str, serving: ServedDep, user: Viewer) -> DefinitionShape:
    """The current version of one definition, as applied (`${VAR}` references as written)."""
    with serving.use(user) as ws:
        stored = ws.store.definition(kind, name)
    if stored is None:
        raise NotFound(f"{kind} {name!r} does not exist")
    return DefinitionShape(kind=kind, name=name, version=stored.version, body=stored.body)
