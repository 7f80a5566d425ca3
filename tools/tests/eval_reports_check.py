"""Reads an nq-eval report folder with pyarrow (what a Python user does) and
checks the columns and that trades and equity agree with the summary.

Usage: python3 eval_reports_check.py REPORT_DIR
Exit 0 when the report is consistent; an AssertionError otherwise.
"""
import json
import math
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ACTIONS = ["hold", "buy", "sell", "sl_to_be", "trail_tighten", "trail_loosen"]
TS = pa.timestamp("ns", tz="UTC")


def main(folder: Path) -> None:
    trades = pq.read_table(folder / "trades.parquet")
    equity = pq.read_table(folder / "equity.parquet")
    summary = pq.read_table(folder / "summary.parquet")
    summary_json = json.loads((folder / "summary.json").read_text())

    for name in ["entry_time", "exit_time"]:
        assert trades.schema.field(name).type == TS, trades.schema
    assert equity.schema.field("ts").type == TS, equity.schema
    for name in ["policy", "side", "contracts", "entry_price", "exit_price", "gross_pnl_usd",
                 "commission_usd", "pnl_usd", "exit_reason", "bars_held", "mae_usd", "mfe_usd"]:
        assert name in trades.column_names, name
    for name in ["policy", "equity_usd", "balance_usd", "position", "action", "mask"] + [
            "p_" + a for a in ACTIONS]:
        assert name in equity.column_names, name

    rows = summary.to_pylist()
    assert [r["policy"] for r in rows] == [r["policy"] for r in summary_json]
    trade_rows = trades.to_pylist()
    equity_rows = equity.to_pylist()
    for row in rows:
        mine = [t for t in trade_rows if t["policy"] == row["policy"]]
        assert len(mine) == row["trades"], (row["policy"], len(mine), row["trades"])
        net = sum(t["pnl_usd"] for t in mine)
        assert math.isclose(net, row["net_pnl_usd"], abs_tol=1e-6), (net, row)
        for t in mine:
            assert t["exit_time"] >= t["entry_time"]
            assert math.isclose(t["gross_pnl_usd"] - t["commission_usd"], t["pnl_usd"],
                                abs_tol=1e-9)
        curve = [e for e in equity_rows if e["policy"] == row["policy"]]
        assert len(curve) == sum(row["n_" + a] for a in ACTIONS), row["policy"]
        in_position = sum(1 for e in curve if e["position"] != 0)
        if curve:
            assert math.isclose(in_position / len(curve), row["exposure"], abs_tol=1e-12)
    print(f"ok: {len(rows)} summaries, {len(trade_rows)} trades, {len(equity_rows)} equity rows")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
