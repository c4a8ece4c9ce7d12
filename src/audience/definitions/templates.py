"""The filename template language: sandboxed Jinja2, checked when a definition is saved.

A destination names its files with a template such as
`{{ campaign_name }}_{{ group_name }}_{{ now | format('%Y%m%d') }}`. Only variables and a few
filters are allowed: no calls, attribute or item access, loops, macros or includes, and no path
separators, `..` or control characters in literal text. Rendering lives here too, so that what
was checked is exactly what runs; `delivery/naming.py` makes the rendered values safe.

The work a template may do is bounded, or a few hundred characters of nested
`replace('', 'xxxxxxxx')` would render gigabytes: the source is short, it calls few filters and
nests shallowly, and every value a filter returns (and the whole name) stays short. Each filter
is handed values within the bound, so none can build more than a few hundred kilobytes before
its result is refused — whether when the definition is applied or when a file is named.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
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
MAX_TEMPLATE_CHARS = 500
MAX_FILTERS = 16
"""Filter calls in one template (there are no loops, so this bounds the calls at render time)."""
MAX_DEPTH = 20
"""How deeply expressions may nest (filters of filters, parentheses, `not not …`)."""
MAX_VALUE_CHARS = 1_000
"""The longest value a filter may return, and the longest rendered name."""
_SAMPLE_DAY = datetime(2000, 1, 1)

_LITERAL_FORBIDDEN = re.compile(r"[/\\]|\.\.|[\x00-\x1f\x7f]")
# A printf or strftime field like %0999999999d, %.999999999f or %*d (width from an argument)
# would render a gigabyte-long value before any bound on its result could be checked.
_HUGE_WIDTH = re.compile(r"%(?:\([^)]*\))?[-+ #0_^]*(?:\*|\d{3,}|\d*\.(?:\*|\d{3,}))")

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


def _format(value: Any, *args: Any, **kwargs: Any) -> str:
    """`now | format('%Y%m%d')` is strftime; any other value keeps Jinja's printf-style format."""
    if isinstance(value, date):
        if len(args) != 1 or kwargs or not isinstance(args[0], str):
            raise TypeError("format on a date takes one strftime pattern, e.g. format('%Y%m%d')")
        return value.strftime(_modest_pattern(args[0]))
    return do_format(_modest_pattern(str(value)), *args, **kwargs)


def _modest_pattern(pattern: str) -> str:
    """The pattern, if none of its fields is wide enough to build a huge value (the pattern may
    come from a variable, so this is checked at every render, not only on the template)."""
    if _HUGE_WIDTH.search(pattern):
        raise TemplateError(
            "field widths in a filename template are at most 2 digits, and never `*`"
        )
    return pattern


def _bounded(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """`function`, refusing a result longer than MAX_VALUE_CHARS; Jinja's marker of what it
    passes first (environment, context) is kept by `functools.wraps`."""

    @functools.wraps(function)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        result = function(*args, **kwargs)
        if isinstance(result, str) and len(result) > MAX_VALUE_CHARS:
            raise TemplateError(
                f"filter {name!r} made a value longer than {MAX_VALUE_CHARS} characters"
            )
        return result

    return bounded


def _environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
    builtin = env.filters
    allowed: dict[str, Callable[..., Any]] = {
        name: builtin[name]
        for name in ("lower", "upper", "title", "capitalize", "replace", "trim", "truncate")
    }
    allowed["format"] = _format
    allowed["string"] = str
    env.filters = {name: _bounded(name, function) for name, function in allowed.items()}
    env.globals = {}
    return env


_ENV = _environment()


def _forbidden_literal(text: str) -> str | None:
    match = _LITERAL_FORBIDDEN.search(text)
    return match.group(0) if match else None


def _check_tree(template: str) -> nodes.Template:
    if len(template) > MAX_TEMPLATE_CHARS:
        raise TemplateError(f"filename template is longer than {MAX_TEMPLATE_CHARS} characters")
    try:
        tree = _ENV.parse(template)
    except TemplateSyntaxError as error:
        raise TemplateError(f"invalid template (line {error.lineno}): {error.message}") from None
    except RecursionError:
        raise TemplateError(_TOO_DEEP) from None
    _check_size(tree)
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
            _modest_pattern(node.value)
        if literal is not None:
            raise TemplateError(
                f"filename template contains {literal!r}: a file name is one path segment, "
                "without path separators, '..' or control characters"
            )
    return tree


_TOO_DEEP = f"filename template nests more than {MAX_DEPTH} levels deep"


def _check_size(tree: nodes.Template) -> None:
    """At most MAX_FILTERS filter calls and MAX_DEPTH levels of nesting (walked without
    recursion, so a deep tree cannot exhaust the stack here)."""
    filters = 0
    stack: list[tuple[nodes.Node, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise TemplateError(_TOO_DEEP)
        filters += isinstance(node, nodes.Filter)
        if filters > MAX_FILTERS:
            raise TemplateError(f"filename template calls more than {MAX_FILTERS} filters")
        stack.extend((child, depth + 1) for child in node.iter_child_nodes())


def validate_template(template: str) -> None:
    """Check a filename template when a definition is saved; raise TemplateError if it is unsafe.

    Rejected: syntax errors, unknown variables or filters, attribute or item access (such as
    `{{ ''.__class__ }}`), calls and statements other than `if`, and path separators, `..` or
    control characters in literal text. A trial render catches type errors like `format(1)`.
    """
    if not template.strip():
        raise TemplateError("filename template is empty")
    _check_tree(template)
    render(template, {**dict.fromkeys(VARIABLES, "sample"), "file_number": 1, "now": _SAMPLE_DAY})


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


def render(template: str, variables: dict[str, Any]) -> str:
    """The template rendered with `variables`, within the bounds of the module docstring."""
    try:
        rendered = str(_compiled(template).render(variables))
    except TemplateError:
        raise
    except Exception as error:  # Jinja raises many types at render time; all mean a bad template
        raise TemplateError(f"filename template cannot be rendered: {error}") from None
    if len(rendered) > MAX_VALUE_CHARS:
        raise TemplateError(f"filename template renders more than {MAX_VALUE_CHARS} characters")
    return rendered
