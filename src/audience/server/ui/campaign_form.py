"""The campaign builder's form, both ways: the flat fields a browser posts ↔ a campaign document
(SPEC Appendix A), in the order a marketer fills them in.

Fields: `name`, `description`; the audience as checkboxes `include.I` / `exclude.I` holding a
segment's name; sub-audiences `a.N` with `a.N.name`, `a.N.criteria` (everyone left, a
segment, or conditions built like a segment's at `a.N.w`), `a.N.segment`, `a.N.control` and
treatments `a.N.t.M` (`.name`, `.percent`, destinations as checkboxes `.d.K`); attributes per
destination `attr.D` (`.destination`, rows `.R.source|as|table|required`); `files`; the
schedule `schedule.*`; `launch_date`. One sub-audience for everyone is written as a campaign
without sub-audiences (top-level treatments and control), as in the SPEC's examples.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from audience.server.ui import condition_form
from audience.server.ui.condition_form import Kinds, Node


@dataclass
class TreatmentRow:
    """A treatment group as the form holds it."""

    name: str = ""
    percent: str = ""
    destinations: list[str] = field(default_factory=list)


@dataclass
class SubAudienceRow:
    """A sub-audience as the form holds it."""

    name: str = "Everyone"
    criteria: str = "everyone"
    """everyone (all remaining recipients), segment, or conditions."""
    segment: str = ""
    conditions: Node | None = None
    control: str = "10"
    treatments: list[TreatmentRow] = field(default_factory=list)

    def total(self) -> float | None:
        """The treatments' and control's percentages added up (None while one is not a
        number)."""
        try:
            total = sum(float(t.percent) for t in self.treatments) + float(self.control or 0)
        except ValueError:
            return None
        return round(total, 6)  # 99.8 + 0.1 + 0.1 is 100 here, as the definitions count it


@dataclass
class AttributeRow:
    """One attribute sent to a destination."""

    source: str = ""
    as_: str = ""
    table: str = ""
    required: bool = False


@dataclass
class CampaignForm:
    """The whole builder."""

    name: str = ""
    description: str = ""
    original: str = ""
    version: str = ""
    """The version the builder opened (a later one saved meanwhile is not overwritten)."""
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    match: str = "first"
    sub_audiences: list[SubAudienceRow] = field(default_factory=list)
    attributes: dict[str, list[AttributeRow]] = field(default_factory=dict)
    """Per destination sent to; a destination not here sends its default attributes."""
    files: str = "per_treatment"
    schedule: dict[str, str] = field(default_factory=lambda: {"kind": "asap"})
    launch_date: str = ""

    def destinations(self) -> list[str]:
        """The destinations the treatments send to, in order of first use."""
        seen: dict[str, None] = {}
        for sub in self.sub_audiences:
            for treatment in sub.treatments:
                seen.update(dict.fromkeys(treatment.destinations))
        return list(seen)

    def condition_roots(self) -> dict[str, Node | None]:
        """Each sub-audience's conditions, by the path the condition builder uses."""
        return {f"a.{n}.w": sub.conditions for n, sub in enumerate(self.sub_audiences)}


def new_form(destination: str | None) -> CampaignForm:
    """A campaign to start from: everyone in one treatment of 90 % and a 10 % control."""
    treatment = TreatmentRow("Treatment", "90", [destination] if destination else [])
    return CampaignForm(sub_audiences=[SubAudienceRow(treatments=[treatment])])


# The form → the builder --------------------------------------------------------------------


def parse_form(form: Mapping[str, str]) -> CampaignForm:
    """The builder a posted form describes."""
    parsed = CampaignForm(
        name=form.get("name", "").strip(),
        description=form.get("description", "").strip(),
        original=form.get("original", ""),
        version=form.get("version", ""),
        include=_checked(form, "include"),
        exclude=_checked(form, "exclude"),
        match=form.get("match", "first"),
        files=form.get("files", "per_treatment"),
        launch_date=form.get("launch_date", ""),
        schedule={k[len("schedule.") :]: v for k, v in form.items() if k.startswith("schedule.")},
    )
    for n in _indexes(form, "a", "name"):
        prefix = f"a.{n}"
        parsed.sub_audiences.append(
            SubAudienceRow(
                name=form.get(f"{prefix}.name", ""),
                criteria=form.get(f"{prefix}.criteria", "everyone"),
                segment=form.get(f"{prefix}.segment", ""),
                conditions=condition_form.parse_group(form, f"{prefix}.w"),
                control=form.get(f"{prefix}.control", "0"),
                treatments=[
                    TreatmentRow(
                        name=form.get(f"{prefix}.t.{m}.name", ""),
                        percent=form.get(f"{prefix}.t.{m}.percent", ""),
                        destinations=_checked(form, f"{prefix}.t.{m}.d"),
                    )
                    for m in _indexes(form, f"{prefix}.t", "name")
                ],
            )
        )
    for d in _indexes(form, "attr", "destination"):
        prefix = f"attr.{d}"
        parsed.attributes[form[f"{prefix}.destination"]] = [
            AttributeRow(
                source=form.get(f"{prefix}.{r}.source", ""),
                as_=form.get(f"{prefix}.{r}.as", "").strip(),
                table=form.get(f"{prefix}.{r}.table", ""),
                required=form.get(f"{prefix}.{r}.required") == "on",
            )
            for r in _indexes(form, prefix, "source")
        ]
    return parsed


def _indexes(form: Mapping[str, str], prefix: str, leaf: str) -> list[int]:
    pattern = re.compile(re.escape(prefix) + r"\.(\d+)\." + re.escape(leaf))
    return sorted({int(found[1]) for key in form if (found := pattern.fullmatch(key))})


def _checked(form: Mapping[str, str], prefix: str) -> list[str]:
    pattern = re.compile(re.escape(prefix) + r"\.(\d+)")
    found = sorted(
        (int(match[1]), value) for key, value in form.items() if (match := pattern.fullmatch(key))
    )
    return [value for _, value in found]


def apply_action(
    built: CampaignForm, action: str, first_column: str, defaults: Mapping[str, Sequence[Any]]
) -> None:
    """Change the builder as a button asks (sub-audiences, treatments, attribute rows, or the
    conditions of a sub-audience: those actions are the condition builder's)."""
    verb, _, where = action.partition(":")
    numbers = [int(part) for part in where.split(".") if part.isdigit()]
    subs = built.sub_audiences
    if verb == "add-sub":
        subs.insert(
            max(len(subs) - 1, 0) if subs and subs[-1].criteria == "everyone" else len(subs),
            SubAudienceRow(
                name=f"Sub-audience {len(subs) + 1}",
                criteria="conditions",
                conditions=Node(type="group", children=[Node(fields={"attribute": first_column})]),
                treatments=[TreatmentRow("Treatment", "90", built.destinations()[:1])],
            ),
        )
    elif verb == "remove-sub" and numbers and numbers[0] < len(subs) and len(subs) > 1:
        del subs[numbers[0]]
    elif verb == "add-treatment" and numbers and numbers[0] < len(subs):
        treatments = subs[numbers[0]].treatments
        treatments.append(
            TreatmentRow(f"Treatment {len(treatments) + 1}", "0", built.destinations()[:1])
        )
    elif verb == "remove-treatment" and len(numbers) == 2 and numbers[0] < len(subs):
        treatments = subs[numbers[0]].treatments
        if numbers[1] < len(treatments) and len(treatments) > 1:
            del treatments[numbers[1]]
    elif verb in ("add-attr", "remove-attr", "reset-attrs"):
        _change_attributes(built, verb, where, defaults)
    elif verb in ("add", "group", "segment", "purchase", "remove"):
        roots = built.condition_roots()
        condition_form.apply_action(roots, action, first_column)


def _change_attributes(
    built: CampaignForm, verb: str, where: str, defaults: Mapping[str, Sequence[Any]]
) -> None:
    destination, _, row = where.rpartition("|") if verb == "remove-attr" else (where, "", "")
    rows = built.attributes.setdefault(destination, rows_of(defaults.get(destination, ())))
    if verb == "add-attr":
        rows.append(AttributeRow())
    elif verb == "remove-attr" and row.isdigit() and int(row) < len(rows):
        del rows[int(row)]
    elif verb == "reset-attrs":
        del built.attributes[destination]


# The builder → a document ------------------------------------------------------------------


def to_document(
    built: CampaignForm, profile: Kinds, events: Kinds, defaults: Mapping[str, Sequence[Any]]
) -> dict[str, Any]:
    """The campaign document the builder describes (what `apply -f` would take); values stay as
    typed where they do not read, for the definition's checks to name."""
    document: dict[str, Any] = {
        "kind": "campaign",
        "name": built.name,
        "audience": {"include": built.include, "exclude": built.exclude},
    }
    if built.description:
        document["description"] = built.description
    subs = built.sub_audiences
    if len(subs) == 1 and subs[0].criteria == "everyone":
        document |= _groups(subs[0])
    else:
        document["sub_audiences"] = [_sub_audience(sub, profile, events) for sub in subs]
        if built.match == "every":
            document["match"] = "every"
    attributes = {
        destination: [document_of(row) for row in rows if row.source]
        for destination, rows in built.attributes.items()
        if destination in built.destinations()
        and [document_of(row) for row in rows] != list(defaults.get(destination, ()))
    }
    if attributes:
        document["attributes"] = attributes
    if built.files == "single":
        document["files"] = "single"
    document["schedule"] = schedule_document(built.schedule)
    if built.launch_date:
        document["launch_date"] = built.launch_date
    return document


def _groups(sub: SubAudienceRow) -> dict[str, Any]:
    return {
        "treatments": [
            {"name": t.name, "percent": _number(t.percent), "destinations": t.destinations}
            for t in sub.treatments
        ],
        "control": _number(sub.control or "0"),
    }


def _sub_audience(sub: SubAudienceRow, profile: Kinds, events: Kinds) -> dict[str, Any]:
    document: dict[str, Any] = {"name": sub.name}
    if sub.criteria == "segment":
        document["segment"] = sub.segment
    elif sub.criteria == "conditions" and sub.conditions is not None and sub.conditions.children:
        document["where"] = condition_form.condition_of(sub.conditions, profile, events)
    return document | _groups(sub)


def document_of(row: AttributeRow) -> Any:
    """An attribute row as documents write it: its name, or `{source, as, table, required}`."""
    if not (row.as_ or row.table or row.required):
        return row.source
    attribute: dict[str, Any] = {"source": row.source}
    if row.as_:
        attribute["as"] = row.as_
    if row.table:
        attribute["table"] = row.table
    if row.required:
        attribute["required"] = True
    return attribute


def _moment(local: str, zone: str) -> str:
    """A browser's local date and time (`2026-12-24T09:00`) in a time zone, as ISO 8601 with
    its offset (left as typed when it does not read, for the schedule's check to name)."""
    try:
        return datetime.fromisoformat(local).replace(tzinfo=ZoneInfo(zone)).isoformat()
    except (ValueError, ZoneInfoNotFoundError):
        return local


def _number(text: str) -> Any:
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if number.is_integer() else number


def schedule_document(fields: Mapping[str, str]) -> dict[str, Any]:
    """The `schedule:` the schedule fields describe."""
    kind = fields.get("kind", "asap")
    if kind == "at":
        return {"once": _moment(fields.get("at", ""), fields.get("timezone") or "UTC")}
    if kind != "recurring":
        return {"once": "asap"}
    recurring: dict[str, Any] = {"timezone": fields.get("timezone") or "UTC"}
    if fields.get("every") == "cron":
        recurring["cron"] = fields.get("cron", "")
    else:
        recurring["every"] = fields.get("every") or "day"
        recurring["at"] = fields.get("time") or "06:00"
        if recurring["every"] != "day" and fields.get("on"):
            recurring["on"] = _number(fields["on"])
    if fields.get("start"):
        recurring["start"] = fields["start"]
    if fields.get("end") == "on" and fields.get("end_on"):
        recurring["end"] = {"on": fields["end_on"]}
    elif fields.get("end") == "after" and fields.get("end_after"):
        recurring["end"] = {"after": _number(fields["end_after"])}
    return {"recurring": recurring}


# A document → the builder ------------------------------------------------------------------


def from_document(document: Mapping[str, Any]) -> tuple[CampaignForm, list[str]]:
    """The builder for a stored campaign, and what it cannot show (edited as YAML)."""
    unshown: list[str] = []
    audience = document.get("audience", {})
    built = CampaignForm(
        name=str(document.get("name", "")),
        description=str(document.get("description", "")),
        original=str(document.get("name", "")),
        include=list(audience.get("include", [])),
        exclude=list(audience.get("exclude", [])),
        match=str(document.get("match", "first")),
        files=str(document.get("files", "per_treatment")),
        launch_date=str(document.get("launch_date", "") or ""),
        schedule=schedule_fields(document.get("schedule", {"once": "asap"}), unshown),
    )
    subs = document.get("sub_audiences") or [
        {"name": "Everyone", "treatments": document.get("treatments", [])}
        | {"control": document.get("control", 0)}
    ]
    for sub in subs:
        criteria = "segment" if sub.get("segment") else "conditions" if sub.get("where") else ""
        built.sub_audiences.append(
            SubAudienceRow(
                name=str(sub.get("name", "")),
                criteria=criteria or "everyone",
                segment=str(sub.get("segment", "") or ""),
                conditions=condition_form.group_of(sub.get("where"), unshown),
                control=str(sub.get("control", 0)),
                treatments=[
                    TreatmentRow(str(t["name"]), str(t["percent"]), list(t["destinations"]))
                    for t in sub.get("treatments", [])
                ],
            )
        )
    for destination, rows in (document.get("attributes") or {}).items():
        built.attributes[destination] = rows_of(rows)
    return built, unshown


def rows_of(attributes: Sequence[Any]) -> list[AttributeRow]:
    """Attribute rows for attributes as documents write them (a name, or `{source, as, …}`)."""
    return [
        AttributeRow(source=item)
        if isinstance(item, str)
        else AttributeRow(
            source=str(item.get("source", "")),
            as_=str(item.get("as", "") or ""),
            table=str(item.get("table", "") or ""),
            required=bool(item.get("required", False)),
        )
        for item in attributes
    ]


def schedule_fields(schedule: Mapping[str, Any], unshown: list[str]) -> dict[str, str]:
    """The schedule fields for a `schedule:` document (what they cannot show goes to `unshown`)."""
    once = schedule.get("once")
    if once is not None:
        if once == "asap":
            return {"kind": "asap"}
        moment = datetime.fromisoformat(str(once))
        zone = str(moment.tzinfo) if isinstance(moment.tzinfo, ZoneInfo) else "UTC"
        local = moment.astimezone(ZoneInfo(zone)) if moment.tzinfo else moment
        return {"kind": "at", "at": local.strftime("%Y-%m-%dT%H:%M"), "timezone": zone}
    recurring = schedule.get("recurring")
    if recurring is None:
        unshown.append("a schedule by interval or after another activation")
        return {"kind": "asap"}
    fields = {"kind": "recurring", "timezone": str(recurring.get("timezone", "UTC"))}
    if recurring.get("cron"):
        fields |= {"every": "cron", "cron": str(recurring["cron"])}
    else:
        fields |= {
            "every": str(recurring.get("every", "day")),
            "time": str(recurring.get("at", "")),
        }
        if recurring.get("on") is not None:
            fields["on"] = str(recurring["on"])
    if recurring.get("start"):
        fields["start"] = str(recurring["start"])
    end = recurring.get("end") or {}
    if end.get("on"):
        fields |= {"end": "on", "end_on": str(end["on"])}
    elif end.get("after"):
        fields |= {"end": "after", "end_after": str(end["after"])}
    return fields


# Errors → fields ---------------------------------------------------------------------------


def form_path(field_path: str | None) -> str | None:
    """The form field a definition error's field path names (`sub_audiences.1.treatments.0.
    percent` → `a.1.t.0.percent`), or None when none of the builder's."""
    if not field_path:
        return None
    parts = field_path.split(".")
    head = parts[0]
    if head in ("name", "description", "launch_date", "files", "schedule"):
        return head
    if head == "audience":
        return "audience"
    if head in ("treatments", "control"):
        parts = ["sub_audiences", "0", *parts]
    if parts[0] == "sub_audiences" and len(parts) > 1:
        sub = f"a.{parts[1]}"
        rest = parts[2:]
        if rest[:1] == ["where"]:
            inner = condition_form.form_path(".".join(["where", *rest[1:]]))
            return None if inner is None else f"{sub}.{inner}"  # `w…` under the sub-audience
        if rest[:1] == ["treatments"] and len(rest) > 1:
            return f"{sub}.t.{rest[1]}" + (f".{rest[2]}" if len(rest) > 2 else "")
        return f"{sub}.{rest[0]}" if rest else sub
    if head == "attributes":
        return "attributes"
    return None
