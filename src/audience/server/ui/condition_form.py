"""The condition builder's form, both ways: the flat fields a browser posts ↔ a segment's
condition tree (the `where` and `exclude` of SPEC Appendix A).

A group at path `P` posts `P.match` (all or any) and its conditions `P.0`, `P.1`, …; a condition
at `C` posts `C.type` and its own fields: `C.attribute`, `C.op`, `C.value` (`C.value2` for
between, `C.unit` for relative dates); `C.segment`; or, for a purchase, `C.within`, `C.unit`,
`C.measure` (orders or revenue), `C.op`, `C.value` and an optional filter `C.attribute`,
`C.filter_op`, `C.filter_value` on the event table. The include block is `w`, the exclude block
`x`. Values stay as typed until they become a document, where they take the column's kind; the
definitions then check them like any YAML (the errors name fields, which `form_path` maps back).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from audience.definitions.conditions import (
    LIST_OPS,
    MAX_DEPTH,
    NO_VALUE_OPS,
    PAIR_OPS,
    RELATIVE_OPS,
)
from audience.errors import NestingTooDeep

Kinds = Mapping[str, str]
"""A table's columns → their kind (number, string, boolean, date, timestamp, other)."""

BLOCKS = {"w": "where", "x": "exclude"}
OWN_FIELDS = {"name": "Name", "description": "Description", "sql": "SQL"}
"""The segment's fields beside its conditions, as the editor labels them."""


@dataclass
class Node:
    """One row of the builder: a group, an attribute test, a segment, or a purchase."""

    type: str = "attribute"
    match: str = "all"
    children: list[Node] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)

    def get(self, name: str, default: str = "") -> str:
        """A field as typed (`default` when absent)."""
        return self.fields.get(name, default)


# The form → the tree ------------------------------------------------------------------------


def parse_form(form: Mapping[str, str]) -> dict[str, Node | None]:
    """The include and exclude blocks a posted form describes (None for a block not there)."""
    return {block: parse_group(form, block) for block in BLOCKS}


def parse_group(form: Mapping[str, str], path: str) -> Node | None:
    """The condition group posted at `path` (a segment's `w`, a sub-audience's `a.0.w`), or
    None when the form has none there."""
    return _group(form, path) if f"{path}.match" in form else None


def _group(form: Mapping[str, str], path: str, depth: int = 0) -> Node:
    if depth > MAX_DEPTH:  # before the definitions' own check: parsing recurses
        raise NestingTooDeep(f"conditions nest at most {MAX_DEPTH} deep", field="where")
    node = Node(type="group", match=form.get(f"{path}.match", "all"))
    indexes = sorted(
        {
            int(found[1])
            for key in form
            if (found := re.fullmatch(re.escape(path) + r"\.(\d+)\.type", key))
        }
    )
    for index in indexes:
        child = f"{path}.{index}"
        kind = form.get(f"{child}.type", "attribute")
        if kind == "group":
            node.children.append(_group(form, child, depth + 1))
        else:
            prefix = f"{child}."
            own = {
                key[len(prefix) :]: value
                for key, value in form.items()
                if key.startswith(prefix) and "." not in key[len(prefix) :]
            }
            node.children.append(Node(type=kind, fields=own))
    return node


def apply_action(blocks: dict[str, Node | None], action: str, first_column: str) -> None:
    """Change the trees as a builder button asks: `add:P`, `group:P`, `segment:P`,
    `purchase:P` append to the group at P; `remove:C` takes out the row at C; `exclude` starts
    the exclude block. `blocks` holds each tree by its root's path."""
    verb, _, path = action.partition(":")
    if verb == "exclude":
        if blocks.get("x") is None:
            blocks["x"] = Node(type="group", match="any", children=[_new_condition(first_column)])
        return
    if verb == "remove":
        parent_path, _, index = path.rpartition(".")
        parent = _find(blocks, parent_path)
        if parent is not None and index.isdigit() and int(index) < len(parent.children):
            del parent.children[int(index)]
        if parent_path == "x" and parent is not None and not parent.children:
            blocks["x"] = None
        return
    group = _find(blocks, path)
    if group is None or group.type != "group":
        return
    if verb == "add":
        group.children.append(_new_condition(first_column))
    elif verb == "group":
        group.children.append(
            Node(type="group", match="any", children=[_new_condition(first_column)])
        )
    elif verb == "segment":
        group.children.append(Node(type="in_segment"))
    elif verb == "purchase":
        group.children.append(
            Node(
                type="purchased",
                fields={
                    "within": "90",
                    "unit": "days",
                    "measure": "orders",
                    "op": ">=",
                    "value": "1",
                },
            )
        )


def _new_condition(column: str) -> Node:
    return Node(type="attribute", fields={"attribute": column})


def _find(blocks: dict[str, Node | None], path: str) -> Node | None:
    root = max(
        (key for key in blocks if path == key or path.startswith(key + ".")), key=len, default=None
    )
    if root is None:
        return None
    node = blocks[root]
    for part in path[len(root) :].split(".")[1:]:
        if node is None or not part.isdigit() or int(part) >= len(node.children):
            return None
        node = node.children[int(part)]
    return node


def to_form(blocks: Mapping[str, Node | None]) -> dict[str, str]:
    """The flat fields the builder posts for these trees (what `parse_form` reads back)."""
    fields: dict[str, str] = {}

    def put(node: Node, path: str) -> None:
        fields[f"{path}.match"] = node.match
        for index, child in enumerate(node.children):
            at = f"{path}.{index}"
            fields[f"{at}.type"] = child.type
            if child.type == "group":
                put(child, at)
            else:
                fields.update({f"{at}.{key}": value for key, value in child.fields.items()})

    for root, node in blocks.items():
        if node is not None:
            put(node, root)
    return fields


# The tree → a document ---------------------------------------------------------------------


def to_conditions(blocks: dict[str, Node | None], profile: Kinds, events: Kinds) -> dict[str, Any]:
    """The segment's `where` and `exclude` (what is there), with values in their columns'
    kinds."""
    document: dict[str, Any] = {}
    for block, name in BLOCKS.items():
        node = blocks.get(block)
        if node is not None and node.children:
            document[name] = condition_of(node, profile, events)
    return document


def condition_of(node: Node, profile: Kinds, events: Kinds) -> dict[str, Any]:
    """One tree as a condition document."""
    if node.type == "group":
        return {
            node.match if node.match in ("all", "any") else "all": [
                condition_of(child, profile, events) for child in node.children
            ]
        }
    if node.type == "in_segment":
        return {"in_segment": node.get("segment")}
    if node.type == "purchased":
        return {"purchased": _purchase(node, events)}
    return _attribute(node.get("attribute"), node.get("op"), node, profile)


def _attribute(
    column: str, op: str, node: Node, kinds: Kinds, value: str = "value"
) -> dict[str, Any]:
    condition: dict[str, Any] = {"attribute": column, "op": op or "="}
    op = condition["op"]
    kind = kinds.get(column, "string")
    if op in NO_VALUE_OPS:
        return condition
    if op in RELATIVE_OPS:
        condition["value"] = _typed(node.get(value), "number")
        condition["unit"] = node.get("unit") or "days"
    elif op in PAIR_OPS:
        condition["value"] = [_typed(node.get(value), kind), _typed(node.get("value2"), kind)]
    elif op in LIST_OPS:
        condition["value"] = [
            _typed(part.strip(), kind) for part in node.get(value).split(",") if part.strip()
        ]
    else:
        condition["value"] = _typed(node.get(value), kind)
    return condition


def _purchase(node: Node, events: Kinds) -> dict[str, Any]:
    purchase: dict[str, Any] = {"table": node.get("table")} if node.get("table") else {}
    if node.get("within"):
        purchase["within_last"] = {
            "value": _typed(node.get("within"), "number"),
            "unit": node.get("unit") or "days",
        }
    measure = "revenue" if node.get("measure") == "revenue" else "orders"
    purchase[measure] = {"op": node.get("op") or ">=", "value": _typed(node.get("value"), "number")}
    if node.get("attribute"):
        purchase["where"] = _attribute(
            node.get("attribute"), node.get("filter_op"), node, events, value="filter_value"
        )
    return purchase


def _typed(text: str, kind: str) -> Any:
    """What a field holds, as its column's kind takes it (left as text when it does not read:
    the definition's check then names the field)."""
    text = text.strip()
    if kind == "number":
        try:
            return int(text)  # first: a float would round integers past 2**53
        except ValueError:
            pass
        try:
            return float(text)
        except ValueError:
            return text
    return text


# A document → the tree ---------------------------------------------------------------------


def from_conditions(where: Any, exclude: Any) -> tuple[dict[str, Node | None], list[str]]:
    """The builder's tree for a segment's `where` and `exclude` (as documents), and the parts
    it cannot show (a `not`, activation history): those segments are edited as YAML."""
    unshown: list[str] = []
    blocks: dict[str, Node | None] = {"w": None, "x": None}
    for block, condition in (("w", where), ("x", exclude)):
        blocks[block] = group_of(condition, unshown)
    return blocks, unshown


def group_of(condition: Any, unshown: list[str]) -> Node | None:
    """The builder's group for a condition document (None for none); what it cannot show is
    added to `unshown`."""
    if condition is None:
        return None
    node = _node(condition, unshown)
    return node if node.type == "group" else Node(type="group", children=[node])


def _node(condition: Mapping[str, Any], unshown: list[str]) -> Node:
    for match in ("all", "any"):
        if match in condition:
            return Node(
                type="group", match=match, children=[_node(c, unshown) for c in condition[match]]
            )
    if "in_segment" in condition:
        return Node(type="in_segment", fields={"segment": str(condition["in_segment"])})
    if "purchased" in condition:
        return _purchase_node(condition["purchased"], unshown)
    if "attribute" in condition:
        op = str(condition.get("op", "="))
        fields = {"attribute": str(condition["attribute"]), "op": op}
        fields |= _value_fields(condition.get("value"), condition.get("unit"), op)
        return Node(type="attribute", fields=fields)
    unshown.append(next(iter(condition), "?"))
    return Node(type="attribute")


def _purchase_node(purchase: Mapping[str, Any], unshown: list[str]) -> Node:
    fields: dict[str, str] = {"table": str(purchase["table"])} if purchase.get("table") else {}
    window = purchase.get("within_last") or {}
    if window:
        fields |= {"within": str(window.get("value", "")), "unit": str(window.get("unit", "days"))}
    measure = "revenue" if "revenue" in purchase else "orders"
    comparison = purchase.get(measure) or {}
    fields |= {
        "measure": measure,
        "op": str(comparison.get("op", ">=")),
        "value": str(comparison.get("value", "")),
    }
    where = purchase.get("where")
    if where is not None:
        if "attribute" in where:
            op = str(where.get("op", "="))
            fields |= {
                "attribute": str(where["attribute"]),
                "filter_op": op,
                "filter_value": _value_fields(where.get("value"), None, op).get("value", ""),
            }
        else:
            unshown.append("a purchase filter with several conditions")
    return Node(type="purchased", fields=fields)


def _value_fields(value: Any, unit: Any, op: str) -> dict[str, str]:
    if value is None:
        return {}
    if isinstance(value, list) and op in PAIR_OPS and len(value) == 2:
        return {"value": _shown(value[0]), "value2": _shown(value[1])}
    if isinstance(value, list):
        return {"value": ", ".join(_shown(v) for v in value)}
    return {"value": _shown(value)} | ({"unit": str(unit)} if unit else {})


def _shown(value: Any) -> str:
    return "true" if value is True else "false" if value is False else str(value)


# Errors → fields ---------------------------------------------------------------------------


def form_path(field_path: str | None) -> str | None:
    """The form field a definition error's field path names (`where.all.1.any.0.value` →
    `w.1.0.value`), or None when it names none of the builder's."""
    if not field_path:
        return None
    parts = field_path.split(".")
    if parts[0] in OWN_FIELDS:
        return parts[0]
    block = {name: key for key, name in BLOCKS.items()}.get(parts[0])
    if block is None:
        return None
    shown = [block]
    for part in parts[1:]:
        if part == "within_last" and shown[-1] != "filter":  # a purchase's window
            shown.append("within")
            break
        if part in ("all", "any", "purchased", "orders", "revenue"):
            continue
        if part == "where":  # a purchase's filter
            shown.append("filter")
            continue
        shown.append(part)
    path = ".".join(shown)
    path = path.replace(".filter.attribute", ".attribute").replace(".filter.value", ".filter_value")
    path = path.replace(".filter.op", ".filter_op")
    # The ends of a between have a field each; a list's items share one.
    path = re.sub(r"\.value\.0$", ".value", re.sub(r"\.value\.1$", ".value2", path))
    return re.sub(r"\.value\.\d+$", ".value", path)


def describe_path(path: str) -> str:
    """A form path as the builder shows it: `w.1.0.value` → "Include, condition 2.1"."""
    if path in OWN_FIELDS:
        return OWN_FIELDS[path]
    block, *rest = path.split(".")
    numbers = [str(int(part) + 1) for part in rest if part.isdigit()]
    where = "Include" if block == "w" else "Exclude" if block == "x" else block
    return f"{where}, condition {'.'.join(numbers)}" if numbers else where
