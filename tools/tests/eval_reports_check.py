"""Reads an nq-eval report folder with pyarrow (what a Python user does) and
checks the columns, that trades and equity agree with the summary, that
equity has one row per bar close for every run (the same times, strictly
increasing, warm-up first), that each decision row's decision columns (kind,
target position, bracket, close, ATR) are consistent, and that the rows
without a decision leave them null. With pandas installed, the same through
pandas.

With NQ_CHECK_BLOCK_PANDAS=1, pandas is made unimportable first: pyarrow
alone must read the report (timestamps are compared as int64 nanoseconds,
which pyarrow converts to Python without pandas).

Usage: python3 eval_reports_check.py REPORT_DIR
Exit 0 when the report is consistent; an AssertionError otherwise.
"""
import json
import math
import os
import sys
from pathlib import Path

if os.environ.get("NQ_CHECK_BLOCK_PANDAS") == "1":
    class _NoPandas:
        """Makes `import pandas` fail as if it were not installed."""

        @staticmethod
        def find_spec(name, path=None, target=None):
            if name == "pandas" or name.startswith("pandas."):
                raise ModuleNotFoundError("No module named 'pandas' (blocked)", name=name)
            return None

    sys.meta_path.insert(0, _NoPandas)

import pyarrow as pa
import pyarrow.parquet as pq

ACTIONS = ["hold", "buy", "sell", "sl_to_be", "trail_tighten", "trail_loosen"]
TS = pa.timestamp("ns", tz="UTC")
# The columns that explain each decision, after `mask`, and their types.
DECISION_COLUMNS = [
    ("kind", pa.string(), False),
    ("target_position", pa.int8(), True),
    ("stop_price", pa.float64(), True),
    ("target_price", pa.float64(), True),
    ("close", pa.float64(), False),
    ("atr", pa.float64(), False),
]
KINDS = {"policy", "session_end", "drawdown_breached"}
# Bar closes without a decision, and the columns they leave null.
NO_DECISION = {"warmup", "outside_session"}
NULL_WITHOUT_DECISION = ["action", "action_name", "mask", "target_position", "stop_price",
                         "target_price"] + ["p_" + a for a in ACTIONS]


def spec_target(position: int, action: str) -> int:
    """SPEC section 6: flat+BUY opens long, flat+SELL opens short, the
    opposite action closes, anything else keeps the position."""
    if position == 0 and action in ("BUY", "SELL"):
        return 1 if action == "BUY" else -1
    if (position, action) in ((1, "SELL"), (-1, "BUY")):
        return 0
    return position


def check_bar_without_decision(e: dict) -> None:
    assert e["kind"] in NO_DECISION, e
    for name in NULL_WITHOUT_DECISION:
        assert e[name] is None, (name, e)
    assert e["atr"] > 0 and math.isfinite(e["close"]), e
    if e["position"] == 0:
        # Flat: nothing open to mark, the equity is the cash.
        assert e["equity_usd"] == e["balance_usd"], e


def check_decision(e: dict) -> None:
    target = e["target_position"]
    assert e["kind"] in KINDS, e
    for name in ["action", "action_name", "mask", "target_position"]:
        assert e[name] is not None, (name, e)
    if e["kind"] == "policy":
        assert target == spec_target(e["position"], e["action_name"]), e
    else:
        assert (e["action_name"], target) == ("HOLD", 0), e
    assert e["atr"] > 0 and math.isfinite(e["close"]), e
    if e["policy"] == "buy_and_hold":
        # Long from the first RTH decision to the session end, with no
        # bracket: BUY when flat, HOLD otherwise.
        assert e["stop_price"] is None and e["target_price"] is None, e
        assert e["action_name"] == ("BUY" if e["position"] == 0 and e["kind"] == "policy"
                                    and e["mask"] & 2 else "HOLD"), e
        return
    assert (e["stop_price"] is None) == (target == 0), e
    assert (e["target_price"] is None) == (target == 0), e
    if target != 0:
        assert (e["close"] - e["stop_price"]) * target > 0, e
        assert (e["target_price"] - e["close"]) * target >= 0, e


def check_with_pandas(folder: Path) -> str:
    try:
        import pandas as pd
    except ImportError:
        return "pandas blocked" if os.environ.get("NQ_CHECK_BLOCK_PANDAS") == "1" else \
            "pandas not installed"
    # Rows without a decision hold nulls in the integer columns: the
    # nullable dtypes keep them integers (plain numpy ones would be floats).
    df = pd.read_parquet(folder / "equity.parquet", dtype_backend="numpy_nullable")
    assert str(df["target_position"].dtype) == "Int8", df.dtypes
    assert str(df["position"].dtype) == "Int8", df.dtypes
    bars = df[df["kind"].isin(NO_DECISION)]
    assert bars[NULL_WITHOUT_DECISION].isna().all().all()
    per_run = df.groupby("policy", sort=False)["ts"]
    assert per_run.apply(lambda ts: ts.is_monotonic_increasing and ts.is_unique).all()
    df = df[~df["kind"].isin(NO_DECISION)]
    assert df["target_position"].notna().all() and df["action"].notna().all()
    hold = df[df["policy"] == "buy_and_hold"]
    assert hold[["stop_price", "target_price"]].isna().all().all()
    df = df[df["policy"] != "buy_and_hold"]
    assert str(df["stop_price"].dtype) == "Float64", df.dtypes
    flat = df["target_position"] == 0
    assert df.loc[flat, ["stop_price", "target_price"]].isna().all().all()
    assert df.loc[~flat, ["stop_price", "target_price"]].notna().all().all()
    longs, shorts = df[df["target_position"] == 1], df[df["target_position"] == -1]
    assert (longs["stop_price"] < longs["close"]).all()
    assert (shorts["stop_price"] > shorts["close"]).all()
    forced = df[df["kind"] != "policy"]
    assert (forced["target_position"] == 0).all() and (forced["action_name"] == "HOLD").all()
    summary = pd.read_parquet(folder / "summary.parquet")
    best = summary.loc[summary["best"], "policy"].tolist()
    from_json = pd.json_normalize(json.loads((folder / "summary.json").read_text()), "summaries")
    assert from_json["policy"].tolist() == summary["policy"].tolist()
    assert from_json.loc[from_json["best"], "policy"].tolist() == best, best
    return "pandas agrees"


def as_rows(table: pa.Table) -> list:
    """Rows as dicts, nanosecond timestamps as int64 ns: pyarrow's own
    conversion of them to Python needs pandas (datetime has microseconds)."""
    for i, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type):
            table = table.set_column(i, field.name, table.column(i).cast(pa.int64()))
    return table.to_pylist()


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
    # Added after `mask`, so code reading the older columns by position still works.
    after_mask = equity.column_names[equity.column_names.index("mask") + 1:]
    assert after_mask == [name for name, _, _ in DECISION_COLUMNS], after_mask
    for name, kind, nullable in DECISION_COLUMNS:
        field = equity.schema.field(name)
        assert (field.type, field.nullable) == (kind, nullable), field
    for name in NULL_WITHOUT_DECISION:
        assert equity.schema.field(name).nullable, name

    rows = summary.to_pylist()
    # summary.json: {"sort_by", "annualisation", "best", "summaries": [...]}, the
    # summaries in summary.parquet's order; the best policy flagged in both.
    assert [r["policy"] for r in rows] == [r["policy"] for r in summary_json["summaries"]]
    assert summary_json["sort_by"], summary_json
    assert [r["policy"] for r in rows if r["best"]] == [summary_json["best"]], rows
    assert rows[0]["best"] and rows[0]["kind"] == "policy", rows[0]
    assert summary.schema.field("best").type == pa.bool_(), summary.schema
    trade_rows = as_rows(trades)
    equity_rows = as_rows(equity)
    bar_closes = None
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
        times = [e["ts"] for e in curve]
        assert all(a < b for a, b in zip(times, times[1:])), row["policy"]
        # Every run has a row at every bar close: the same times.
        bar_closes = bar_closes or times
        assert times == bar_closes, row["policy"]
        kinds = [e["kind"] for e in curve]
        warmup = kinds.count("warmup")
        assert warmup > 0 and kinds[:warmup] == ["warmup"] * warmup, row["policy"]
        decisions = [e for e in curve if e["kind"] not in NO_DECISION]
        for e in curve:
            if e["kind"] in NO_DECISION:
                check_bar_without_decision(e)
            else:
                check_decision(e)
        for before, after in zip(curve, curve[1:]):
            # The next bar starts from the decision's target, or flat after an exit.
            if before["kind"] not in NO_DECISION:
                assert after["position"] in (before["target_position"], 0), (before, after)
        assert len(decisions) == sum(row["n_" + a] for a in ACTIONS), row["policy"]
        # Exposure is over the decision bars.
        in_position = sum(1 for e in decisions if e["position"] != 0)
        if decisions:
            assert math.isclose(in_position / len(decisions), row["exposure"], abs_tol=1e-12)
    pandas = check_with_pandas(folder)
    print(f"ok: {len(rows)} summaries, {len(trade_rows)} trades, {len(equity_rows)} equity rows"
          f" ({pandas})")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
