"""A table on S3 (the moto server ``scripts/test`` starts), queried from DataFusion in
Python: the plans carry the table's store across the FFI boundary."""

from __future__ import annotations

import os
import uuid

import pytest
from conftest import bars
from datafusion import SessionContext

import timeseries_table as tt


@pytest.fixture
def s3():
    endpoint = os.environ.get("TSQ_TEST_S3_ENDPOINT")
    if not endpoint:
        pytest.skip("skipped: no S3 endpoint (run scripts/test to test on S3)")
    bucket = os.environ.get("TSQ_TEST_S3_BUCKET", "tsq-test")
    options = {
        "aws.endpoint": endpoint,
        "aws.access_key_id": "test",
        "aws.secret_access_key": "test",
        "aws.region": "us-east-1",
        "aws.allow_http": "true",
    }
    return f"s3://{bucket}/python-{uuid.uuid4().hex}/bars", options


def test_a_table_on_s3_in_a_python_session(s3):
    uri, options = s3
    table = tt.Table.create(uri, time_column="ts", bucket="1m", entity_columns=["symbol"], storage_options=options)
    table.append(bars(0))
    table.append(bars(1))
    ctx = SessionContext()
    ctx.register_table("bars", tt.Table.open(uri, storage_options=options))
    tt.register_functions(ctx)
    count = ctx.sql("SELECT count(*) AS n FROM bars WHERE ts >= '2024-01-03T00:00:00Z'").to_arrow_table()
    assert count.column("n").to_pylist() == [bars(1).num_rows]
    old = ctx.sql("SELECT count(*) AS n FROM snapshot('bars', 2)").to_arrow_table()
    assert old.column("n").to_pylist() == [bars(0).num_rows]
    segments = ctx.sql("SELECT count(*) AS n FROM segments('bars')").to_arrow_table()
    assert segments.column("n").to_pylist() == [2]


def test_wrong_credentials_raise_a_storage_error(s3):
    uri, options = s3
    endpoint = os.environ.get("TSQ_TEST_S3_AUTH_ENDPOINT")
    if not endpoint:
        pytest.skip("skipped: no credential-checking S3 endpoint (run scripts/test)")
    with pytest.raises(tt.StorageError, match="denied|credentials|Forbidden|403"):
        tt.Table.create(uri, time_column="ts", bucket="1m", storage_options={**options, "aws.endpoint": endpoint})
