"""The Engine protocol: where customer data lives and how Audience talks to it.

Engines run SQL that `compile/` built as sqlglot expressions, rendered in their own dialect.
Differences between engines are declared as class attributes, not scattered `if`s.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import Any, ClassVar, Protocol

import pyarrow as pa
from sqlglot import exp

from audience.compile.catalog import Catalog


class Engine(Protocol):
    """One database holding the customer 360, its events, and Audience's per-customer state."""

    dialect: ClassVar[str]
    analyze_after_load: ClassVar[bool]
    """Whether a table just filled must be analysed before queries can plan well on it."""
    cheap_transactions: ClassVar[bool]
    """Whether `transaction` costs no more than its statements (the database's own); Spark's
    copies each table it writes."""

    def catalog(self) -> Catalog:
        """Tables → columns → kinds, read from the engine."""
        ...

    def rows(self, query: exp.Expr) -> list[dict[str, Any]]:
        """All rows of a small result (insights, previews) as dictionaries."""
        ...

    def stream(self, query: exp.Expr, batch_rows: int = 100_000) -> pa.RecordBatchReader:
        """The result as a stream of Arrow record batches that knows its schema before the
        first batch; never the whole of it in memory."""
        ...

    def execute(self, statement: exp.Expr) -> None:
        """Run a statement that returns nothing (ledger writes, DDL)."""
        ...

    def replace_table(
        self, name: str, schema: pa.Schema, batches: Iterable[pa.RecordBatch]
    ) -> None:
        """Create or replace `name` holding the batches (sample data, copies between engines)."""
        ...

    def transaction(self) -> AbstractContextManager[None]:
        """Statements executed inside take effect together when the block ends, or not at all
        if it raises (journey state moves as one)."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def driver_message(exc: BaseException, *, about_data: bool = False) -> str:
    """The first line of a database driver's error: what the user needs, without the noise.

    An error `about_data` (a value that does not convert, a number out of range) quotes the
    value, which is a customer's (`Could not convert string 'b3a3…' to INT32`); it is masked
    (`'…'`), as the message goes on to previews, run logs and API answers."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    if about_data:
        return _QUOTED.sub(lambda quoted: f"{quoted[0][0]}…{quoted[0][0]}", first)
    return first
