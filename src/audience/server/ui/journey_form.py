"""Editing a journey's graph through forms: add a node after another, change a node (where it
leads, what it sends to, how long it waits), remove one. Each edit is made to the journey's
document (SPEC Appendix A) and applied like any other, so the definitions check it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from audience.definitions.journey import END, RELEASE

NEW_NODE_TYPES = ("activate", "delay", "percent_split", "merge")
"""What the form adds: a percent split with two paths (the second may be held back as a
control); a conditional split's paths, each a segment or conditions, are written as YAML."""


def _index(nodes: list[dict[str, Any]], name: str) -> int:
    for index, node in enumerate(nodes):
        if node["name"] == name:
            return index
    raise KeyError(name)


def _successor(nodes: list[dict[str, Any]], index: int) -> str | None:
    """Where customers go after `nodes[index]` when it names no `next`: the node listed after
    it (None at the end)."""
    node = nodes[index]
    if node.get("next"):
        return None if node["next"] == END else str(node["next"])
    return str(nodes[index + 1]["name"]) if index + 1 < len(nodes) else None


def add_node(document: dict[str, Any], form: Mapping[str, str]) -> dict[str, Any]:
    """The journey with a new node placed after `form["after"]` (in the list, and in the path:
    a node that named its next now leads to the new one, which leads on there)."""
    edited = {**document, "nodes": [dict(n) for n in document["nodes"]]}
    nodes: list[dict[str, Any]] = edited["nodes"]
    node: dict[str, Any] = {"name": form.get("name", "").strip(), "type": form.get("type", "")}
    node |= _fields(node["type"], form)
    after = form.get("after", "")
    if not after:
        nodes.append(node)
        return edited
    index = _index(nodes, after)
    before = nodes[index]
    if before.get("next"):
        node["next"], before["next"] = before["next"], node["name"]
    nodes.insert(index + 1, node)
    return edited


def change_node(document: dict[str, Any], name: str, form: Mapping[str, str]) -> dict[str, Any]:
    """The journey with node `name` leading elsewhere (`next`: a node, `end`, or empty for the
    one listed after it) and its own fields as the form gives them."""
    edited = {**document, "nodes": [dict(n) for n in document["nodes"]]}
    node = edited["nodes"][_index(edited["nodes"], name)]
    if node["type"] in ("activate", "delay", "merge") and not node.get("until"):
        for field in ("destinations", "value", "unit"):
            node.pop(field, None)
        node |= _fields(node["type"], form)
    if node.get("paths"):
        node["paths"] = [
            _led(path, form.get(f"path.{index}.next")) for index, path in enumerate(node["paths"])
        ]
    if "next" in form:
        node.pop("next", None)
        if form["next"]:
            node["next"] = form["next"]
    return edited


def _led(path: dict[str, Any], target: str | None) -> dict[str, Any]:
    """A split's path leading to `target` (a node, or `end`; None leaves it as it is)."""
    if target is None:
        return path
    led = {k: v for k, v in path.items() if k != "next"}
    return led | ({"next": target} if target else {})


def remove_node(document: dict[str, Any], name: str, *, occupied: bool) -> dict[str, Any]:
    """The journey without node `name`: what led to it leads where it led, and customers
    waiting at it (when it is `occupied`) move there too (or leave the journey, at the end of
    a path)."""
    nodes = [dict(n) for n in document["nodes"]]
    index = _index(nodes, name)
    successor = _successor(nodes, index)
    del nodes[index]
    for node in nodes:
        if node.get("next") == name:
            node["next"] = successor or END
        for branch in ("matched", "timed_out"):
            if node.get(branch) == name:
                node[branch] = successor or END
        if node.get("paths"):
            node["paths"] = [
                {**p, "next": successor or END} if p.get("next") == name else p
                for p in node["paths"]
            ]
    if not occupied:
        return {**document, "nodes": nodes}
    removed = {**document.get("removed_nodes", {}), name: successor or RELEASE}
    return {**document, "nodes": nodes, "removed_nodes": removed}


def _fields(kind: str, form: Mapping[str, str]) -> dict[str, Any]:
    if kind == "activate":
        chosen = [v for k, v in sorted(form.items()) if k.startswith("destination.")]
        return {"destinations": chosen}
    if kind == "delay":
        value = form.get("value", "").strip()
        return {"value": int(value) if value.isdigit() else value, "unit": form.get("unit", "days")}
    if kind == "percent_split":
        first = {"name": form.get("path1", "").strip(), "percent": _number(form.get("percent1"))}
        second = {"name": form.get("path2", "").strip(), "percent": _number(form.get("percent2"))}
        if form.get("control2") == "on":
            second["control"] = True
        return {"paths": [first, second]}
    return {}


def _number(text: str | None) -> Any:
    text = (text or "").strip()
    return int(text) if text.isdigit() else text
