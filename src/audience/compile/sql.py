"""The SQL toolkit every compiler shares: quoted names, literals, and the few portable
expressions (NULL read as false, counting where a condition holds, empty text) whose meaning must
be the same on every engine."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlglot import exp

from audience.compile.catalog import ColumnKind
from audience.errors import InvalidValue


def column(name: str) -> exp.Column:
    """A quoted column reference (never pasted text)."""
    return exp.column(name, quoted=True)


def table(name: str) -> exp.Table:
    """A quoted table reference."""
    return exp.table_(name, quoted=True)


def count_if(condition: exp.Expr, name: str) -> exp.Expr:
    """`COALESCE(SUM(CASE WHEN condition THEN 1 ELSE 0 END), 0) AS name`: portable everywhere."""
    ones = exp.Case(ifs=[exp.If(this=condition, true=number(1))], default=number(0))
    return exp.alias_(exp.func("COALESCE", exp.func("SUM", ones), number(0)), name)


def false_if_null(condition: exp.Expr) -> exp.Expr:
    """`condition`, with NULL read as false."""
    return exp.func("COALESCE", condition, exp.false())


BLANK = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
"""Every character Python's `str.isspace()` calls whitespace; text made only of these is blank.
Spelled out because SQL's plain TRIM removes spaces only."""


def is_empty_text(value: exp.Expr) -> exp.Expr:
    """True when text is NULL, '' or blank; never NULL itself.

    The one meaning of "empty" for text: the is_empty / is_not_empty operators, required sent
    attributes and "reachable" in insights all use it, so they agree on every engine."""
    trimmed = exp.Trim(this=value.copy(), expression=string(BLANK))
    first = exp.Left(this=value.copy(), expression=exp.Literal.number(1))
    # Trimming every value costs two thirds of a segment's insights: only text that starts
    # with whitespace can be blank, so the rest is decided by its first character — and most
    # text starts with a printable character below the first blank one past the space (U+0085),
    # which one comparison of its code tells, where the list of blanks takes many.
    blank = (
        exp.Case()
        .when(exp.EQ(this=value.copy(), expression=string("")), exp.true())
        .when(
            exp.Between(
                this=exp.Ascii(this=value.copy()),
                low=exp.Literal.number(ord(" ") + 1),
                high=exp.Literal.number(ord("\x85") - 1),
            ),
            exp.false(),
        )
        .when(exp.not_(exp.In(this=first, expressions=[string(c) for c in BLANK])), exp.false())
        .else_(exp.EQ(this=trimmed, expression=string("")))
    )
    return exp.paren(exp.or_(value.copy().is_(exp.null()), blank), copy=False)


def has_text(value: exp.Expr) -> exp.Expr:
    """True when text holds something other than whitespace (never NULL)."""
    return exp.not_(is_empty_text(value))


def has_value(value: exp.Expr, kind: ColumnKind) -> exp.Expr:
    """A column of any kind holds a value: text that is not empty, anything else not NULL."""
    return has_text(value) if kind == "string" else exp.not_(value.copy().is_(exp.null()))


def number(value: Any, path: str | None = None) -> exp.Expr:
    """A numeric literal; booleans, strings and lists are refused with the field named."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidValue(f"expected a number, got {value!r}", field=path)
    return exp.Literal.number(value)


def string(value: str) -> exp.Literal:
    """A string literal, escaped by sqlglot for each dialect."""
    return exp.Literal.string(value)


def day_literal(day: date, kind: ColumnKind) -> exp.Expr:
    """The start (00:00) of `day` as a literal of the column's kind."""
    if kind == "timestamp":
        return exp.cast(string(f"{day.isoformat()} 00:00:00"), exp.DataType.Type.TIMESTAMP)
    return exp.cast(string(day.isoformat()), exp.DataType.Type.DATE)
