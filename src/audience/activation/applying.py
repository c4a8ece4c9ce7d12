"""Applying definitions: each document checked against the others, the store and the engine
(columns, references, read-only SQL, file names, the campaigns it would break), then all saved
as new versions — or nothing at all. The workspace's `apply` verbs call this; it lives here, not
in the façade, so that commands which only read the store never import the compiler and checks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from sqlglot import exp

from audience.activation.campaign import check_campaign
from audience.activation.files import check_runs_name_files_apart
from audience.activation.journey import check_edit, check_journey, move_stranded
from audience.activation.orchestration import check_orchestration
from audience.compile.catalog import column_kind
from audience.compile.conditions import CompileContext, parse_id_query, segment_ids
from audience.compile.readonly import read_only_query
from audience.definitions.campaign import Campaign, rejoin_names
from audience.definitions.destination import Destination
from audience.definitions.journey import Journey
from audience.definitions.kinds import Activation, Definition
from audience.definitions.loader import LoadedDocument
from audience.definitions.orchestration import Orchestration
from audience.definitions.segment import Segment
from audience.delivery.encryption import check_key
from audience.errors import DefinitionError, EngineError, InvalidValue

if TYPE_CHECKING:
    from audience.store.metadata import AppliedChange
    from audience.workspace import Workspace

D = TypeVar("D", Segment, Destination, Campaign)


def apply_documents(ws: Workspace, documents: Sequence[LoadedDocument]) -> list[AppliedChange]:
    """Validate the documents against each other, the store and the engine; then save.

    A name is given once, except that a segment may come as its active version followed by
    a draft edit of it (as `export` writes it): both are saved, in that order."""
    _refuse_repeats(documents)
    batch = [d.definition for d in documents if isinstance(d.definition, Segment)]
    segments = {**ws.segments(), **{s.name: s for s in batch if s.status == "active"}}
    drafts = (ws.draft_segments() | {s.name for s in batch}) - set(segments)
    destinations = {**ws.destinations(), **_of_kind(documents, Destination)}
    ctx = ws.compile_context(
        segments=segments, drafts=drafts, pending=[d.definition for d in documents]
    )
    checked: list[Definition] = []
    stranded: list[tuple[Journey, dict[str, int]]] = []
    for document in documents:
        definition = document.definition
        try:
            if isinstance(definition, Segment):
                check_segment(ws, definition, ctx)
            elif isinstance(definition, Destination):
                _check_default_attributes(definition, ctx)
                check_key(definition)
            elif isinstance(definition, Campaign):
                definition = _with_segment_names(definition, set(segments) | drafts)
                setting = ws.campaign_setting(ctx=ctx, destinations=destinations)
                check_campaign(definition, setting, ws.engine.dialect)
            elif isinstance(definition, Orchestration):
                setting = ws.campaign_setting(ctx=ctx, destinations=destinations)
                check_orchestration(definition, setting, ws.clock())
            elif isinstance(definition, Journey):
                definition = _with_journey_segment_names(definition, set(segments) | drafts)
                setting = ws.campaign_setting(ctx=ctx, destinations=destinations)
                check_journey(definition, setting, ws.engine.dialect)
                stranded.append((definition, check_edit(definition, ws.engine)))
            if isinstance(definition, Campaign | Orchestration | Journey):
                check_runs_name_files_apart(definition, destinations, ws.clock())
        except DefinitionError as exc:
            raise document.relocate(exc) from None
        checked.append(definition)
    _check_dependents(ws, checked, ctx, destinations, documents[0] if documents else None)
    changes = ws.store.save_definitions(((d.kind, d.name, _body(d)) for d in checked), ws.clock())
    for change in changes:
        if change.changed:
            ws.audit("apply", f"{change.kind}/{change.name}", {"version": change.version})
    for journey, at_removed_nodes in stranded:
        # they enter their new node now, or as of the journey's latest run when that was
        # simulated later (`tick --now`): the travel log and delays go forward in time
        ran = ws.store.runs.latest("journey", journey.name, succeeded=True)
        moment = max(ws.clock(), ran.scheduled_for) if ran is not None else ws.clock()
        move_stranded(journey, ws.engine, at_removed_nodes, moment)
    return changes


def check_activation(ws: Workspace, definition: Activation) -> None:
    """Check an activation against what it uses now (segments active, destinations and
    columns there, its query read-only), as applying it would."""
    if isinstance(definition, Orchestration):
        check_orchestration(definition, ws.campaign_setting(), ws.clock())
    elif isinstance(definition, Journey):
        check_journey(definition, ws.campaign_setting(), ws.engine.dialect)
    else:
        check_campaign(definition, ws.campaign_setting(), ws.engine.dialect)
    check_runs_name_files_apart(definition, ws.destinations(), ws.clock())


def _check_dependents(
    ws: Workspace,
    checked: Sequence[Definition],
    ctx: CompileContext,
    destinations: dict[str, Destination],
    first: LoadedDocument | None,
) -> None:
    """Refuse a change that would break a stored campaign it does not replace."""
    replaced = {d.name for d in checked if isinstance(d, Campaign)}
    setting = ws.campaign_setting(ctx=ctx, destinations=destinations)
    for stored in ws.store.definitions("campaign"):
        if stored.name in replaced:
            continue
        campaign = Campaign.model_validate(stored.body)
        try:
            check_campaign(campaign, setting, ws.engine.dialect)
        except DefinitionError as exc:
            if not _campaign_is_valid(ws, campaign):
                continue  # broken before this change (e.g. by a newer rule): not its doing
            raise DefinitionError(
                f"this change would break campaign {stored.name!r}: {exc}",
                where=first.locate(None) if first is not None else None,
            ) from None


def _campaign_is_valid(ws: Workspace, campaign: Campaign) -> bool:
    """Whether a stored campaign passes today's checks against the stored definitions."""
    try:
        check_campaign(campaign, ws.campaign_setting(), ws.engine.dialect)
    except DefinitionError:
        return False
    return True


def check_segment(ws: Workspace, segment: Segment, ctx: CompileContext) -> None:
    """Compile the segment (columns, operators, references); let the engine try its SQL."""
    members = segment_ids(segment, ctx)
    if segment.sql is not None:
        # Read-only and reading only the customer database, as orchestrations' queries.
        read_only_query(segment.sql, dialect=ws.engine.dialect, catalog=ctx.catalog, field="sql")
        # The query alone, not inside the segment's IN (…): there, a column its own tables
        # lack would silently mean the profile's column, and the segment everyone.
        alone = parse_id_query(segment.sql).limit(0)
        probe = exp.select(exp.Count(this=exp.Star())).from_(
            exp.alias_(exp.Subquery(this=alone), "probe", copy=False)
        )
        # Then as every use runs it: the customer id IN (the query). Only there does an id
        # column of another type fail, or (PostgreSQL) a LIMIT the probe above replaced.
        # LIMIT 0 plans it all and reads nothing.
        for planned in (probe, members.limit(0)):
            try:
                ws.engine.rows(planned)
            except EngineError as exc:
                raise InvalidValue(f"the engine rejected the query: {exc}", field="sql") from None
        _refuse_other_id_kind(ws, alone, ctx)


def _refuse_other_id_kind(ws: Workspace, alone: exp.Query, ctx: CompileContext) -> None:
    """Ids of another kind than the profile's never match it. DuckDB and PostgreSQL refuse to
    compare them; Spark converts one side and finds nobody, so ask every engine the same way."""
    tables = ctx.tables
    with ws.engine.stream(alone) as reader:
        found = column_kind(str(reader.schema.field(0).type))
    expected = ctx.catalog.kind(tables.profile, tables.id)
    if found != expected:
        raise InvalidValue(
            f"the query's customer ids are of kind {found}, but {tables.profile}.{tables.id} is "
            f"of kind {expected}: they would never match",
            field="sql",
        )


def _of_kind(documents: Iterable[LoadedDocument], kind: type[D]) -> dict[str, D]:
    return {d.definition.name: d.definition for d in documents if isinstance(d.definition, kind)}


def _refuse_repeats(documents: Sequence[LoadedDocument]) -> None:
    """Each kind and name once; a segment may come twice as its active version, then a draft."""
    seen: dict[tuple[str, str], list[LoadedDocument]] = {}
    for document in documents:
        definition = document.definition
        earlier = seen.setdefault((definition.kind, definition.name), [])
        if earlier and not (
            len(earlier) == 1 and _is_draft_edit(earlier[0].definition, definition)
        ):
            pairing = (
                "; a segment may come twice only as its active version, then a draft edit of it"
                if isinstance(definition, Segment)
                else ""
            )
            raise DefinitionError(
                f"{definition.kind} {definition.name!r} is defined twice "
                f"(first at {earlier[0].locate('name')}){pairing}",
                where=document.locate("name"),
                field="name",
            )
        earlier.append(document)


def _is_draft_edit(first: Definition, second: Definition) -> bool:
    return (
        isinstance(first, Segment)
        and isinstance(second, Segment)
        and first.status == "active"
        and second.status == "draft"
    )


def _check_default_attributes(destination: Destination, ctx: CompileContext) -> None:
    """Each default attribute is a real column of its table (the source table by default)."""
    for index, attribute in enumerate(destination.default_attributes):
        source, table_name = (
            (attribute, None) if isinstance(attribute, str) else (attribute.source, attribute.table)
        )
        ctx.catalog.kind(
            table_name or ctx.tables.source, source, field_path=f"default_attributes.{index}"
        )


def _with_segment_names(campaign: Campaign, known: set[str]) -> Campaign:
    """The campaign with include/exclude names rejoined where YAML split them at a comma."""
    audience = campaign.audience.model_copy(
        update={
            "include": rejoin_names(campaign.audience.include, known),
            "exclude": rejoin_names(campaign.audience.exclude, known),
        }
    )
    return campaign.model_copy(update={"audience": audience})


def _with_journey_segment_names(journey: Journey, known: set[str]) -> Journey:
    """The journey with its segment lists rejoined where YAML split a name at a comma."""
    return journey.model_copy(
        update={
            field: rejoin_names(getattr(journey, field), known)
            for field in ("include", "exclude", "exit", "goals")
        }
    )


def _body(definition: Definition) -> dict[str, Any]:
    return definition.model_dump(mode="json", by_alias=True, exclude_defaults=True)
