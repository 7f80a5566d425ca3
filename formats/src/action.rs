//! The discrete action space (SPEC section 6).

use core::fmt;

/// One decision of the policy. The discriminant is the action code stored in
/// checkpoints, reports and live signals; it never changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Action {
    Hold = 0,
    Buy = 1,
    Sell = 2,
    /// Move the stop to entry plus one tick in favour.
    SlToBe = 3,
    /// Move the stop one ATR step toward price.
    TrailTighten = 4,
    /// Move the stop one ATR step away from price.
    TrailLoosen = 5,
}

impl Action {
    /// Every action, in code order.
    pub const ALL: [Action; 6] = [
        Action::Hold,
        Action::Buy,
        Action::Sell,
        Action::SlToBe,
        Action::TrailTighten,
        Action::TrailLoosen,
    ];

    pub const fn code(self) -> u8 {
        self as u8
    }

    pub const fn from_code(code: u8) -> Option<Action> {
        match code {
            0 => Some(Action::Hold),
            1 => Some(Action::Buy),
            2 => Some(Action::Sell),
            3 => Some(Action::SlToBe),
            4 => Some(Action::TrailTighten),
            5 => Some(Action::TrailLoosen),
            _ => None,
        }
    }

    /// The upper-case name used in logs, reports and checkpoint metadata.
    pub const fn name(self) -> &'static str {
        match self {
            Action::Hold => "HOLD",
            Action::Buy => "BUY",
            Action::Sell => "SELL",
            Action::SlToBe => "SL_TO_BE",
            Action::TrailTighten => "TRAIL_TIGHTEN",
            Action::TrailLoosen => "TRAIL_LOOSEN",
        }
    }

    pub fn from_name(name: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.name() == name)
    }

    /// Whether the action manages an open position (phase 2 only).
    pub const fn is_position_management(self) -> bool {
        matches!(
            self,
            Action::SlToBe | Action::TrailTighten | Action::TrailLoosen
        )
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The action set of a training phase: phase 1 trades entries and exits only,
/// phase 2 adds the three position-management actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActionSet {
    Phase1,
    Phase2,
}

impl ActionSet {
    pub const fn actions(self) -> &'static [Action] {
        match self {
            ActionSet::Phase1 => &[Action::Hold, Action::Buy, Action::Sell],
            ActionSet::Phase2 => &Action::ALL,
        }
    }

    pub const fn len(self) -> usize {
        self.actions().len()
    }

    pub const fn is_empty(self) -> bool {
        false
    }

    pub const fn phase(self) -> u8 {
        match self {
            ActionSet::Phase1 => 1,
            ActionSet::Phase2 => 2,
        }
    }

    pub const fn from_phase(phase: u8) -> Option<ActionSet> {
        match phase {
            1 => Some(ActionSet::Phase1),
            2 => Some(ActionSet::Phase2),
            _ => None,
        }
    }

    /// The set whose action count is `n` (3 or 6), as read from a checkpoint head.
    pub const fn from_len(n: usize) -> Option<ActionSet> {
        match n {
            3 => Some(ActionSet::Phase1),
            6 => Some(ActionSet::Phase2),
            _ => None,
        }
    }

    /// Whether `action` belongs to this set.
    pub const fn contains(self, action: Action) -> bool {
        (action as usize) < self.len()
    }

    /// The comma-separated names written to the `actions` metadata key.
    pub const fn metadata_value(self) -> &'static str {
        match self {
            ActionSet::Phase1 => "HOLD,BUY,SELL",
            ActionSet::Phase2 => "HOLD,BUY,SELL,SL_TO_BE,TRAIL_TIGHTEN,TRAIL_LOOSEN",
        }
    }

    pub fn from_metadata_value(value: &str) -> Option<ActionSet> {
        [ActionSet::Phase1, ActionSet::Phase2]
            .into_iter()
            .find(|s| s.metadata_value() == value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_names_round_trip() {
        for (i, a) in Action::ALL.into_iter().enumerate() {
            assert_eq!(a.code() as usize, i);
            assert_eq!(Action::from_code(a.code()), Some(a));
            assert_eq!(Action::from_name(a.name()), Some(a));
        }
        assert_eq!(Action::from_code(6), None);
        assert_eq!(Action::from_name("hold"), None);
    }

    #[test]
    fn phase_sets() {
        assert_eq!(ActionSet::Phase1.len(), 3);
        assert_eq!(ActionSet::Phase2.len(), 6);
        assert!(!ActionSet::Phase1.contains(Action::SlToBe));
        assert!(ActionSet::Phase2.contains(Action::TrailLoosen));
        for set in [ActionSet::Phase1, ActionSet::Phase2] {
            assert_eq!(
                ActionSet::from_metadata_value(set.metadata_value()),
                Some(set)
            );
            assert_eq!(ActionSet::from_len(set.len()), Some(set));
            let joined: usize = set.actions().iter().map(|a| a.name().len() + 1).sum();
            assert_eq!(joined - 1, set.metadata_value().len());
        }
    }
}
