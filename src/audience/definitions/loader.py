"""YAML documents → definition models, with every error pointing at `file:line` and the field.

Parsing keeps the position of every key and list item, so a problem found later (by the compiler,
against the engine's columns) can still be reported at the line the user wrote it on.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import ReusedAnchorWarning, YAMLError

from audience.definitions.conditions import TAGS
from audience.definitions.kinds import KINDS, Definition
from audience.definitions.ordering import applicable_order
from audience.errors import (
    DefinitionError,
    InvalidYAML,
    MissingKind,
    NestingTooDeep,
    UnreadableFile,
    ValueTypeMismatch,
)

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class LoadedDocument:
    """A validated definition and where it came from."""

    definition: Definition
    origin: str
    line: int
    lines: Mapping[Path_, int] = field(default_factory=dict)
    spellings: Mapping[Path_, str] = field(default_factory=dict)
    """How the file wrote each number, boolean and date (`02130`, `0o17`), which YAML has
    already turned into a value that prints differently (2130, 15)."""

    def locate(self, field_path: str | None) -> str:
        """`file:line` of the deepest part of `field_path` ("where.all.0.attribute") known."""
        return f"{self.origin}:{line_of(self.lines, _split(field_path), self.line)}"

    def relocate(self, error: DefinitionError) -> DefinitionError:
        """Fill in this document's `file:line` for an error found after loading (and, for a
        value of the wrong type, advise quoting it as the file spelled it)."""
        if isinstance(error, ValueTypeMismatch):
            written = self.spellings.get(_split(error.field))
            if written is not None:
                error.spelled(written)
        return error.located(where=self.locate(error.field))


def load_paths(paths: Iterable[Path]) -> list[LoadedDocument]:
    """Every document in the files (and `*.yaml`/`*.yml` under folders) given, in order."""
    return [document for _, documents in load_each_path(paths) for document in documents]


def load_each_path(paths: Iterable[Path]) -> list[tuple[Path, list[LoadedDocument]]]:
    """Each path given with the documents found in it (none, for a folder without YAML)."""
    found: list[tuple[Path, list[LoadedDocument]]] = []
    for path in paths:
        if path.is_dir():
            files = sorted(
                p for p in path.rglob("*") if p.suffix in {".yaml", ".yml"} and p.is_file()
            )
        elif path.is_file():
            files = [path]
        else:
            raise DefinitionError(f"{path}: no such file or folder")
        found.append((path, [d for file in files for d in load_text(_read(file), str(file))]))
    return found


def _read(file: Path) -> str:
    """The text of a definitions file, or UnreadableFile naming it."""
    try:
        return file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UnreadableFile(
            f"not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}); "
            "definitions are YAML text files",
            where=str(file),
        ) from None
    except OSError as exc:
        raise UnreadableFile(f"cannot be read: {exc.strerror or exc}", where=str(file)) from None


def load_text(text: str, origin: str = "<input>") -> list[LoadedDocument]:
    """Parse and validate every document of a (multi-document) YAML text."""
    yaml = YAML(typ="rt")
    source = text.splitlines()
    try:
        with warnings.catch_warnings():
            # redefining an anchor is valid YAML; ruamel's multi-line warning would reach users
            warnings.simplefilter("ignore", ReusedAnchorWarning)
            raws = [raw for raw in yaml.load_all(text) if raw is not None]
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"{origin}:{mark.line + 1}" if mark is not None else origin
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InvalidYAML(f"not valid YAML: {problem}", where=where) from None
    except RecursionError:
        raise NestingTooDeep("document nested too deeply to read", where=origin) from None
    except Exception as exc:
        # ruamel builds tagged or dated scalars without a position, and fails on odd ones with
        # whatever Python raises: `!!int 0x`, `!!set` on a scalar, `2001-02-30`
        raise InvalidYAML(f"not valid YAML: a value cannot be read ({exc})", where=origin) from None
    try:
        positioned = [(_start_line(raw), *_plain_with_lines(raw, source)) for raw in raws]
    except RecursionError:
        raise NestingTooDeep("document nested too deeply to read", where=origin) from None
    except _TooManyValues:
        raise InvalidYAML(
            f"a document expands to more than {MAX_VALUES:,} values (aliases of aliases?)",
            where=origin,
        ) from None
    return [
        _validate(data, lines, origin, line, spellings)
        for line, data, lines, spellings in positioned
    ]


def validate_data(data: Any, origin: str = "<api>") -> LoadedDocument:
    """Validate one document given as plain data (the API's JSON)."""
    return _validate(data, {}, origin, 1)


def _validate(
    data: Any,
    lines: dict[Path_, int],
    origin: str,
    line: int,
    spellings: Mapping[Path_, str] | None = None,
) -> LoadedDocument:
    where = f"{origin}:{line}"
    if not isinstance(data, dict):
        raise DefinitionError("a document must be a mapping with a `kind`", where=where)
    kind = data.get("kind")
    if kind is None:
        raise MissingKind(
            f"document has no `kind` (one of: {', '.join(sorted(KINDS))})", where=where
        )
    model = KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise MissingKind(
            f"unknown kind {kind!r} (one of: {', '.join(sorted(KINDS))})",
            where=f"{origin}:{line_of(lines, ('kind',), line)}",
            field="kind",
        )
    try:
        definition = model.model_validate(data)
    except ValidationError as exc:
        raise _definition_error(exc, lines, origin, line) from None
    except DefinitionError as exc:
        raise exc.located(where=f"{origin}:{line_of(lines, _split(exc.field), line)}") from None
    return LoadedDocument(definition, origin, line, lines, spellings or {})


def _definition_error(
    exc: ValidationError, lines: Mapping[Path_, int], origin: str, line: int
) -> DefinitionError:
    first = exc.errors()[0]
    loc = _drop_tags(first["loc"])
    cause = (first.get("ctx") or {}).get("error")
    if isinstance(cause, DefinitionError):
        # the cause names its field relative to the model that raised it, found at `loc`
        field_path = ".".join(p for p in (_join(loc), cause.field or "") if p)
        cause.field = None
        return cause.located(
            where=f"{origin}:{line_of(lines, _split(field_path), line)}", field=field_path
        )
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "model_type":  # pydantic names the class; a user wrote a mapping
        message = f"expected a mapping ({{key: value, …}}), got {first['input']!r}"
    return DefinitionError(
        message, where=f"{origin}:{line_of(lines, loc, line)}", field=_join(loc) or None
    )


_CONDITION_FIELDS = frozenset({"where", "exclude", "not"})


def _drop_tags(loc: Iterable[str | int]) -> Path_:
    """pydantic puts the union tag into error locations where a condition starts; drop it."""
    kept: list[str | int] = []
    previous: str | int | None = None
    for part in loc:
        starts_condition = isinstance(previous, int) or previous in _CONDITION_FIELDS
        if isinstance(part, str) and part in TAGS and starts_condition:
            previous = None  # the next part is the condition's own field, never a tag
            continue
        kept.append(part)
        previous = part
    return tuple(kept)


def line_of(lines: Mapping[Path_, int], path: Path_, default: int) -> int:
    """The line of the deepest prefix of `path` that has a known position."""
    for end in range(len(path), 0, -1):
        found = lines.get(path[:end])
        if found is not None:
            return found
    return default


def _split(field_path: str | None) -> Path_:
    if not field_path:
        return ()
    return tuple(int(p) if p.isdigit() else p for p in field_path.split("."))


def _join(path: Path_) -> str:
    return ".".join(str(p) for p in path)


def _start_line(raw: Any) -> int:
    lc = getattr(raw, "lc", None)
    return int(lc.line) + 1 if lc is not None and lc.line is not None else 1


def _plain_with_lines(
    raw: Any, source: Sequence[str]
) -> tuple[Any, dict[Path_, int], dict[Path_, str]]:
    reader = _Reader(source)
    return reader.plain(raw, ()), reader.lines, reader.spellings


# A YAML timestamp (which may hold spaces), else a plain scalar up to what ends it in flow style.
_SCALAR_TEXT = re.compile(
    r"\d{4}-\d\d?-\d\d?(?:(?:[Tt]|[ \t]+)\d\d?:\d\d:\d\d(?:\.\d*)?"
    r"(?:[ \t]*(?:Z|[-+]\d\d?(?::\d\d)?))?)?|[^\s,\[\]{}#]+"
)


MAX_VALUES = 100_000
"""The most values one document may hold once its aliases are expanded: a few lines of nested
aliases ("billion laughs") would otherwise expand to gigabytes."""


class _TooManyValues(Exception):
    """A document expands past MAX_VALUES."""


@dataclass
class _Reader:
    """Turns ruamel's nodes into plain data, noting each key's line and each non-text scalar's
    spelling in the source."""

    source: Sequence[str]
    lines: dict[Path_, int] = field(default_factory=dict)
    spellings: dict[Path_, str] = field(default_factory=dict)
    values: int = 0

    def plain(self, node: Any, path: Path_) -> Any:
        self.values += 1
        if self.values > MAX_VALUES:
            raise _TooManyValues
        if isinstance(node, CommentedMap):
            result: dict[Any, Any] = {}
            positions = node.lc.data or {}  # no positions at all when every key is merged
            for key, value in node.items():
                # [key line, key column, value line, value column]; none for merged (`<<`) keys
                entry = positions.get(key)
                if entry:
                    self.lines[(*path, str(key))] = entry[0] + 1
                    self._spell(value, (*path, str(key)), entry[2], entry[3])
                result[str(key) if not isinstance(key, str) else key] = self.plain(
                    value, (*path, str(key))
                )
            return result
        if isinstance(node, CommentedSeq):
            items = []
            positions = node.lc.data or {}
            for index, value in enumerate(node):
                entry = positions.get(index)  # [line, column]
                if entry:
                    self.lines[(*path, index)] = entry[0] + 1
                    self._spell(value, (*path, index), entry[0], entry[1])
                items.append(self.plain(value, (*path, index)))
            return items
        if isinstance(node, str):
            return str(node)
        return node

    def _spell(self, value: Any, path: Path_, line: int, column: int) -> None:
        """Note how the source wrote a number, boolean or date."""
        if not isinstance(value, int | float | date) or not 0 <= line < len(self.source):
            return
        match = _SCALAR_TEXT.match(self.source[line], column)
        # an alias, anchor or tag is not the value itself: no spelling rather than a wrong one
        if match is not None and match.group(0)[0] not in "*&!":
            self.spellings[path] = match.group(0)


def as_documents(definitions: Iterable[Definition]) -> list[dict[str, Any]]:
    """The definitions as the documents `apply` takes (JSON-ready), each after the definitions
    it uses (so applying the documents one by one also works)."""
    return [
        {"kind": d.kind, **d.model_dump(mode="json", by_alias=True, exclude_defaults=True)}
        for d in applicable_order(definitions)
    ]


def dump_documents(definitions: Iterable[Definition]) -> str:
    """YAML text of the definitions, in a form `load_text` accepts unchanged (`as_documents`)."""
    yaml = YAML(typ="rt")
    buffer = io.StringIO()
    yaml.dump_all(as_documents(definitions), buffer)
    return buffer.getvalue()
