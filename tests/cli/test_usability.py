"""Small things a user trips over: --now in the forms the tool prints, --version, help without
type noise, whole numbers in narrow terminals, warnings and one-line errors for odd input."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import pyarrow as pa
import pytest
from rich.console import Console
from rich.table import Table
from typer.testing import CliRunner

from audience.activation.insights import BreakdownRow, Insights
from audience.activation.plan import CampaignPlan, GroupCount, SubAudienceCount
from audience.cli.campaigns import plan_table
from audience.cli.main import app
from audience.cli.render import (
    arrow_table,
    breakdown_table,
    insights_table,
    segments_table,
    summary_table,
)
from audience.workspace import Workspace, init_workspace

runner = CliRunner()


def audience(*args: object) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def cli_workspace(fresh_workspace: Workspace) -> Workspace:
    """The sample workspace with an audience.toml, and a segment relative to today."""
    init_workspace(fresh_workspace.directory)
    segment = fresh_workspace.directory / "recent.yaml"
    segment.write_text(
        "kind: segment\nname: Recent\n"
        "where: {attribute: last_order_date, op: within_last, value: 90, unit: days}\n"
    )
    assert audience("apply", "-w", fresh_workspace.directory, "-f", segment)[0] == 0
    return fresh_workspace


@pytest.mark.parametrize(
    ("now", "boundary"),
    [
        ("2026-11-23", "2026-08-25"),
        ("2026-11-23T15:30:00", "2026-08-25"),
        ("2026-11-23T15:30:00.123456", "2026-08-25"),
        ("2026-11-23T15:30:00Z", "2026-08-25"),
        ("2026-11-23T15:30:00+00:00", "2026-08-25"),
        ("2026-11-23T15:30:00.5+00:00", "2026-08-25"),
        ("2026-11-23 15:30:00", "2026-08-25"),
        ("2026-11-23T23:30:00-05:00", "2026-08-26"),  # already the 24th in UTC
    ],
)
def test_now_accepts_what_the_tool_prints(
    cli_workspace: Workspace, now: str, boundary: str
) -> None:
    code, out, err = audience(
        "segment", "sql", "Recent", "-w", cli_workspace.directory, "--now", now
    )
    assert code == 0, err
    assert f"'{boundary}'" in out


@pytest.mark.parametrize("now", ["yesterday", "2026-13-01", "23/11/2026", ""])
def test_bad_now_is_a_usage_error_naming_the_option(tmp_path: Path, now: str) -> None:
    code, _, err = audience("segment", "sql", "Recent", "-w", tmp_path, "--now", now)
    assert code == 2
    assert "--now" in err and "ISO 8601" in err


def test_version() -> None:
    code, out, _ = audience("--version")
    assert code == 0 and out.strip() == f"audience {version('audience')}"


@pytest.mark.parametrize(
    "command",
    [(), ("apply",), ("campaign",), ("campaign", "run"), ("campaign", "plan"), ("segment", "list")],
)
def test_help_shows_no_type_beside_flags(command: tuple[str, ...]) -> None:
    code, out, _ = audience(*command, "--help")
    assert code == 0 and "--help" in out
    assert "<bool>" not in out


BIG = 1_234_567_890


def rendered(table: Table) -> str:
    console = Console(width=80)
    with console.capture() as capture:
        console.print(table)
    return capture.get()


def insights(name: str) -> Insights:
    return Insights(
        segment=name,
        customers=BIG,
        customers_share=0.125,
        active_customers=BIG - 1,
        revenue_1y=98_765_432_109.0,
        revenue_1y_share=0.5,
        reachable_email=BIG - 2,
        reachable_sms=BIG - 3,
        reachable_mail=BIG - 4,
        revenue_per_customer=1_234.5,
        orders_per_customer=1.5,
        average_order_value=12_345.67,
        computed_at="2026-11-23T00:00:00+00:00",
        orders_as_of="2026-11-23T00:00:00+00:00",
        breakdown_by="state",
        breakdown=[
            BreakdownRow(value="a very long state value " * 4, customers=BIG, revenue_1y=1e10)
        ],
    )


def test_numbers_are_never_cut_at_80_columns() -> None:
    names = ["High value, recently active", "Lapsed big spenders who left us", "Loyal gold"]
    text = rendered(segments_table([insights(n) for n in names]))
    for number in (
        "1,234,567,890",
        "1,234,567,889",
        "98,765,432,109",
        "1,234,567,888",
        "12,345.67",
    ):
        assert number in text
    text = rendered(insights_table(insights("x")))
    assert "1,234,567,890" in text and "98,765,432,109.00" in text
    text = rendered(breakdown_table(insights("x")))
    assert "1,234,567,890" in text and "10,000,000,000.00" in text
    uri = "s3://acme-marketing-bucket/audiences/" + "Spring_Churn_Prevention_" * 4 + ".csv.gz"
    rows = [
        {
            "group": "Offer A with a long name",
            "destination": "marketing-s3",
            "rows": BIG,
            "uri": uri,
        }
    ]
    text = rendered(summary_table("Deliveries", rows, ["group", "destination", "rows", "uri"]))
    assert "1,234,567,890" in text
    plan = CampaignPlan(
        campaign="Spring",
        audience=BIG,
        excluded=0,
        unmatched=0,
        newly_qualified_only=False,
        sub_audiences=[
            SubAudienceCount(
                name="Everyone else, and a long name for a sub-audience " * 2,
                customers=BIG,
                groups=[GroupCount(name="Offer A " * 6, control=False, customers=BIG)],
            )
        ],
        shrink={},
    )
    assert "1,234,567,890" in rendered(plan_table(plan))


def test_wide_previews_keep_every_number() -> None:
    columns: dict[str, list[object]] = {f"text_{i}": ["some text value"] for i in range(20)}
    columns["lifetime_revenue"] = [98_765_432_109.5]
    columns["lifetime_order_count"] = [BIG]
    text = rendered(arrow_table("Preview", pa.table(columns), 80))
    assert "98,765,432,109.50" in text and "1,234,567,890" in text
    assert "lifetime_order_count" in text


def test_apply_warns_about_a_folder_without_yaml(cli_workspace: Workspace) -> None:
    empty = cli_workspace.directory / "nothing-here"
    empty.mkdir()
    (empty / "notes.txt").write_text("not a definition")
    code, _, err = audience("apply", "-w", cli_workspace.directory, "-f", empty)
    assert code == 0
    assert err.startswith("warning: ") and "holds no YAML documents" in err


def test_apply_of_a_binary_file_is_one_red_line(cli_workspace: Workspace) -> None:
    binary = cli_workspace.directory / "logo.yaml"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe")
    code, _, err = audience("apply", "-w", cli_workspace.directory, "-f", binary)
    assert code == 1
    assert err.strip().splitlines() == [
        f"error: {binary}: not UTF-8 text (byte 0x89 at offset 0); definitions are YAML text files"
    ]


def test_init_where_no_folder_can_be_made_is_one_red_line(tmp_path: Path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    code, _, err = audience("init", a_file / "workspace")
    assert code == 1
    assert err.strip().splitlines() == [
        f"error: cannot create the workspace in {a_file / 'workspace'}: Not a directory"
    ]
