"""Arrow record batches → the bytes of a csv, tsv, psv, parquet, json or ndjson file, streamed.

`encode` takes an iterable of record batches and yields bytes chunks, one per slice of at most
`SLICE_ROWS` rows, so memory holds a slice at a time however large the audience. Delimited files
go through pyarrow's C++ CSV writer when its options fit (quote modes non_null, non_numeric and
none, without an escape character). What it lacks — the default `minimal` quoting, `all` (which
quotes nulls too) and escape characters — goes through a writer built from Arrow compute
kernels: still a column at a time in C++, never a Python loop per value. JSON is built the same
way.

Before encoding, `prepare` applies the content options: the CSV-injection guard and the row
number column.
"""

from __future__ import annotations

import codecs
import functools
import json
import struct
from collections.abc import Iterable, Iterator, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from audience.definitions.destination import FileOptions
from audience.delivery.packaging import Sink
from audience.errors import TerminalDeliveryError

SLICE_ROWS = 65_536
# Parquet readers work best with row groups of a few hundred thousand rows; batches are
# gathered up to this size (or `PARQUET_ROW_GROUP_BYTES`) before a row group is written.
PARQUET_ROW_GROUP_ROWS = 262_144
PARQUET_ROW_GROUP_BYTES = 64 * 1024 * 1024
# Spreadsheets run a cell that starts with one of these as a formula (OWASP "CSV injection").
INJECTION_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_CONTROL_BYTES = bytes(range(32))
_JSON_CONTROL = {chr(code): f"\\u{code:04x}" for code in range(32)} | {
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\b": "\\b",
    "\f": "\\f",
}


def output_schema(schema: pa.Schema, options: FileOptions) -> pa.Schema:
    """The columns of the delivered file: `schema`, after a leading row-number column if asked."""
    if options.row_number is None:
        return schema
    if options.row_number in schema.names:
        raise TerminalDeliveryError(
            f"row_number column {options.row_number!r} is also an attribute; rename one of them"
        )
    return schema.insert(0, pa.field(options.row_number, pa.int64(), nullable=False))


def prepare(batches: Iterable[pa.RecordBatch], options: FileOptions) -> Iterator[pa.RecordBatch]:
    """Apply the CSV-injection guard and number the rows (from 1, across all parts)."""
    next_number = 1
    for batch in batches:
        if options.csv_injection_guard:
            batch = _guard(batch)
        if options.row_number is not None:
            numbers = pa.arange(next_number, next_number + batch.num_rows)
            batch = batch.add_column(0, pa.field(options.row_number, pa.int64(), False), numbers)
            next_number += batch.num_rows
        yield batch


def _guard(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Prefix `'` to every text value a spreadsheet would run as a formula."""
    columns = []
    for column in batch.columns:
        if _is_text(column.type):
            text = _as_text(column)
            data = _value_bytes(text)
            if any(prefix.encode() in data for prefix in INJECTION_PREFIXES):
                mask = pc.fill_null(pc.match_substring_regex(text, r"^[=+\-@\t\r]"), _FALSE)
                risky = pc.filter(text, mask)
                guarded = pc.replace_with_mask(text, mask, _join(["'", risky]))
                column = guarded if guarded.type == column.type else pc.cast(guarded, column.type)
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, schema=batch.schema)


def encode(
    batches: Iterable[pa.RecordBatch], schema: pa.Schema, options: FileOptions
) -> Iterator[bytes]:
    """Yield the bytes of one file holding `batches` (whose columns are `schema`).

    With no batches at all, the file is what an empty audience sends: a header line, an empty
    JSON array, or a Parquet file with the columns and no rows.
    """
    slices = _slices(batches)
    if options.format == "parquet":
        chunks = _parquet(slices, schema)
    elif options.format in {"json", "ndjson"}:
        chunks = _json(slices, schema, array=options.format == "json")
    elif _arrow_csv_options(options) is not None:
        chunks = _arrow_csv(slices, schema, options)
    else:
        chunks = _delimited(slices, schema, options)
    if codecs.lookup(options.encoding).name != "utf-8":
        chunks = _transcode(chunks, options.encoding)
    return chunks


def _slices(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        for start in range(0, batch.num_rows, SLICE_ROWS):
            yield batch.slice(start, SLICE_ROWS)


def _transcode(chunks: Iterable[bytes], encoding: str) -> Iterator[bytes]:
    """Re-encode UTF-8 chunks, each ending at a row boundary, into `encoding`."""
    encoder = codecs.getincrementalencoder(encoding)()
    try:
        for chunk in chunks:
            yield encoder.encode(chunk.decode("utf-8"))
        yield encoder.encode("", final=True)
    except UnicodeEncodeError as error:
        character = error.object[error.start : error.end]
        raise TerminalDeliveryError(
            f"{character!r} cannot be written in encoding {encoding}; choose utf-8"
        ) from None


# --- text helpers --------------------------------------------------------------------------


def _is_text(data_type: pa.DataType) -> bool:
    if pa.types.is_dictionary(data_type):
        return _is_text(data_type.value_type)
    return bool(pa.types.is_string(data_type) or pa.types.is_large_string(data_type))


def _is_numeric(data_type: pa.DataType) -> bool:
    return bool(
        pa.types.is_integer(data_type)
        or pa.types.is_floating(data_type)
        or pa.types.is_decimal(data_type)
    )


def _as_text(column: pa.Array) -> pa.Array:
    """The column as Arrow strings, rendered as Arrow's CSV writer renders them."""
    if pa.types.is_string(column.type):
        return column
    try:
        return pc.cast(column, pa.string())
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid) as error:
        raise TerminalDeliveryError(
            f"a column of type {column.type} cannot be written as text: {error}"
        ) from None


def _value_bytes(text: pa.Array) -> bytes:
    """The characters of every value of a string array, back to back (for fast scans)."""
    offsets_buffer, data_buffer = text.buffers()[1:3]
    if data_buffer is None or len(text) == 0:
        return b""
    offsets = memoryview(offsets_buffer).cast("i")
    return bytes(memoryview(data_buffer)[offsets[text.offset] : offsets[text.offset + len(text)]])


def _present(text: pa.Array, characters: Iterable[str]) -> list[str]:
    """Which of `characters` occur anywhere in the values (one fast scan of the bytes)."""
    data = _value_bytes(text)
    return [char for char in characters if char.encode() in data]


def _join(parts: Sequence[str | pa.Array], separator: str = "") -> pa.Array:
    """Concatenate, row by row, arrays and constant strings."""
    arrays = [_text(part) if isinstance(part, str) else part for part in parts]
    return pc.binary_join_element_wise(*arrays, _text(separator))


@functools.cache
def _text(value: str) -> pa.StringScalar:
    """A constant string as an Arrow scalar, built from its bytes: pyarrow imports pandas, when
    it is installed, the first time a Python value becomes Arrow (0.3 s of a whole run)."""
    data = value.encode("utf-8")
    offsets = struct.pack("<ii", 0, len(data))
    built = pa.Array.from_buffers(pa.string(), 1, [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    scalar: pa.StringScalar = built[0]
    return scalar


_FALSE: pa.BooleanScalar = pa.Array.from_buffers(pa.bool_(), 1, [None, pa.py_buffer(b"\0")])[0]
"""False as an Arrow scalar, built as `_text` builds strings."""


def _char_class(characters: Iterable[str]) -> str:
    """An RE2 character class matching exactly `characters` (each written as `\\x{HEX}`)."""
    return "[" + "".join(f"\\x{{{ord(char):x}}}" for char in characters) + "]"


def _lines(fields: list[pa.Array], delimiter: str, eol: str) -> bytes:
    """Join the fields of each row with `delimiter`, end each row with `eol`, return the text."""
    fields = [*fields[:-1], _join([fields[-1], eol])]
    lines = fields[0] if len(fields) == 1 else _join(fields, delimiter)
    return _value_bytes(lines)


# --- delimited files -----------------------------------------------------------------------


def _arrow_csv_options(options: FileOptions) -> pa_csv.WriteOptions | None:
    """pyarrow's writer options for these file options, or None where it cannot do them:
    minimal quoting, quoting nulls as `""` (mode all), and escape characters."""
    if (
        options.quote in {"minimal", "all"}
        or options.escape is not None
        or not options.column_delimiter.isascii()
    ):
        return None
    style = {"non_null": "all_valid", "non_numeric": "needed", "none": "none"}[options.quote]
    return pa_csv.WriteOptions(
        include_header=options.header,
        delimiter=options.column_delimiter,
        quoting_style=style,
        quoting_header=style,
        eol=options.eol,
    )


def _non_numeric_as_text(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Arrow quotes strings but not dates or booleans; as text, every non-number is quoted."""
    columns = [column if _is_numeric(column.type) else _as_text(column) for column in batch.columns]
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


def _text_schema(schema: pa.Schema) -> pa.Schema:
    return pa.schema(
        [
            field if _is_numeric(field.type) else pa.field(field.name, pa.string())
            for field in schema
        ]
    )


def _arrow_csv(
    batches: Iterable[pa.RecordBatch], schema: pa.Schema, options: FileOptions
) -> Iterator[bytes]:
    write_options = _arrow_csv_options(options)
    as_text = options.quote == "non_numeric"
    sink = Sink()
    try:
        writer = pa_csv.CSVWriter(
            sink, _text_schema(schema) if as_text else schema, write_options=write_options
        )
        batch: pa.RecordBatch | None = None
        for batch in batches:
            writer.write_batch(_non_numeric_as_text(batch) if as_text else batch)
            yield from sink.take()
        writer.close()
    except pa.ArrowInvalid as error:
        if options.quote == "none" and "structural characters" in str(error):
            # Arrow's message quotes the value: customer data has no place in a run's error.
            specials = [options.column_delimiter, '"', "\r", "\n"]
            culprit = next(
                (
                    name
                    for name, column in zip(
                        schema.names, batch.columns if batch else [], strict=False
                    )
                    if _present(_as_text(column), specials)
                ),
                None,
            )
            raise _unwritable(options.column_delimiter, culprit) from None
        raise TerminalDeliveryError(f"cannot write the {options.format} file: {error}") from None
    yield from sink.take()


def _unwritable(delimiter: str, column: str | None = None) -> TerminalDeliveryError:
    """A value (or column name) that quote: none cannot write without an escape character."""
    where = f"a value of column {column!r}" if column is not None else "a value or column name"
    return TerminalDeliveryError(
        f"{where} holds the delimiter {delimiter!r}, a quote or a line break, which quote: none "
        "cannot write; choose quote: minimal or an escape character"
    )


class _Dialect:
    """Quoting and escaping rules of the compute-kernel writer, one column at a time."""

    def __init__(self, options: FileOptions, columns: int) -> None:
        self.mode = options.quote
        self.delimiter = options.column_delimiter
        self.escape = options.escape
        self.eol = options.eol
        self.single_column = columns == 1
        specials = [self.delimiter, '"', "\r", "\n"]
        if self.escape is not None:
            specials.append(self.escape)
        self.specials = specials
        # With an escape character, quotes (and the escape itself) inside a quoted value are
        # escaped rather than doubled, as Python's csv module does with doublequote=False.
        self.quote_escapes = ['"'] if self.escape is None else ['"', self.escape]
        escape = self.escape or '"'
        self.replacement = escape.replace("\\", "\\\\") + "\\1"
        self.plain_when_unquoted = (
            pa_csv.WriteOptions(
                include_header=False,
                delimiter=self.delimiter,
                quoting_style="none",
                eol=self.eol,
                batch_size=SLICE_ROWS,
            )
            if self.mode == "minimal"
            and self.escape is None
            and not self.single_column
            and self.delimiter.isascii()
            else None
        )
        """Arrow's writer, for rows where minimal quoting quotes nothing (a file of one
        column quotes its empty values, which Arrow would not; Arrow's delimiter is ASCII)."""
        self._plain_sink = Sink()
        self._plain: tuple[pa.Schema, pa_csv.CSVWriter] | None = None
        self._quoted_lately = False
        """Whether the last batch had a value to quote: the next is then scanned first."""

    def header(self, names: list[str]) -> bytes:
        """The header line, quoted by the same rules as the values."""
        return (self.delimiter.join(map(self._name, names)) + self.eol).encode("utf-8")

    def _name(self, name: str) -> str:
        if self.mode == "none":
            if self.escape is None:  # Arrow's writer does this, but for a delimiter past ASCII
                if any(c in name for c in self.specials):
                    raise TerminalDeliveryError(
                        f"column name {name!r} holds the delimiter {self.delimiter!r}, a quote "
                        "or a line break, which quote: none cannot write; rename the column"
                    )
                return name
            return "".join(self.escape + c if c in self.specials else c for c in name)
        if self.mode != "minimal" or any(c in name for c in self.specials) or not name:
            for char in self.quote_escapes:
                name = name.replace(char, (self.escape or '"') + char)
            return f'"{name}"'
        return name

    def lines(self, batch: pa.RecordBatch) -> bytes:
        """The rows of a batch as lines of the file."""
        if self.mode == "all":
            # Every field is quoted, nulls too: quoting whole rows takes one join instead of
            # one per field.
            inner = [
                pc.fill_null(self._escape_quotes(_as_text(c)), _text("")) for c in batch.columns
            ]
            rows = _join(['"', _join(inner, f'"{self.delimiter}"'), '"' + self.eol])
            return _value_bytes(rows)
        if self.mode == "minimal":
            texts = [_as_text(column) for column in batch.columns]
            if self.plain_when_unquoted is not None and not self._quoted_lately:
                written = self._plain_lines(texts, batch.schema.names)
                if written is not None:
                    return written
            present = [_present(text, self.specials) for text in texts]
            self._quoted_lately = any(present)
            if self.plain_when_unquoted is not None and not self._quoted_lately:
                plain = self._plain_lines(texts, batch.schema.names)
                assert plain is not None  # nothing to quote: Arrow refuses nothing
                return plain
            fields = [
                self._filled(self._quote_where_needed(text, chars))
                for text, chars in zip(texts, present, strict=True)
            ]
            return _lines(fields, self.delimiter, self.eol)
        return _lines(
            [
                self._field(c, name)
                for c, name in zip(batch.columns, batch.schema.names, strict=True)
            ],
            self.delimiter,
            self.eol,
        )

    def _plain_lines(self, texts: list[pa.Array], names: list[str]) -> bytes | None:
        """The rows written by Arrow's writer, quoting nothing — which minimal quoting does
        when no value holds a special character, and twice as fast as joining the fields.
        None when one does: Arrow refuses it (its check spares us a scan and a copy of the
        values), and anything it wrote of the batch before it met the value is dropped."""
        assert self.plain_when_unquoted is not None
        plain = pa.RecordBatch.from_arrays(texts, names=names)
        if self._plain is None or self._plain[0] != plain.schema:
            writer = pa_csv.CSVWriter(
                self._plain_sink, plain.schema, write_options=self.plain_when_unquoted
            )
            self._plain = (plain.schema, writer)
        try:
            self._plain[1].write_batch(plain)
        except pa.ArrowInvalid as error:
            if "structural characters" not in str(error):
                raise
            self._plain_sink.discard()
            self._plain = None  # a writer that failed half-way is not written to again
            return None
        return b"".join(self._plain_sink.take())

    def _field(self, column: pa.Array, name: str) -> pa.Array:
        """The text of one column's values in the file, without nulls."""
        text = _as_text(column)
        if self.mode == "none":
            text = self._escape_specials(text, name)
        elif self.mode == "non_null" or (
            self.mode == "non_numeric" and not _is_numeric(column.type)
        ):
            text = _join(['"', self._escape_quotes(text), '"'])
        else:
            text = self._quote_where_needed(text, _present(text, self.specials))
        return self._filled(text)

    def _filled(self, text: pa.Array) -> pa.Array:
        """A column's text in the file, nulls written as nothing."""
        if self.single_column and self.mode != "none":
            # A row of one empty value would be a blank line, which readers skip.
            filled = pc.fill_null(text, _text(""))
            return pc.if_else(pc.equal(filled, _text("")), _text('""'), text)
        return pc.fill_null(text, _text(""))

    def _escape_quotes(self, text: pa.Array) -> pa.Array:
        """Double the quotes in values (or escape them, and the escape, with `escape`)."""
        present = _present(text, self.quote_escapes)
        if not present:
            return text
        return pc.replace_substring_regex(text, f"({_char_class(present)})", self.replacement)

    def _quote_where_needed(self, text: pa.Array, present: list[str]) -> pa.Array:
        """Quote the values holding one of the special characters `present` in the column."""
        if not present:
            return text
        # A plain substring search per character is several times faster than one regex.
        mask = functools.reduce(pc.or_, [pc.match_substring(text, c) for c in present])
        mask = pc.fill_null(mask, _FALSE)
        risky = pc.filter(text, mask)
        return pc.replace_with_mask(text, mask, _join(['"', self._escape_quotes(risky), '"']))

    def _escape_specials(self, text: pa.Array, name: str) -> pa.Array:
        present = _present(text, self.specials)
        if not present:
            return text
        if self.escape is None:
            raise _unwritable(self.delimiter, name)
        return pc.replace_substring_regex(text, f"({_char_class(present)})", self.replacement)


def _delimited(
    batches: Iterable[pa.RecordBatch], schema: pa.Schema, options: FileOptions
) -> Iterator[bytes]:
    dialect = _Dialect(options, len(schema))
    if options.header:
        yield dialect.header(schema.names)
    for batch in batches:
        yield dialect.lines(batch)


# --- JSON ----------------------------------------------------------------------------------


def _json_string(text: pa.Array) -> pa.Array:
    """Values as JSON string literals (RFC 8259 escapes), nulls kept."""
    data = _value_bytes(text)
    if b"\\" in data:
        text = pc.replace_substring(text, "\\", "\\\\")
    if b'"' in data:
        text = pc.replace_substring(text, '"', '\\"')
    if len(data.translate(None, _CONTROL_BYTES)) != len(data):
        for char, escaped in _JSON_CONTROL.items():
            if char.encode() in data:
                text = pc.replace_substring(text, char, escaped)
    return _join(['"', text, '"'])


def _json_values(column: pa.Array) -> pa.Array:
    """Each value of the column as JSON text; null (and NaN, ±inf) as `null`."""
    data_type = column.type
    if pa.types.is_dictionary(data_type):
        column = pc.cast(column, data_type.value_type)
        data_type = column.type
    if pa.types.is_null(data_type):
        text = pc.cast(column, pa.string())
    elif pa.types.is_floating(data_type):
        text = pc.if_else(pc.is_finite(column), _as_text(column), None)
    elif pa.types.is_boolean(data_type) or _is_numeric(data_type):
        text = _as_text(column)
    elif (
        _is_text(data_type)
        or pa.types.is_temporal(data_type)
        or pa.types.is_binary(data_type)
        or pa.types.is_large_binary(data_type)
    ):
        text = _json_string(_as_text(column))
    else:
        # Lists, structs and maps are rare in audiences: encoded value by value in Python.
        text = pa.array(
            [
                None if value is None else json.dumps(value, ensure_ascii=False, default=str)
                for value in column.to_pylist()
            ],
            pa.string(),
        )
    return pc.fill_null(text, _text("null"))


def _json(batches: Iterable[pa.RecordBatch], schema: pa.Schema, *, array: bool) -> Iterator[bytes]:
    """One object per row: `[{…},\\n{…}]` for json, `{…}\\n` per line for ndjson."""
    separator = ",\n" if array else "\n"
    keys = [json.dumps(name, ensure_ascii=False) + ":" for name in schema.names]
    # The braces ride on the first key and the last value, so each row is built in one join.
    keys[0] = "{" + keys[0]
    # In an array, each slice's objects are sent as soon as they are built: the comma that
    # parts them from the slice before leads the slice, and the last one takes none.
    lead = b"[\n" if array else b""
    for batch in batches:
        members = [
            _join([key, _json_values(column)])
            for key, column in zip(keys, batch.columns, strict=True)
        ]
        members[-1] = _join([members[-1], "}" + separator])
        objects = _value_bytes(_join(members, ","))
        yield lead + (objects.removesuffix(b",\n") if array else objects)
        lead = b",\n" if array else b""
    if array:
        yield b"[\n]\n" if lead == b"[\n" else b"\n]\n"


# --- Parquet -------------------------------------------------------------------------------


def _parquet(batches: Iterable[pa.RecordBatch], schema: pa.Schema) -> Iterator[bytes]:
    sink = Sink()
    writer = pq.ParquetWriter(sink, schema)
    group: list[pa.RecordBatch] = []
    rows = size = 0
    for batch in batches:
        group.append(batch)
        rows += batch.num_rows
        size += batch.nbytes
        if rows >= PARQUET_ROW_GROUP_ROWS or size >= PARQUET_ROW_GROUP_BYTES:
            writer.write_table(pa.Table.from_batches(group, schema), row_group_size=rows)
            group, rows, size = [], 0, 0
            yield from sink.take()
    if group:
        writer.write_table(pa.Table.from_batches(group, schema), row_group_size=rows)
    writer.close()
    yield from sink.take()
