"""File names from sandboxed templates, made safe for every destination.

A destination names its files with a Jinja2 template such as
`{{ campaign_name }}_{{ group_name }}_{{ now | format('%Y%m%d') }}`. Templates are checked when a
definition is saved (`validate_template`) and rendered when a file is sent (`data_file_name`,
`set_file_name`). Whatever a user typed, a rendered name is one path segment: no `/`, `\\`, `..`,
control or non-printable characters; whitespace and punctuation become `_`; at most
`MAX_STEM_BYTES` bytes before the extension; and the activation's name is always in it.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, nodes
from jinja2.filters import do_format
from jinja2.sandbox import SandboxedEnvironment

from audience.errors import TemplateError

DEFAULT_TEMPLATE = "{{ activation_name }}_{{ group_name }}_{{ now | format('%Y%m%d') }}"
VARIABLES = frozenset(
    {
        "activation_name",
        "campaign_name",
        "group_name",
        "sub_audience_name",
        "destination_name",
        "run_id",
        "file_number",
        "now",
    }
)
# Room is left after the stem for a part suffix, the longest extension (".manifest.json") and
# the filesystem destination's temporary-name decorations, all within 255-byte name limits.
MAX_STEM_BYTES = 200
# One value may take at most this much of the stem, so the activation name always fits.
MAX_VALUE_BYTES = 120
MAX_TEMPLATE_CHARS = 500

_FORMAT_EXTENSIONS: Mapping[str, str] = {
    "csv": ".csv",
    "tsv": ".tsv",
    "psv": ".psv",
    "parquet": ".parquet",
    "json": ".json",
    "ndjson": ".ndjson",
}
# Letters and digits of any script, `_`, `.` and `-` survive; every other run of characters
# (whitespace, separators, control characters, emoji, shell and URL punctuation) becomes `_`.
_UNSAFE_RUN = re.compile(r"[^\w.\-]+")
_DOTS = re.compile(r"\.{2,}")
_LITERAL_FORBIDDEN = re.compile(r"[/\\]|\.\.|[\x00-\x1f\x7f]")
# A printf or strftime field width like %0999999999d would render a gigabyte-long value.
_HUGE_WIDTH = re.compile(r"%[-+ #0_^]*\d{3,}")

# Only what a file name needs: no calls, attribute or item access, loops, macros or includes.
_ALLOWED_NODES: tuple[type[nodes.Node], ...] = (
    nodes.Template,
    nodes.Output,
    nodes.TemplateData,
    nodes.Name,
    nodes.Const,
    nodes.Filter,
    nodes.Keyword,
    nodes.Concat,
    nodes.If,
    nodes.CondExpr,
    nodes.Not,
    nodes.And,
    nodes.Or,
    nodes.Compare,
    nodes.Operand,
)

_NODE_WORDS: Mapping[type[nodes.Node], str] = {
    nodes.Getattr: "attribute access (x.y)",
    nodes.Getitem: "item access (x[y])",
    nodes.Call: "a call",
}


@dataclass(frozen=True)
class NameValues:
    """What a file name may say about the activation that sends it."""

    activation_name: str
    now: datetime
    group_name: str = ""
    sub_audience_name: str = ""

    def __post_init__(self) -> None:
        if not self.activation_name.strip():
            raise ValueError("a file name needs the activation's name, and it is empty")


def _format(value: Any, *args: Any, **kwargs: Any) -> str:
    """`now | format('%Y%m%d')` is strftime; any other value keeps Jinja's printf-style format."""
    if isinstance(value, date):
        if len(args) != 1 or kwargs or not isinstance(args[0], str):
            raise TypeError("format on a date takes one strftime pattern, e.g. format('%Y%m%d')")
        return value.strftime(args[0])
    return do_format(value, *args, **kwargs)


def _environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
    builtin = env.filters
    allowed: dict[str, Callable[..., Any]] = {
        name: builtin[name]
        for name in ("lower", "upper", "title", "capitalize", "replace", "trim", "truncate")
    }
    allowed["format"] = _format
    allowed["string"] = str
    env.filters = allowed
    env.globals = {}
    return env


_ENV = _environment()


def _forbidden_literal(text: str) -> str | None:
    match = _LITERAL_FORBIDDEN.search(text)
    return match.group(0) if match else None


def _check_tree(template: str) -> nodes.Template:
    try:
        tree = _ENV.parse(template)
    except TemplateSyntaxError as error:
        raise TemplateError(f"invalid template (line {error.lineno}): {error.message}") from None
    for node in tree.find_all(nodes.Node):
        if not isinstance(node, _ALLOWED_NODES):
            what = _NODE_WORDS.get(type(node), f"{type(node).__name__.lower()}")
            raise TemplateError(
                f"{what} is not allowed in a filename template; "
                "use variables and filters only, e.g. {{ group_name | lower }}"
            )
        if isinstance(node, nodes.Name) and node.name not in VARIABLES:
            raise TemplateError(
                f"unknown variable {node.name!r} in filename template; "
                f"known: {', '.join(sorted(VARIABLES))}"
            )
        if isinstance(node, nodes.Filter) and node.name not in _ENV.filters:
            raise TemplateError(
                f"filter {node.name!r} is not allowed in a filename template; "
                f"allowed: {', '.join(sorted(_ENV.filters))}"
            )
        if isinstance(node, nodes.Filter) and (node.dyn_args or node.dyn_kwargs):
            raise TemplateError("*args and **kwargs are not allowed in a filename template")
        literal = None
        if isinstance(node, nodes.TemplateData):
            literal = _forbidden_literal(node.data)
        elif isinstance(node, nodes.Const) and isinstance(node.value, str):
            literal = _forbidden_literal(node.value)
            if _HUGE_WIDTH.search(node.value):
                raise TemplateError("field widths in a filename template are at most 2 digits")
        if literal is not None:
            raise TemplateError(
                f"filename template contains {literal!r}: a file name is one path segment, "
                "without path separators, '..' or control characters"
            )
    return tree


def validate_template(template: str) -> None:
    """Check a filename template when a definition is saved; raise TemplateError if it is unsafe.

    Rejected: syntax errors, unknown variables or filters, attribute or item access (such as
    `{{ ''.__class__ }}`), calls and statements other than `if`, and path separators, `..` or
    control characters in literal text. A trial render catches type errors like `format(1)`.
    """
    if not template.strip():
        raise TemplateError("filename template is empty")
    if len(template) > MAX_TEMPLATE_CHARS:
        raise TemplateError(f"filename template is longer than {MAX_TEMPLATE_CHARS} characters")
    _check_tree(template)
    sample = NameValues("activation", datetime(2000, 1, 1), "group", "sub_audience")
    _render(template, _variables(sample, destination_name="d", run_id="r", file_number=1))


def uses_variable(template: str, name: str) -> bool:
    """Whether the template refers to the variable `name` (e.g. `file_number`)."""
    return any(node.name == name for node in _compiled_tree(template).find_all(nodes.Name))


@lru_cache(maxsize=256)
def _compiled_tree(template: str) -> nodes.Template:
    return _check_tree(template)


@lru_cache(maxsize=256)
def _compiled(template: str) -> Any:
    _compiled_tree(template)
    return _ENV.from_string(template)


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def _truncate_bytes(text: str, limit: int) -> str:
    """Cut `text` to at most `limit` UTF-8 bytes, never inside a character."""
    return text.encode("utf-8")[:limit].decode("utf-8", "ignore")


def _shorten(text: str, limit: int) -> str:
    """Keep `text` within `limit` bytes; a cut name ends with a hash of the whole, so that two
    long names differing only at the end stay different."""
    if len(text.encode("utf-8")) <= limit:
        return text
    return f"{_truncate_bytes(text, limit - 9).rstrip('._-')}-{_short_hash(text)}"


def safe_component(value: str, *, limit: int = MAX_VALUE_BYTES) -> str:
    """Make one value safe to put in a file name (see the module docstring)."""
    text = unicodedata.normalize("NFC", value)
    text = _UNSAFE_RUN.sub("_", text)
    text = _DOTS.sub(".", text)
    # A leading dot hides a file and a leading dash reads as an option to command-line tools.
    text = text.strip("._-")
    if not text:
        # Nothing printable was left (e.g. a name made of emoji): a stable stand-in keeps two
        # such names apart.
        return f"x{_short_hash(value)}" if value else ""
    return _shorten(text, limit)


def _variables(
    values: NameValues, *, destination_name: str, run_id: str, file_number: int
) -> dict[str, Any]:
    activation = safe_component(values.activation_name)
    return {
        "activation_name": activation,
        "campaign_name": activation,
        "group_name": safe_component(values.group_name),
        "sub_audience_name": safe_component(values.sub_audience_name),
        "destination_name": safe_component(destination_name),
        "run_id": safe_component(run_id),
        "file_number": file_number,
        "now": values.now,
    }


def _render(template: str, variables: dict[str, Any]) -> str:
    try:
        return str(_compiled(template).render(variables))
    except Exception as error:  # Jinja raises many types at render time; all mean a bad template
        raise TemplateError(f"filename template cannot be rendered: {error}") from None


def _stem(template: str, variables: dict[str, Any]) -> str:
    activation: str = variables["activation_name"]
    stem = safe_component(_render(template, variables), limit=MAX_STEM_BYTES)
    if activation not in stem:
        stem = safe_component(f"{activation}_{stem}", limit=MAX_STEM_BYTES)
    return stem


def extension(file_format: str, compression: str) -> str:
    """The extension of a delivered file: `.csv`, `.csv.gz`, `.parquet`, `.zip`, `.tar.gz`…"""
    base = _FORMAT_EXTENSIONS[file_format]
    return {
        "none": base,
        "gzip": f"{base}.gz",
        "zip": ".zip",
        "tar": ".tar",
        "tgz": ".tar.gz",
    }[compression]


def data_file_name(
    template: str,
    values: NameValues,
    *,
    destination_name: str,
    run_id: str,
    file_number: int,
    numbered: bool,
    suffix: str,
) -> str:
    """The name of data file `file_number` (from 1), ending in `suffix` (an `extension`).

    When the data is split into numbered parts (`numbered`) and the template does not place
    `{{ file_number }}` itself, `_<n>` is appended to the stem so parts never collide.
    """
    variables = _variables(
        values, destination_name=destination_name, run_id=run_id, file_number=file_number
    )
    stem = _stem(template, variables)
    if numbered and not uses_variable(template, "file_number"):
        stem = f"{stem}_{file_number}"
    return f"{stem}{suffix}"


def set_file_name(
    template: str, values: NameValues, *, destination_name: str, run_id: str, suffix: str
) -> str:
    """The name of a file about the whole set of data files: the manifest or the success file.

    It is the template rendered as for the data files; a template that places
    `{{ file_number }}` gets 0 there (file 0 stands for the whole set).
    """
    variables = _variables(values, destination_name=destination_name, run_id=run_id, file_number=0)
    return f"{_stem(template, variables)}{suffix}"


def member_name(file_name: str, file_format: str, compression: str) -> str:
    """The name of the data file inside a zip or tar archive called `file_name`."""
    archive = extension(file_format, compression)
    stem = file_name.removesuffix(archive)
    return f"{stem}{_FORMAT_EXTENSIONS[file_format]}"
