"""Transactions on Parquet tables: a transaction writes copies, which take the tables' places
when it ends (see `spark_tables`: a copy costs hard links, not bytes)."""

from __future__ import annotations

from sqlglot import exp

from audience.engines.spark_tables import Warehouse


class Shadows:
    """The copies one transaction writes in place of the tables it changes."""

    def __init__(self, warehouse: Warehouse) -> None:
        self.warehouse = warehouse
        self._copies: dict[str, str] = {}

    def redirect(self, statement: exp.Expr) -> exp.Expr:
        """`statement` reading and writing the copies: a table is copied the first time the
        transaction writes it, and read from its copy from then on."""
        written = _written(statement)
        if (
            written is not None
            and written not in self._copies
            and not self.warehouse.is_temporary(written)
        ):
            self._copies[written] = self.warehouse.copy(written)
        if not self._copies:
            return statement

        def to_copy(node: exp.Expr) -> exp.Expr:
            if isinstance(node, exp.Table) and not node.db and node.name in self._copies:
                renamed = node.copy()
                renamed.set("this", exp.to_identifier(self._copies[node.name], quoted=True))
                return renamed
            return node

        return statement.transform(to_copy)

    def publish(self) -> None:
        """Every copy takes its table's place."""
        for name, copy in self._copies.items():
            self.warehouse.take_place(name, copy)
        self._copies.clear()

    def discard(self) -> None:
        """Throw the copies away: the tables are as they were."""
        for copy in self._copies.values():
            self.warehouse.drop(copy)
        self._copies.clear()


def _written(statement: exp.Expr) -> str | None:
    """The table a statement changes, if it changes one."""
    if isinstance(statement, exp.Insert | exp.Delete | exp.Update):
        target = statement.this
        if isinstance(target, exp.Schema):
            target = target.this
        return target.name if isinstance(target, exp.Table) else None
    return None
