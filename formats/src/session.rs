//! Trading-session hours in America/New_York local time (SPEC section 4).
//!
//! Only the hours live here; the calendar that turns UTC into New York time
//! with the US daylight-saving rules is the runtime's.

/// A daily session `[start, end)` in minutes after local midnight, New York
/// time. When `start >= end` the session crosses midnight and belongs to the
/// calendar day on which it ends (the CME convention for the overnight session).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionHours {
    pub start_minute: u16,
    pub end_minute: u16,
}

impl SessionHours {
    /// Regular trading hours, 09:30-16:00.
    pub const RTH: SessionHours = SessionHours {
        start_minute: 9 * 60 + 30,
        end_minute: 16 * 60,
    };
    /// The CME Globex day, 18:00 to 17:00 the next day.
    pub const GLOBEX: SessionHours = SessionHours {
        start_minute: 18 * 60,
        end_minute: 17 * 60,
    };

    pub const fn crosses_midnight(&self) -> bool {
        self.start_minute >= self.end_minute
    }

    /// Length of the session in minutes.
    pub const fn minutes(&self) -> u32 {
        if self.crosses_midnight() {
            (24 * 60 - self.start_minute + self.end_minute) as u32
        } else {
            (self.end_minute - self.start_minute) as u32
        }
    }

    /// Parses `HH:MM-HH:MM`, or the names `rth` and `globex`.
    pub fn parse(s: &str) -> Option<SessionHours> {
        if s.eq_ignore_ascii_case("rth") {
            return Some(SessionHours::RTH);
        }
        if s.eq_ignore_ascii_case("globex") || s.eq_ignore_ascii_case("eth") {
            return Some(SessionHours::GLOBEX);
        }
        let (a, b) = s.split_once('-')?;
        let start_minute = parse_hhmm(a.trim())?;
        let end_minute = parse_hhmm(b.trim())?;
        Some(SessionHours {
            start_minute,
            end_minute,
        })
    }

    /// Writes `HH:MM-HH:MM` (the form [`SessionHours::parse`] reads back).
    pub fn write_to(&self, out: &mut impl core::fmt::Write) -> core::fmt::Result {
        write!(
            out,
            "{:02}:{:02}-{:02}:{:02}",
            self.start_minute / 60,
            self.start_minute % 60,
            self.end_minute / 60,
            self.end_minute % 60
        )
    }
}

impl core::fmt::Display for SessionHours {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.write_to(f)
    }
}

fn parse_hhmm(s: &str) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let h: u16 = h.parse().ok()?;
    let m: u16 = m.parse().ok()?;
    (h < 24 && m < 60)
        .then_some(h * 60 + m)
        .or(if h == 24 && m == 0 {
            Some(24 * 60)
        } else {
            None
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        assert_eq!(SessionHours::parse("rth"), Some(SessionHours::RTH));
        assert_eq!(SessionHours::parse("09:30-16:00"), Some(SessionHours::RTH));
        assert_eq!(
            SessionHours::parse("18:00-17:00"),
            Some(SessionHours::GLOBEX)
        );
        assert_eq!(SessionHours::parse("9:30-16:00"), Some(SessionHours::RTH));
        assert_eq!(SessionHours::parse("25:00-16:00"), None);
        assert_eq!(SessionHours::parse("09:30"), None);
        assert_eq!(SessionHours::RTH.minutes(), 390);
        assert_eq!(SessionHours::GLOBEX.minutes(), 23 * 60);
        assert!(SessionHours::GLOBEX.crosses_midnight());
        let mut s = std::string::String::new();
        SessionHours::RTH.write_to(&mut s).unwrap();
        assert_eq!(s, "09:30-16:00");
    }
}
