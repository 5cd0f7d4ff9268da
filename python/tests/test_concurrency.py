"""Two Python processes appending to one table at once: both commits land."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from conftest import bars

import timeseries_table as tt

WRITER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[3])
    from conftest import bars
    import timeseries_table as tt

    table = tt.Table.open(sys.argv[1])
    symbol = sys.argv[2]
    for day in range(4):
        table.append(bars(day, symbols=[symbol]))
    print("done", symbol)
    """
)


def test_two_processes_append_concurrently(new_table, tmp_path):
    table = new_table()
    tests = str(__import__("pathlib").Path(__file__).parent)
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, table.uri, symbol, tests],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for symbol in ("AAPL", "MSFT")
    ]
    for writer in writers:
        out, err = writer.communicate(timeout=300)
        assert writer.returncode == 0, err
        assert out.startswith("done")
    final = tt.Table.open(table.uri)
    assert final.version == 1 + 8
    history = final.history()
    assert history.column("operation").to_pylist()[1:] == ["append"] * 8
    assert sum(final.segments().column("row_count").to_pylist()) == 8 * bars(0, symbols=["AAPL"]).num_rows
