//! `equity.svg` (equity curve, drawdown, daily P&L bars) and `report.html`
//! (the summary table and the picture inline), readable in a browser with no
//! network. Plain text with fixed precision, so identical inputs give
//! identical files.

use std::fmt::Write;

use super::summary::daily_pnl;
use super::{Run, Summary};

const WIDTH: f64 = 900.0;
const PANEL: f64 = 180.0;
const GAP: f64 = 40.0;
const LEFT: f64 = 80.0;

/// Three panels for `run`: equity, drawdown from the running peak, daily P&L.
/// The equity and drawdown curves are drawn at the decision bars (every bar
/// would add the flat stretches outside the session, point by point); the
/// daily P&L bars are the summary's, over every day with a bar row.
pub fn equity_svg(run: &Run) -> String {
    let equity: Vec<f64> = run.decision_rows().map(|(r, _)| r.equity).collect();
    let mut peak = run.sim.starting_balance;
    let drawdown: Vec<f64> = equity
        .iter()
        .map(|e| {
            peak = peak.max(*e);
            e - peak
        })
        .collect();
    let daily = daily_pnl(run);
    let height = 3.0 * PANEL + 4.0 * GAP;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let top = |i: usize| GAP + i as f64 * (PANEL + GAP);
    line_panel(
        &mut svg,
        top(0),
        &format!("Equity ($), {}", escape(&run.name)),
        &equity,
        "#1f77b4",
    );
    line_panel(
        &mut svg,
        top(1),
        "Drawdown from peak ($)",
        &drawdown,
        "#d62728",
    );
    bar_panel(&mut svg, top(2), "Daily P&L ($)", &daily);
    svg.push_str("</svg>\n");
    svg
}

/// Bars grow from zero, so zero is always in the range.
fn range(values: &[f64]) -> (f64, f64) {
    let lo = values.iter().copied().fold(0.0f64, f64::min);
    let hi = values.iter().copied().fold(0.0f64, f64::max);
    if hi > lo {
        (lo, hi)
    } else {
        (lo - 1.0, hi + 1.0)
    }
}

fn frame(svg: &mut String, top: f64, title: &str, lo: f64, hi: f64) {
    let right = WIDTH - 20.0;
    let _ = writeln!(
        svg,
        r##"<text x="{LEFT}" y="{:.1}" font-weight="bold">{title}</text><rect x="{LEFT}" y="{top:.1}" width="{:.1}" height="{PANEL}" fill="none" stroke="#999"/><text x="{:.1}" y="{:.1}" text-anchor="end">{hi:.0}</text><text x="{:.1}" y="{:.1}" text-anchor="end">{lo:.0}</text>"##,
        top - 6.0,
        right - LEFT,
        LEFT - 4.0,
        top + 10.0,
        LEFT - 4.0,
        top + PANEL
    );
}

fn y_of(v: f64, top: f64, lo: f64, hi: f64) -> f64 {
    top + PANEL * (hi - v) / (hi - lo)
}

fn line_panel(svg: &mut String, top: f64, title: &str, values: &[f64], colour: &str) {
    // Equity is not anchored at 0: its own range shows the movement.
    let (lo, hi) = if values.is_empty() {
        (0.0, 1.0)
    } else {
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if hi > lo {
            (lo, hi)
        } else {
            (lo - 1.0, hi + 1.0)
        }
    };
    frame(svg, top, title, lo, hi);
    let span = (WIDTH - 20.0 - LEFT) / (values.len().max(2) - 1) as f64;
    let mut points = String::new();
    for (i, v) in values.iter().enumerate() {
        let _ = write!(
            points,
            "{:.1},{:.1} ",
            LEFT + i as f64 * span,
            y_of(*v, top, lo, hi)
        );
    }
    let _ = writeln!(
        svg,
        r#"<polyline fill="none" stroke="{colour}" stroke-width="1" points="{}"/>"#,
        points.trim_end()
    );
}

fn bar_panel(svg: &mut String, top: f64, title: &str, values: &[f64]) {
    let (lo, hi) = range(values);
    frame(svg, top, title, lo, hi);
    let slot = (WIDTH - 20.0 - LEFT) / values.len().max(1) as f64;
    let zero = y_of(0.0, top, lo, hi);
    for (i, v) in values.iter().enumerate() {
        let y = y_of(*v, top, lo, hi);
        let colour = if *v >= 0.0 { "#2ca02c" } else { "#d62728" };
        let _ = writeln!(
            svg,
            r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{colour}"/>"#,
            LEFT + i as f64 * slot + slot * 0.1,
            y.min(zero),
            slot * 0.8,
            (y - zero).abs()
        );
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A self-contained page: the summary table (rows are metrics, columns are
/// the runs) and `svg` inline.
pub fn report_html(summaries: &[Summary], svg: &str) -> String {
    type Row = (&'static str, fn(&Summary) -> String);
    let rows: [Row; 14] = [
        ("kind", |s| s.kind.clone()),
        ("trades", |s| s.trades.to_string()),
        ("win rate", |s| format!("{:.1}%", s.win_rate * 100.0)),
        ("net P&amp;L $", |s| format!("{:.2}", s.net_pnl_usd)),
        ("gross P&amp;L $", |s| format!("{:.2}", s.gross_pnl_usd)),
        ("commissions $", |s| format!("{:.2}", s.commission_usd)),
        ("max drawdown $", |s| format!("{:.2}", s.max_drawdown_usd)),
        ("profit factor", |s| {
            s.profit_factor.map_or("-".into(), |v| format!("{v:.2}"))
        }),
        ("avg win $", |s| {
            s.avg_win_usd.map_or("-".into(), |v| format!("{v:.2}"))
        }),
        ("avg loss $", |s| {
            s.avg_loss_usd.map_or("-".into(), |v| format!("{v:.2}"))
        }),
        ("Sharpe (daily, &radic;252)", |s| {
            s.sharpe_daily.map_or("-".into(), |v| format!("{v:.2}"))
        }),
        ("Sortino (daily, &radic;252)", |s| {
            s.sortino_daily.map_or("-".into(), |v| format!("{v:.2}"))
        }),
        ("exposure", |s| format!("{:.1}%", s.exposure * 100.0)),
        ("drawdown breach", |s| {
            if s.drawdown_breach {
                "YES".into()
            } else {
                "no".into()
            }
        }),
    ];
    let mut html = String::from(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>nq-eval report</title>\n\
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}\
td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}th:first-child,td:first-child{text-align:left}</style>\n\
</head><body>\n<h1>nq-eval report</h1>\n<table>\n<tr><th></th>",
    );
    for s in summaries {
        let _ = write!(html, "<th>{}</th>", escape(&s.policy));
    }
    html.push_str("</tr>\n");
    for (name, value) in rows {
        let _ = write!(html, "<tr><td>{name}</td>");
        for s in summaries {
            let _ = write!(html, "<td>{}</td>", escape(&value(s)));
        }
        html.push_str("</tr>\n");
    }
    html.push_str("</table>\n<h2>Equity, drawdown and daily P&amp;L</h2>\n");
    html.push_str(svg);
    html.push_str("</body></html>\n");
    html
}
