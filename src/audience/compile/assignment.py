"""The portable hash bucket: the same customer lands in the same group on every engine.

bucket = first 8 hex digits of md5(seed || ':' || id), read as an unsigned integer, mod 10 000.
Each engine spells "read hex as an integer" differently; everything else is shared.
"""

from __future__ import annotations

from decimal import Decimal

from sqlglot import exp

from audience.definitions.campaign import CONTROL_GROUP, SubAudience

BUCKETS = 10_000
"""Buckets per customer: percentages resolve to 0.01 %."""


def bucket(customer_id: exp.Expr, seed: str, dialect: str) -> exp.Expr:
    """The customer's bucket, 0 ≤ bucket < BUCKETS."""
    key = exp.DPipe(
        this=exp.Literal.string(f"{seed}:"),
        expression=exp.cast(customer_id, exp.DataType.Type.TEXT),
        safe=True,
    )
    digits = exp.Substring(
        this=exp.MD5(this=key), start=exp.Literal.number(1), length=exp.Literal.number(8)
    )
    if dialect == "postgres":
        as_bits = exp.cast(
            exp.DPipe(this=exp.Literal.string("x"), expression=digits, safe=True),
            exp.DataType.build("BIT(32)", dialect="postgres"),
        )
        value: exp.Expr = exp.cast(as_bits, exp.DataType.Type.BIGINT)
    elif dialect == "spark":
        value = exp.cast(
            exp.Anonymous(
                this="CONV", expressions=[digits, exp.Literal.number(16), exp.Literal.number(10)]
            ),
            exp.DataType.Type.BIGINT,
        )
    else:
        value = exp.cast(
            exp.DPipe(this=exp.Literal.string("0x"), expression=digits, safe=True),
            exp.DataType.Type.BIGINT,
        )
    return exp.Mod(this=exp.paren(value, copy=False), expression=exp.Literal.number(BUCKETS))


def group_bounds(sub_audience: SubAudience) -> list[tuple[str, int]]:
    """(group, upper bucket bound) in order: treatments, then the control group if any."""
    bounds: list[tuple[str, int]] = []
    total = Decimal(0)
    for treatment in sub_audience.treatments:
        total += Decimal(str(treatment.percent))
        bounds.append((treatment.name, int(total * BUCKETS / 100)))
    if sub_audience.control:
        bounds.append((CONTROL_GROUP, BUCKETS))
    else:
        bounds[-1] = (bounds[-1][0], BUCKETS)  # rounding never leaves a bucket unassigned
    return bounds
