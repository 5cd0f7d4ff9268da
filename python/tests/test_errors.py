"""Bad input raises a specific exception, with the CLI's message, and changes nothing."""

from __future__ import annotations

import pyarrow as pa
import pytest
from conftest import bars

import timeseries_table as tt


@pytest.fixture
def table(new_table):
    table = new_table()
    table.append(bars(0))
    return table


def unchanged(table: tt.Table, version: int) -> None:
    fresh = tt.Table.open(table.uri)
    assert fresh.version == version
    assert fresh.segments().column("row_count").to_pylist() == [bars(0).num_rows]


def test_wrong_argument_types(table):
    with pytest.raises(TypeError, match="append takes a pyarrow Table .* got int"):
        table.append(42)
    with pytest.raises(TypeError, match="append takes .* got dict"):
        table.append({"ts": [1]})
    with pytest.raises(TypeError, match="start must be a string or a datetime, got int"):
        table.coverage(1, 2)
    unchanged(table, 2)


def test_a_column_of_the_wrong_type(table):
    data = bars(1)
    wrong = data.set_column(data.schema.get_field_index("volume"), "volume", data["volume"].cast(pa.string()))
    with pytest.raises(tt.SchemaMismatchError, match="volume") as raised:
        table.append(wrong)
    assert isinstance(raised.value, tt.InvalidInputError)
    unchanged(table, 2)


def test_a_missing_column(table):
    with pytest.raises(tt.SchemaMismatchError, match="price"):
        table.append(bars(1).drop_columns(["price"]))
    unchanged(table, 2)


def test_a_time_column_that_is_not_a_time(new_table):
    table = new_table()
    data = bars(0)
    as_text = data.set_column(0, "ts", data["ts"].cast(pa.string()))
    with pytest.raises(tt.InvalidInputError, match="ts"):
        table.append(as_text)
    assert tt.Table.open(table.uri).version == 1


def test_an_overlap(table):
    with pytest.raises(tt.OverlapError, match="overlap: entity symbol=AAPL already has data") as raised:
        table.append(bars(0, symbols=["AAPL"]))
    assert "nothing was committed" in str(raised.value)
    unchanged(table, 2)


def test_a_stream_that_fails_half_way_commits_nothing(table):
    data = bars(1)

    def batches():
        yield data.to_batches()[0]
        raise RuntimeError("the source went away")

    reader = pa.RecordBatchReader.from_batches(data.schema, batches())
    with pytest.raises(tt.TimeseriesTableError, match="the source went away"):
        table.append(reader)
    unchanged(table, 2)


def test_bad_uris(tmp_path):
    with pytest.raises(tt.TableNotFoundError, match="no table at .*create the table first"):
        tt.Table.open(str(tmp_path / "nothing-here"))
    with pytest.raises(tt.InvalidInputError):
        tt.Table.open("nosuchscheme://bucket/table")
    with pytest.raises(tt.TableExistsError, match="already exists"):
        tt.Table.create(str(tmp_path / "t"), time_column="ts", bucket="1m")
        tt.Table.create(str(tmp_path / "t"), time_column="ts", bucket="1m")


def test_bad_create_arguments(tmp_path):
    with pytest.raises(tt.InvalidInputError, match="bucket"):
        tt.Table.create(str(tmp_path / "t"), time_column="ts", bucket="fortnightly")
    with pytest.raises(tt.InvalidInputError, match="schedule"):
        tt.Table.create(str(tmp_path / "u"), time_column="ts", bucket="1m", schedule="Mon-Fri 25:00-26:00")
    with pytest.raises(TypeError):
        tt.Table.create(str(tmp_path / "v"), time_column="ts")


def test_a_missing_file(table, tmp_path):
    with pytest.raises(tt.StorageError, match="missing.parquet"):
        table.append(tmp_path / "missing.parquet")
    unchanged(table, 2)


def test_half_a_window(table):
    with pytest.raises(tt.InvalidInputError, match="both start and end"):
        table.gaps(start="2024-01-02")


def test_an_unknown_table_function():
    with pytest.raises(ValueError, match="unknown table function 'nope'; the functions are coverage, gaps"):
        tt.TableFunction("nope")
    assert tt.TableFunction("snapshot").name == "snapshot"
