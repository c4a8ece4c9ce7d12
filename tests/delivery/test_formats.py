"""Every file format and option, read back the way a receiver would read it."""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from audience.definitions.destination import Destination, FileOptions
from audience.delivery import formats
from audience.delivery.naming import NameValues
from audience.delivery.shipment import deliver
from audience.errors import TerminalDeliveryError

MakeDestination = Callable[..., Destination]
Unpack = Callable[[bytes, str], bytes]

DELIMITERS = {"csv": ",", "tsv": "\t", "psv": "|"}


def _send(
    destination: Destination,
    table: pa.Table,
    names: Callable[..., NameValues],
    *,
    chunk: int = 4,
    run_id: str = "run-1",
) -> list[Any]:
    return deliver(destination, table.to_batches(max_chunksize=chunk), names=names(), run_id=run_id)


def _file(delivery: Any) -> bytes:
    return Path(delivery.uri.removeprefix("file://")).read_bytes()


def _rows(data: bytes, file_format: str, delimiter: str = ",") -> list[dict[str, Any]]:
    """Parse a delivered file into rows of Python values, as a receiver's tools would."""
    if file_format == "parquet":
        return pq.read_table(io.BytesIO(data)).to_pylist()  # type: ignore[no-any-return]
    if file_format == "json":
        return json.loads(data)  # type: ignore[no-any-return]
    if file_format == "ndjson":
        return [json.loads(line) for line in data.decode().splitlines()]
    reader = csv.DictReader(io.StringIO(data.decode(), newline=""), delimiter=delimiter)
    return list(reader)


def _as_csv_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


@pytest.mark.parametrize("compression", ["none", "gzip", "zip", "tar", "tgz"])
@pytest.mark.parametrize("file_format", ["csv", "tsv", "psv", "parquet", "json", "ndjson"])
def test_every_format_and_compression_reads_back(
    file_format: str,
    compression: str,
    folder_destination: MakeDestination,
    names: Callable[..., NameValues],
    sample: pa.Table,
    unpack: Unpack,
) -> None:
    destination = folder_destination({"format": file_format, "compression": compression})
    (delivery,) = _send(destination, sample, names)

    extension = {"none": f".{file_format}", "gzip": f".{file_format}.gz"}.get(
        compression, {"zip": ".zip", "tar": ".tar", "tgz": ".tar.gz"}.get(compression)
    )
    assert delivery.name == f"Spring_Churn_Prevention_Offer_A_20261201{extension}"
    assert delivery.rows == 6
    data = unpack(_file(delivery), compression)
    rows = _rows(data, file_format, DELIMITERS.get(file_format, ","))
    if file_format in DELIMITERS:
        expected = [{k: _as_csv_text(v) for k, v in row.items()} for row in sample.to_pylist()]
    else:
        expected = sample.to_pylist()
    assert rows == expected


def test_archives_hold_the_data_file_under_its_own_name(
    folder_destination: MakeDestination, names: Callable[..., NameValues], sample: pa.Table
) -> None:
    import tarfile
    import zipfile

    zipped = _file(_send(folder_destination({"compression": "zip"}), sample, names)[0])
    assert zipfile.ZipFile(io.BytesIO(zipped)).namelist() == [
        "Spring_Churn_Prevention_Offer_A_20261201.csv"
    ]
    tarred = _file(_send(folder_destination({"compression": "tgz"}), sample, names)[0])
    with tarfile.open(fileobj=io.BytesIO(tarred), mode="r:gz") as archive:
        assert archive.getnames() == ["Spring_Churn_Prevention_Offer_A_20261201.csv"]
    assert len(tarred) > 0


def test_custom_delimiter_is_csv_like(
    folder_destination: MakeDestination, names: Callable[..., NameValues], sample: pa.Table
) -> None:
    (delivery,) = _send(folder_destination({"delimiter": ";"}), sample, names)
    assert delivery.name.endswith(".csv")
    data = _file(delivery)
    assert data.startswith(b"amperity_id;email;given_name;lifetime_revenue;orders\n")
    assert _rows(data, "csv", ";")[1]["email"] == "b,c@x.com"


def test_header_off(
    folder_destination: MakeDestination, names: Callable[..., NameValues], sample: pa.Table
) -> None:
    (delivery,) = _send(folder_destination({"header": False}), sample, names)
    lines = _file(delivery).decode().splitlines()
    assert lines[0] == "c1,a@x.com,Zoë,10.5,1"


def test_crlf_line_endings(
    folder_destination: MakeDestination, names: Callable[..., NameValues], sample: pa.Table
) -> None:
    (delivery,) = _send(folder_destination({"line_ending": "crlf"}), sample, names)
    data = _file(delivery)
    assert data.startswith(b"amperity_id,email,given_name,lifetime_revenue,orders\r\n")
    assert data.count(b"\r\n") == 7  # header and six rows; the quoted line break stays "\n"
    assert b'"line\nbreak"' in data
    assert _rows(data, "csv")[5]["email"] == "line\nbreak"


QUOTE_TABLE = pa.table({"s": ["a", "b,c", None, ""], "n": pa.array([1, None, 3, 4], pa.int64())})
QUOTED = {
    "minimal": 's,n\na,1\n"b,c",\n,3\n,4\n',
    "all": '"s","n"\n"a","1"\n"b,c",""\n"","3"\n"","4"\n',
    "non_null": '"s","n"\n"a","1"\n"b,c",\n,"3"\n"","4"\n',
    "non_numeric": '"s","n"\n"a",1\n"b,c",\n,3\n"",4\n',
}


@pytest.mark.parametrize("mode", sorted(QUOTED))
def test_quote_modes(
    mode: str, folder_destination: MakeDestination, names: Callable[..., NameValues]
) -> None:
    (delivery,) = _send(folder_destination({"quote": mode}), QUOTE_TABLE, names)
    assert _file(delivery).decode() == QUOTED[mode]


@pytest.mark.parametrize("mode", sorted(QUOTED))
def test_both_writers_agree(mode: str, tmp_path: Path, names: Callable[..., NameValues]) -> None:
    """With an escape character the compute-kernel writer runs instead of Arrow's; on values
    without quotes or escapes, both must write the same bytes, for every column type."""
    table = pa.table(
        {
            "text": ["a", "b,c", None, "", "line\nbreak"],
            "number": pa.array([1, None, -3, 4, 5], pa.int32()),
            "money": pa.array([decimal.Decimal("1.50"), None, None, None, decimal.Decimal("-2")]),
            "ratio": [0.5, None, 1e20, -0.0, 2.0],
            "flag": [True, False, None, True, False],
            "day": [dt.date(2026, 1, 2), None, dt.date(1999, 12, 31), None, None],
            "at": pa.array(
                [dt.datetime(2026, 1, 2, 3, 4, 5), None, None, None, None], pa.timestamp("us")
            ),
            "tier": pa.array(["gold", "gold", None, "silver", "none"]).dictionary_encode(),
        }
    )
    files = []
    for escape in (None, "\\"):
        file: dict[str, Any] = {"quote": mode}
        if escape:
            file["escape"] = escape
        destination = Destination.model_validate(
            {
                "name": "local",
                "type": "filesystem",
                "settings": {"path": str(tmp_path / f"out-{escape is not None}")},
                "file": file,
            }
        )
        files.append(_file(_send(destination, table, names)[0]))
    assert files[0] == files[1]


def test_escape_character_with_minimal_quoting(
    folder_destination: MakeDestination, names: Callable[..., NameValues]
) -> None:
    table = pa.table({"s": ['say "hi"', "back\\slash", "plain", "a,b"]})
    (delivery,) = _send(folder_destination({"escape": "\\"}), table, names)
    data = _file(delivery).decode()
    assert data == 's\n"say \\"hi\\""\n"back\\\\slash"\nplain\n"a,b"\n'
    reader = csv.reader(io.StringIO(data), escapechar="\\", doublequote=False)
    assert [row[0] for row in reader][1:] == ['say "hi"', "back\\slash", "plain", "a,b"]


def test_no_quoting_with_an_escape_character(
    folder_destination: MakeDestination, names: Callable[..., NameValues]
) -> None:
    table = pa.table({"s": ["a,b", 'q"t', "plain", "new\nline"]})
    (delivery,) = _send(folder_destination({"quote": "none", "escape": "\\"}), table, names)
    data = _file(delivery).decode()
    assert data == 's\na\\,b\nq\\"t\nplain\nnew\\\nline\n'
    reader = csv.reader(io.StringIO(data), quoting=csv.QUOTE_NONE, escapechar="\\")
    assert [row[0] for row in reader][1:3] == ["a,b", 'q"t']


@pytest.mark.parametrize("delimiter", [",", "§"])  # Arrow's writer, and the other one
def test_no_quoting_without_escape_refuses_values_that_need_it(
    delimiter: str,
    folder_destination: MakeDestination,
    names: Callable[..., NameValues],
    tmp_path: Path,
) -> None:
    """The error names the column whose value cannot be written (never the value)."""
    table = pa.table({"ok": ["a", "b"], "notes": ["fine", f"not{delimiter}fine"]})
    destination = folder_destination({"quote": "none", "delimiter": delimiter})
    with pytest.raises(TerminalDeliveryError, match=r"column 'notes' .*quote: none cannot write"):
        _send(destination, table, names)
    assert [p.name for p in (tmp_path / "out").iterdir()] == [".audience"]  # nothing left


def test_row_numbers_count_from_one_across_parts(
    folder_destination: MakeDestination, names: Callable[..., NameValues], sample: pa.Table
) -> None:
    destination = folder_destination({"row_number": "row", "split_rows": 4})
    first, second = _send(destination, sample, names, chunk=3)
    assert [r["row"] for r in _rows(_file(first), "csv")] == ["1", "2", "3", "4"]
    assert [r["row"] for r in _rows(_file(second), "csv")] == ["5", "6"]
    assert list(_rows(_file(first), "csv")[0])[:2] == ["row", "amperity_id"]


def test_row_number_column_clashing_with_an_attribute(
    folder_destination: MakeDestination, names: Callable[..., NameValues], sample: pa.Table
) -> None:
    with pytest.raises(TerminalDeliveryError, match="row_number"):
        _send(folder_destination({"row_number": "email"}), sample, names)


def test_split_into_numbered_parts(
    folder_destination: MakeDestination,
    names: Callable[..., NameValues],
    sample: pa.Table,
    unpack: Unpack,
) -> None:
    destination = folder_destination({"split_rows": 4, "compression": "gzip"})
    parts = _send(destination, sample, names, chunk=5)
    assert [(p.name, p.rows) for p in parts] == [
        ("Spring_Churn_Prevention_Offer_A_20261201_1.csv.gz", 4),
        ("Spring_Churn_Prevention_Offer_A_20261201_2.csv.gz", 2),
    ]
    rows = [row for p in parts for row in _rows(unpack(_file(p), "gzip"), "csv")]
    assert [r["amperity_id"] for r in rows] == ["c1", "c2", "c3", "c4", "c5", "c6"]


def test_split_exactly_at_the_limit_makes_no_empty_part(
    folder_destination: MakeDestination, names: Callable[..., NameValues], sample: pa.Table
) -> None:
    parts = _send(folder_destination({"split_rows": 3}), sample, names, chunk=3)
    assert [p.rows for p in parts] == [3, 3]


def test_template_placing_the_file_number(
    folder_destination: MakeDestination, names: Callable[..., NameValues], sample: pa.Table
) -> None:
    template = "{{ campaign_name }}-part{{ '%02d' | format(file_number) }}"
    file = {"split_rows": 5, "filename": template, "manifest": True, "success_file": True}
    deliveries = _send(folder_destination(file), sample, names)
    assert [d.name for d in deliveries] == [
        "Spring_Churn_Prevention-part01.csv",
        "Spring_Churn_Prevention-part02.csv",
        "Spring_Churn_Prevention-part00.manifest.json",
        "Spring_Churn_Prevention-part00.DONE",
    ]


def test_manifest_lists_files_rows_and_checksums(
    folder_destination: MakeDestination, names: Callable[..., NameValues], sample: pa.Table
) -> None:
    import hashlib

    destination = folder_destination({"split_rows": 4, "manifest": True, "compression": "gzip"})
    *parts, manifest = _send(destination, sample, names)
    assert manifest.role == "manifest"
    assert manifest.name == "Spring_Churn_Prevention_Offer_A_20261201.manifest.json"
    document = json.loads(_file(manifest))
    assert document["rows"] == 6
    assert document["run_id"] == "run-1"
    assert document["activation"] == "Spring Churn Prevention"
    assert document["format"] == "csv" and document["compression"] == "gzip"
    for part, entry in zip(parts, document["files"], strict=True):
        data = _file(part)
        assert entry == {
            "name": part.name,
            "rows": part.rows,
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        assert part.sha256 == entry["sha256"] and part.bytes == len(data)


def test_success_file_is_written_last(
    folder_destination: MakeDestination, names: Callable[..., NameValues], sample: pa.Table
) -> None:
    from audience.delivery.shipment import open_destination

    destination = folder_destination({"split_rows": 2, "manifest": True, "success_file": True})
    inner = open_destination(destination)
    order: list[str] = []

    class Recording:
        def publish(self, name: str, chunks: Any, *, run_id: str) -> Any:
            published = inner.publish(name, chunks, run_id=run_id)
            order.append(name)
            return published

        def exists(self, name: str) -> bool:
            return inner.exists(name)

        def address(self, name: str) -> str:
            return name

    deliveries = deliver(
        destination, sample.to_batches(), names=names(), run_id="r", client=Recording()
    )
    assert order == [d.name for d in deliveries]
    assert order[-1] == "Spring_Churn_Prevention_Offer_A_20261201.DONE"
    assert order[-2].endswith(".manifest.json") and len(order) == 5
    assert _file(deliveries[-1]) == b""


def test_csv_injection_guard_is_off_by_default(
    folder_destination: MakeDestination, names: Callable[..., NameValues], sample: pa.Table
) -> None:
    rows = _rows(_file(_send(folder_destination(), sample, names)[0]), "csv")
    assert [r["given_name"] for r in rows] == ["Zoë", "O'Brien", "", "-5", "+call", "@me"]
    assert rows[4]["email"] == "=1+2"


def test_csv_injection_guard(
    folder_destination: MakeDestination, names: Callable[..., NameValues], sample: pa.Table
) -> None:
    negative = sample.append_column("balance", pa.array([-1, 2, 3, 4, 5, 6], pa.int64()))
    destination = folder_destination({"csv_injection_guard": True})
    rows = _rows(_file(_send(destination, negative, names)[0]), "csv")
    assert [r["given_name"] for r in rows] == ["Zoë", "O'Brien", "", "'-5", "'+call", "'@me"]
    assert rows[4]["email"] == "'=1+2"
    assert rows[0]["email"] == "a@x.com"
    assert rows[0]["balance"] == "-1"  # numbers are not text a spreadsheet would run


@pytest.mark.parametrize(
    ("file_format", "expected"),
    [
        ("csv", b"amperity_id,email\n"),
        ("json", b"[\n]\n"),
        ("ndjson", b""),
    ],
)
def test_empty_audience_sends_just_the_header(
    file_format: str,
    expected: bytes,
    folder_destination: MakeDestination,
    names: Callable[..., NameValues],
) -> None:
    schema = pa.schema([("amperity_id", pa.string()), ("email", pa.string())])
    reader = pa.RecordBatchReader.from_batches(schema, [])
    destination = folder_destination({"format": file_format, "success_file": True})
    data_file, done = deliver(destination, reader, names=names(), run_id="r")
    assert data_file.rows == 0 and done.role == "success"
    assert _file(data_file) == expected


def test_empty_audience_parquet_keeps_the_columns(
    folder_destination: MakeDestination, names: Callable[..., NameValues]
) -> None:
    schema = pa.schema([("amperity_id", pa.string())])
    destination = folder_destination({"format": "parquet"})
    (delivery,) = deliver(destination, [], names=names(), run_id="r", schema=schema)
    read = pq.read_table(io.BytesIO(_file(delivery)))
    assert read.num_rows == 0 and read.column_names == ["amperity_id"]


def test_empty_audience_with_empty_batches_only(
    folder_destination: MakeDestination, names: Callable[..., NameValues], sample: pa.Table
) -> None:
    batches = [pa.RecordBatch.from_pylist([], schema=sample.schema)] * 3
    (delivery,) = deliver(folder_destination(), batches, names=names(), run_id="r")
    assert _file(delivery) == b"amperity_id,email,given_name,lifetime_revenue,orders\n"


def test_empty_audience_can_send_nothing(
    folder_destination: MakeDestination, names: Callable[..., NameValues], tmp_path: Path
) -> None:
    destination = folder_destination({"empty": "none", "success_file": True, "manifest": True})
    assert deliver(destination, iter(()), names=names(), run_id="r") == []
    assert not (tmp_path / "out").exists()


def test_other_encodings(
    folder_destination: MakeDestination, names: Callable[..., NameValues], sample: pa.Table
) -> None:
    data = _file(_send(folder_destination({"encoding": "latin-1"}), sample, names)[0])
    assert "Zoë" in data.decode("latin-1")
    destination = folder_destination({"encoding": "utf-8-sig", "filename": "{{ run_id }}"})
    with_bom = _file(_send(destination, sample, names, run_id="bom")[0])
    assert with_bom.startswith(b"\xef\xbb\xbfamperity_id,")
    assert with_bom.count(b"\xef\xbb\xbf") == 1


def test_characters_an_encoding_lacks_fail_cleanly(
    folder_destination: MakeDestination, names: Callable[..., NameValues], tmp_path: Path
) -> None:
    table = pa.table({"name": ["fine", "🎉"]})
    with pytest.raises(TerminalDeliveryError, match="latin-1"):
        _send(folder_destination({"encoding": "latin-1"}), table, names)
    assert [p.name for p in (tmp_path / "out").iterdir()] == [".audience"]


def test_json_escapes_and_special_numbers(
    folder_destination: MakeDestination, names: Callable[..., NameValues]
) -> None:
    table = pa.table(
        {
            "text": ['q"uote', "back\\slash", "tab\tnl\nnul\x00", "Zoë 🎉"],
            "number": [float("nan"), float("inf"), 1.5, None],
            "tags": [["a"], [], None, ["b", "c"]],
            "at": pa.array([dt.datetime(2026, 1, 2), None, None, None], pa.timestamp("s")),
        }
    )
    (delivery,) = _send(folder_destination({"format": "ndjson"}), table, names)
    rows = _rows(_file(delivery), "ndjson")
    assert [r["text"] for r in rows] == ['q"uote', "back\\slash", "tab\tnl\nnul\x00", "Zoë 🎉"]
    assert [r["number"] for r in rows] == [None, None, 1.5, None]
    assert [r["tags"] for r in rows] == [["a"], [], None, ["b", "c"]]
    assert rows[0]["at"] == "2026-01-02 00:00:00"


def test_many_batches_stream_through(
    folder_destination: MakeDestination, names: Callable[..., NameValues], unpack: Unpack
) -> None:
    rows = 150_000
    table = pa.table(
        {"id": pa.array(range(rows)).cast(pa.string()), "email": pa.array(["x@y.z"] * rows)}
    )
    destination = folder_destination({"compression": "gzip", "row_number": "n"})
    (delivery,) = _send(destination, table, names, chunk=70_000)
    lines = unpack(_file(delivery), "gzip").decode().splitlines()
    assert delivery.rows == rows and len(lines) == rows + 1
    assert lines[-1] == f"{rows},{rows - 1},x@y.z"


def test_csv_injection_guard_keeps_column_types(
    folder_destination: MakeDestination, names: Callable[..., NameValues]
) -> None:
    table = pa.table({"tier": pa.array(["=gold", "silver", None]).dictionary_encode()})
    destination = folder_destination({"format": "parquet", "csv_injection_guard": True})
    (delivery,) = _send(destination, table, names)
    read = pq.read_table(io.BytesIO(_file(delivery)))
    assert pa.types.is_dictionary(read.schema.field("tier").type)
    assert read.column("tier").to_pylist() == ["'=gold", "silver", None]


def test_minimal_quoting_is_the_same_whether_a_batch_needs_quotes_or_not(
    folder_destination: MakeDestination, names: Callable[..., NameValues]
) -> None:
    """Batches with nothing to quote are written by Arrow's writer, the others field by
    field: the file is what Python's csv module writes, whichever way each batch went."""
    texts = ["a", "b", None, "", "c,d", 'say "hi"', "e", "f", "line\nbreak", "g", "h", "i"]
    numbers = [1, None, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
    table = pa.table({"s": texts, "n": pa.array(numbers, pa.int64())})
    (delivery,) = _send(folder_destination({"quote": "minimal"}), table, names, chunk=3)
    expected = io.StringIO()
    writer = csv.writer(expected, lineterminator="\n")
    writer.writerow(["s", "n"])
    writer.writerows(
        ["" if s is None else s, "" if n is None else n]
        for s, n in zip(texts, numbers, strict=True)
    )
    assert _file(delivery).decode() == expected.getvalue()


def test_minimal_quoting_writes_a_batch_arrow_refused_field_by_field(
    folder_destination: MakeDestination, names: Callable[..., NameValues]
) -> None:
    """Arrow's writer refuses a batch with a value to quote: the batch is written field by
    field, once, and so is the next (scanned first); later batches go back to Arrow's writer."""
    texts = [f"v{n}" for n in range(7000)]
    texts[2500], texts[4000] = "x,y", 'say "hi"'
    table = pa.table({"s": texts, "n": pa.array(range(7000), pa.int64())})
    (delivery,) = _send(folder_destination({"quote": "minimal"}), table, names, chunk=2000)
    expected = io.StringIO()
    writer = csv.writer(expected, lineterminator="\n")
    writer.writerow(["s", "n"])
    writer.writerows(zip(texts, range(7000), strict=True))
    assert _file(delivery).decode() == expected.getvalue()


def test_what_arrow_wrote_before_refusing_a_batch_is_not_sent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Arrow's writer writes a batch a slice at a time and may refuse a value after writing
    earlier slices (here slices of 1024 rows, a value to quote at row 1500): those rows are
    dropped, so each row reaches the file once."""
    monkeypatch.setattr(formats, "SLICE_ROWS", 1024)  # Arrow's slices; batches stay whole
    texts = [f"v{n}" for n in range(3000)]
    texts[1500] = "x,y"
    dialect = formats._Dialect(FileOptions(format="csv"), columns=2)
    batches = [
        pa.record_batch([pa.array(texts[:2000]), pa.array(range(2000))], names=["s", "n"]),
        pa.record_batch([pa.array(texts[2000:]), pa.array(range(2000, 3000))], names=["s", "n"]),
    ]
    written = b"".join(dialect.lines(batch) for batch in batches).decode()
    expected = io.StringIO()
    csv.writer(expected, lineterminator="\n").writerows(zip(texts, range(3000), strict=True))
    assert written == expected.getvalue()


PAST_ASCII = {
    "minimal": 's§n\na§1\n"b§c"§\n§3\n',
    "all": '"s"§"n"\n"a"§"1"\n"b§c"§""\n""§"3"\n',
    "non_null": '"s"§"n"\n"a"§"1"\n"b§c"§\n§"3"\n',
    "non_numeric": '"s"§"n"\n"a"§1\n"b§c"§\n§3\n',
}


@pytest.mark.parametrize("mode", [*sorted(QUOTED), "none"])
def test_a_delimiter_past_ascii_writes_every_quote_mode(
    mode: str, folder_destination: MakeDestination, names: Callable[..., NameValues]
) -> None:
    """Arrow's writer takes ASCII delimiters only: the others go field by field, alike."""
    table = pa.table({"s": ["a", "b§c", None], "n": pa.array([1, None, 3], pa.int64())})
    if mode == "none":
        with pytest.raises(TerminalDeliveryError, match="quote: none cannot write"):
            _send(folder_destination({"quote": mode, "delimiter": "§"}), table, names)
        return
    (delivery,) = _send(folder_destination({"quote": mode, "delimiter": "§"}), table, names)
    assert _file(delivery).decode() == PAST_ASCII[mode]
