//! The set of actions allowed at a decision. One mask function, the
//! simulator's, feeds training, evaluation and live use alike.

use nq_formats::Action;

/// Bit `i` set = action code `i` allowed. HOLD is always allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ActionMask(u8);

impl ActionMask {
    /// Only HOLD.
    pub const HOLD_ONLY: ActionMask = ActionMask(1);

    /// A mask from raw bits; HOLD is forced on.
    pub const fn from_bits(bits: u8) -> ActionMask {
        ActionMask((bits & 0b11_1111) | 1)
    }

    pub const fn bits(self) -> u8 {
        self.0
    }

    pub const fn allows(self, action: Action) -> bool {
        self.0 & (1 << action as u8) != 0
    }

    /// Whether action code `code` (0..6) is allowed; `false` past the codes.
    pub const fn allows_code(self, code: usize) -> bool {
        code < 8 && self.0 & (1 << code) != 0
    }

    pub const fn with(self, action: Action) -> ActionMask {
        ActionMask(self.0 | (1 << action as u8))
    }

    pub const fn without(self, action: Action) -> ActionMask {
        if matches!(action, Action::Hold) {
            self
        } else {
            ActionMask(self.0 & !(1 << action as u8))
        }
    }

    /// Restricts the mask to the first `n_actions` codes (a phase's action set).
    pub const fn limited_to(self, n_actions: usize) -> ActionMask {
        let keep = if n_actions >= 8 {
            0xff
        } else {
            (1u8 << n_actions) - 1
        };
        ActionMask::from_bits(self.0 & keep)
    }

    pub const fn count(self) -> u32 {
        self.0.count_ones()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hold_is_never_removed() {
        assert!(ActionMask::from_bits(0).allows(Action::Hold));
        assert!(ActionMask::HOLD_ONLY
            .without(Action::Hold)
            .allows(Action::Hold));
        let m = ActionMask::HOLD_ONLY.with(Action::Buy).with(Action::SlToBe);
        assert!(m.allows(Action::Buy) && m.allows(Action::SlToBe) && !m.allows(Action::Sell));
        assert_eq!(m.limited_to(3), ActionMask::HOLD_ONLY.with(Action::Buy));
        assert_eq!(m.count(), 3);
    }
}
