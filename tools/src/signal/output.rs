//! One JSON object per output line, written into a buffer that is reused
//! for every line (no allocation once it has grown to the longest line).
//! Numbers are Rust's shortest round-trip representations: an f64 printed
//! here parses back to the same bits, an f32 probability too when read as
//! f32. Non-finite numbers, which JSON cannot carry, are `null`.

use std::io::Write;

use nq_formats::Action;
use nq_runtime::engine::Decision;
use nq_runtime::position::PositionView;

/// The reused line buffer.
#[derive(Debug, Default)]
pub struct JsonLine {
    buf: Vec<u8>,
    first: bool,
}

impl JsonLine {
    pub fn new() -> JsonLine {
        JsonLine {
            buf: Vec::with_capacity(512),
            first: true,
        }
    }

    /// Starts a new object `{"type":"<kind>"`.
    pub fn begin(&mut self, kind: &str) -> &mut Self {
        self.buf.clear();
        self.buf.push(b'{');
        self.first = true;
        self.str("type", kind)
    }

    fn key(&mut self, key: &str) {
        if !self.first {
            self.buf.push(b',');
        }
        self.first = false;
        self.buf.push(b'"');
        self.buf.extend_from_slice(key.as_bytes());
        self.buf.extend_from_slice(b"\":");
    }

    pub fn str(&mut self, key: &str, value: &str) -> &mut Self {
        self.key(key);
        escape_into(&mut self.buf, value.as_bytes());
        self
    }

    /// A string from a `Display` value, written without an intermediate
    /// `String`. For the program's own messages: they are not escaped.
    pub fn message(&mut self, key: &str, value: &dyn std::fmt::Display) -> &mut Self {
        self.key(key);
        let _ = write!(self.buf, "\"{value}\"");
        self
    }

    /// A string from raw input bytes: invalid UTF-8 becomes U+FFFD.
    pub fn bytes(&mut self, key: &str, value: &[u8]) -> &mut Self {
        self.key(key);
        escape_into(&mut self.buf, value);
        self
    }

    pub fn int(&mut self, key: &str, value: i64) -> &mut Self {
        self.key(key);
        // Writing into a Vec cannot fail.
        let _ = write!(self.buf, "{value}");
        self
    }

    pub fn bool(&mut self, key: &str, value: bool) -> &mut Self {
        self.key(key);
        self.buf
            .extend_from_slice(if value { b"true" } else { b"false" });
        self
    }

    pub fn num(&mut self, key: &str, value: f64) -> &mut Self {
        self.key(key);
        self.raw_f64(value);
        self
    }

    pub fn opt_num(&mut self, key: &str, value: Option<f64>) -> &mut Self {
        match value {
            Some(v) => self.num(key, v),
            None => {
                self.key(key);
                self.buf.extend_from_slice(b"null");
                self
            }
        }
    }

    /// The position the engine holds: `position`, and when not flat its
    /// `entry_price` and the `stop` and `target` it works (`null` where it
    /// has none: [`working_price`]).
    pub fn position(&mut self, view: &PositionView) -> &mut Self {
        self.int("position", i64::from(view.side));
        if view.side != 0 {
            let entry = view.entry_price;
            self.num("entry_price", entry)
                .opt_num("stop", working_price(Some(view.stop_price), entry))
                .opt_num("target", working_price(Some(view.target_price), entry));
        }
        self
    }

    fn raw_f64(&mut self, value: f64) {
        if value.is_finite() {
            let _ = write!(self.buf, "{value}");
        } else {
            self.buf.extend_from_slice(b"null");
        }
    }

    /// `"probs":{"HOLD":p,...}` and `"mask":["HOLD",...]` over the
    /// checkpoint's actions (codes `0..n_actions`).
    fn probs_and_mask(&mut self, d: &Decision) {
        let actions = &Action::ALL[..usize::from(d.n_actions).min(Action::ALL.len())];
        self.key("probs");
        self.buf.push(b'{');
        for (k, (a, p)) in actions.iter().zip(d.probs()).enumerate() {
            if k > 0 {
                self.buf.push(b',');
            }
            let _ = write!(self.buf, "\"{}\":", a.name());
            if p.is_finite() {
                let _ = write!(self.buf, "{p}");
            } else {
                self.buf.extend_from_slice(b"null");
            }
        }
        self.buf.push(b'}');
        self.key("mask");
        self.buf.push(b'[');
        let mut first = true;
        for a in actions.iter().filter(|a| d.mask.allows(**a)) {
            if !first {
                self.buf.push(b',');
            }
            first = false;
            let _ = write!(self.buf, "\"{}\"", a.name());
        }
        self.buf.push(b']');
    }

    /// The whole decision line after `begin("decision")` and `seq`.
    pub fn decision(&mut self, d: &Decision) -> &mut Self {
        self.int("ts_utc_ns", d.ts_ns)
            .int("bar_ts_utc_ns", d.bar_ts_ns)
            .str("kind", d.kind.name())
            .str("action", d.action.name())
            .int("position", i64::from(d.position))
            .int("target_position", i64::from(d.target_position))
            .opt_num("stop", working_price(d.stop_price, d.close))
            .opt_num("target", working_price(d.target_price, d.close));
        self.probs_and_mask(d);
        self.num("close", d.close)
            .num("atr", d.atr)
            .num("equity", d.equity)
    }

    /// Closes the object and returns the finished line, newline included.
    pub fn finish(&mut self) -> &[u8] {
        self.buf.extend_from_slice(b"}\n");
        &self.buf
    }
}

/// A stop or target price that can be worked: positive, finite and within
/// the price itself of `reference` (a close or an entry). A position the
/// execution system reported before the engine had an ATR, without its own
/// stop and target, has none, and the simulator marks that with prices out
/// of any market's reach (-7e13 below the entry, 7e13 above); printed, an
/// order router could place them. They are `null` here.
pub fn working_price(price: Option<f64>, reference: f64) -> Option<f64> {
    price.filter(|p| p.is_finite() && *p > 0.0 && (p - reference).abs() < reference.abs())
}

/// A JSON string literal of `value`, quotes included.
fn escape_into(buf: &mut Vec<u8>, value: &[u8]) {
    buf.push(b'"');
    for chunk in value.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => buf.extend_from_slice(b"\\\""),
                '\\' => buf.extend_from_slice(b"\\\\"),
                '\n' => buf.extend_from_slice(b"\\n"),
                '\r' => buf.extend_from_slice(b"\\r"),
                '\t' => buf.extend_from_slice(b"\\t"),
                c if (c as u32) < 0x20 || c == '\u{7f}' => {
                    let _ = write!(buf, "\\u{:04x}", c as u32);
                }
                c => {
                    let mut tmp = [0u8; 4];
                    buf.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
                }
            }
        }
        if !chunk.invalid().is_empty() {
            buf.extend_from_slice("\u{fffd}".as_bytes());
        }
    }
    buf.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_and_numbers_round_trip() {
        let mut line = JsonLine::new();
        line.begin("x")
            .bytes("input", b"a\"b\\c\x01\xff\td")
            .num("v", 0.1 + 0.2)
            .num("nan", f64::NAN)
            .opt_num("none", None)
            .int("i", -7);
        let text = std::str::from_utf8(line.finish()).unwrap().to_string();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["type"], "x");
        assert_eq!(v["input"], "a\"b\\c\u{1}\u{fffd}\td");
        assert_eq!(v["v"].as_f64().unwrap().to_bits(), (0.1f64 + 0.2).to_bits());
        assert!(v["nan"].is_null() && v["none"].is_null());
        assert_eq!(v["i"], -7);
        assert!(text.ends_with("}\n"));
    }

    #[test]
    fn only_workable_bracket_prices_are_printed() {
        assert_eq!(working_price(Some(20170.0), 20182.0), Some(20170.0));
        assert_eq!(working_price(None, 20182.0), None);
        // The simulator's "no bracket" marks, and impossible prices.
        for p in [-70368744157482.0, 70368744197846.0, 0.0, -1.0, f64::NAN] {
            assert_eq!(working_price(Some(p), 20182.0), None, "{p}");
        }
    }
}
