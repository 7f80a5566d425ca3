//! Arrow schemas of the tables nq writes: ticks and bars (`nq-data`), and the
//! backtest reports (`nq-eval`). Readers accept more variants (SPEC section 3);
//! these are what the writers produce. Every timestamp is `timestamp[ns, UTC]`.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::Action;

/// `timestamp[ns, UTC]`.
pub fn timestamp_ns_utc() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
}

/// Ticks: `ts`, `price` (points), `size` (contracts), `side` (`B`, `A` or `N`).
pub fn ticks() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("ts", timestamp_ns_utc(), false),
        Field::new("price", DataType::Float64, false),
        Field::new("size", DataType::Int64, false),
        Field::new("side", DataType::Utf8, false),
    ]))
}

/// Bars stamped with their start: `ts`, `open`, `high`, `low`, `close`, `volume`.
pub fn bars() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("ts", timestamp_ns_utc(), false),
        Field::new("open", DataType::Float64, false),
        Field::new("high", DataType::Float64, false),
        Field::new("low", DataType::Float64, false),
        Field::new("close", DataType::Float64, false),
        Field::new("volume", DataType::Int64, false),
    ]))
}

/// `trades.parquet`: one row per round trip. Money in dollars; `pnl_usd` is net
/// of `commission_usd`; `mae_usd`/`mfe_usd` are the worst and best open P&L
/// seen during the trade (before costs).
pub fn trades() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("policy", DataType::Utf8, false),
        Field::new("entry_time", timestamp_ns_utc(), false),
        Field::new("exit_time", timestamp_ns_utc(), false),
        Field::new("side", DataType::Utf8, false),
        Field::new("contracts", DataType::Int32, false),
        Field::new("entry_price", DataType::Float64, false),
        Field::new("exit_price", DataType::Float64, false),
        Field::new("gross_pnl_usd", DataType::Float64, false),
        Field::new("commission_usd", DataType::Float64, false),
        Field::new("pnl_usd", DataType::Float64, false),
        Field::new("exit_reason", DataType::Utf8, false),
        Field::new("bars_held", DataType::Int32, false),
        Field::new("mae_usd", DataType::Float64, false),
        Field::new("mfe_usd", DataType::Float64, false),
    ]))
}

/// Column name of the probability of `action` in `equity.parquet`.
pub fn probability_column(action: Action) -> String {
    format!("p_{}", action.name().to_ascii_lowercase())
}

/// `equity.parquet`: one row per bar close, per policy or baseline, in time
/// order (`ts` is the bar's end). Equity, balance, position (held at the
/// close), `kind`, close and ATR (points) are in every row. `kind` says why
/// the row is there: a decision (`policy`, `session_end` or
/// `drawdown_breached`), or why there was none (`warmup`: the feature window
/// is not full yet; `outside_session`: the bar lies outside the session
/// traded). Rows without a decision have null `action`, `action_name`,
/// probabilities, `mask`, `target_position`, `stop_price` and `target_price`.
/// In a decision row, probabilities of actions outside the checkpoint's
/// action set are null; `mask` has bit `i` set when action code `i` was
/// allowed; the columns after `mask` let a user audit the decision: the
/// position to hold after it, the stop and target to hold (null when that
/// position is flat; for an entry placed from the close), and the bar close
/// and ATR it was made at.
pub fn equity() -> SchemaRef {
    let mut fields = vec![
        Field::new("policy", DataType::Utf8, false),
        Field::new("ts", timestamp_ns_utc(), false),
        Field::new("equity_usd", DataType::Float64, false),
        Field::new("balance_usd", DataType::Float64, false),
        Field::new("position", DataType::Int8, false),
        Field::new("action", DataType::UInt8, true),
        Field::new("action_name", DataType::Utf8, true),
    ];
    for a in Action::ALL {
        fields.push(Field::new(probability_column(a), DataType::Float32, true));
    }
    fields.push(Field::new("mask", DataType::UInt8, true));
    fields.extend([
        Field::new("kind", DataType::Utf8, false),
        Field::new("target_position", DataType::Int8, true),
        Field::new("stop_price", DataType::Float64, true),
        Field::new("target_price", DataType::Float64, true),
        Field::new("close", DataType::Float64, false),
        Field::new("atr", DataType::Float64, false),
    ]);
    Arc::new(Schema::new(fields))
}

/// `summary.parquet`: one row per policy or baseline evaluated.
pub fn summary() -> SchemaRef {
    let mut fields = vec![
        Field::new("policy", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("trades", DataType::Int64, false),
        Field::new("win_rate", DataType::Float64, false),
        Field::new("net_pnl_usd", DataType::Float64, false),
        Field::new("gross_pnl_usd", DataType::Float64, false),
        Field::new("commission_usd", DataType::Float64, false),
        Field::new("max_drawdown_usd", DataType::Float64, false),
        Field::new("profit_factor", DataType::Float64, true),
        Field::new("avg_win_usd", DataType::Float64, true),
        Field::new("avg_loss_usd", DataType::Float64, true),
        Field::new("sharpe_daily", DataType::Float64, true),
        Field::new("sortino_daily", DataType::Float64, true),
        Field::new("exposure", DataType::Float64, false),
        Field::new("days", DataType::Int64, false),
        Field::new("drawdown_breach", DataType::Boolean, false),
    ];
    for a in Action::ALL {
        fields.push(Field::new(
            format!("n_{}", a.name().to_ascii_lowercase()),
            DataType::Int64,
            false,
        ));
    }
    // Last, so readers of the earlier columns by position are unaffected: the
    // row of the best policy by the comparison's metric.
    fields.push(Field::new("best", DataType::Boolean, false));
    // After `best`: whether the days were seen in training (IN-SAMPLE,
    // OUT-OF-SAMPLE, MIXED, UNKNOWN; empty for baselines), and the
    // significance figures (null for baselines).
    fields.push(Field::new("sample", DataType::Utf8, false));
    for name in [
        "mean_daily_pnl_usd",
        "mean_daily_pnl_ci_lo_usd",
        "mean_daily_pnl_ci_hi_usd",
        "sharpe_ci_lo",
        "sharpe_ci_hi",
        "null_percentile",
        "null_p_value",
        "deflated_sharpe",
    ] {
        fields.push(Field::new(name, DataType::Float64, true));
    }
    fields.push(Field::new("null_seeds", DataType::Int64, true));
    fields.push(Field::new("trials", DataType::Int64, true));
    fields.push(Field::new("edge_detected", DataType::Boolean, true));
    fields.push(Field::new("verdict", DataType::Utf8, true));
    Arc::new(Schema::new(fields))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_schemas_use_utc_nanoseconds() {
        for schema in [ticks(), bars(), trades(), equity()] {
            let ts: Vec<_> = schema
                .fields()
                .iter()
                .filter(|f| matches!(f.data_type(), DataType::Timestamp(..)))
                .collect();
            assert!(!ts.is_empty());
            for f in ts {
                assert_eq!(f.data_type(), &timestamp_ns_utc(), "{}", f.name());
            }
        }
        assert_eq!(probability_column(Action::SlToBe), "p_sl_to_be");
        assert!(equity().field_with_name("p_trail_loosen").is_ok());
        assert!(summary().field_with_name("n_hold").is_ok());
    }

    /// Readers select equity columns by name and sometimes by position: new
    /// columns only ever go at the end.
    #[test]
    fn equity_columns_are_only_ever_appended() {
        let schema = equity();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(
            names,
            [
                "policy",
                "ts",
                "equity_usd",
                "balance_usd",
                "position",
                "action",
                "action_name",
                "p_hold",
                "p_buy",
                "p_sell",
                "p_sl_to_be",
                "p_trail_tighten",
                "p_trail_loosen",
                "mask",
                "kind",
                "target_position",
                "stop_price",
                "target_price",
                "close",
                "atr",
            ]
        );
        let nullable: Vec<&str> = schema
            .fields()
            .iter()
            .filter(|f| f.is_nullable())
            .map(|f| f.name().as_str())
            .collect();
        // What a row without a decision leaves out.
        assert_eq!(nullable[..2], ["action", "action_name"]);
        assert_eq!(
            nullable[8..],
            ["mask", "target_position", "stop_price", "target_price"]
        );
    }
}
