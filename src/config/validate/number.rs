//! Integer rules: the accepted range of a number or duration key, the ranges the readers
//! share (seconds, milliseconds, timer ticks, ports, counts) and how an error describes them.

use super::{ConfigError, Result};

/// An accepted integer range and how to describe it in an error.
#[derive(Clone, Copy)]
pub(super) struct IntRule {
    min: u64,
    max: u64,
    /// `" number of seconds"` and the like, or empty.
    unit: &'static str,
}

/// Ten years: far beyond any sensible timeout, low enough that adding it to an `Instant`
/// cannot overflow.
const MAX_SECS: u64 = 10 * 365 * 24 * 3600;
const MAX_MS: u64 = MAX_SECS * 1000;

pub(super) const POSITIVE_SECS: IntRule = IntRule::secs(1, MAX_SECS);
pub(super) const SECS: IntRule = IntRule::secs(0, MAX_SECS);
pub(super) const POSITIVE_MS: IntRule = IntRule::millis(1, MAX_MS);
pub(super) const MS: IntRule = IntRule::millis(0, MAX_MS);
/// Timer ticks: small values are fine (the wheel stays cheap), below 10 ms is a typo.
pub(super) const TICK_MS: IntRule = IntRule::millis(10, MAX_MS);
pub(super) const PORT: IntRule = IntRule::range(0, 65535);
pub(super) const COUNT: IntRule = IntRule::range(0, u32::MAX as u64);
pub(super) const COUNT_U64: IntRule = IntRule::range(0, u64::MAX);

impl IntRule {
    /// A plain number from `min` to `max`.
    pub(super) const fn range(min: u64, max: u64) -> IntRule {
        IntRule { min, max, unit: "" }
    }

    /// A number of seconds from `min` to `max`.
    pub(super) const fn secs(min: u64, max: u64) -> IntRule {
        IntRule {
            min,
            max,
            unit: " number of seconds",
        }
    }

    /// A number of milliseconds from `min` to `max`.
    pub(super) const fn millis(min: u64, max: u64) -> IntRule {
        IntRule {
            min,
            max,
            unit: " number of milliseconds",
        }
    }

    fn describe(&self) -> String {
        let unit = self.unit;
        // Caps at or above ten years are overflow guards, named only when exceeded.
        let open_ended = self.max >= MAX_SECS;
        match (self.min, open_ended) {
            (0, true) => format!("a non-negative integer{unit}"),
            (1, true) => format!("a positive integer{unit}"),
            (min, true) => format!("an integer{unit}, at least {min}"),
            (min, false) => format!("an integer{unit} from {min} to {}", self.max),
        }
    }

    pub(super) fn check(&self, value: &str, path: &str) -> Result<u64> {
        match value.parse::<u64>() {
            Ok(n) if (self.min..=self.max).contains(&n) => Ok(n),
            Ok(n) if n > self.max && self.max >= MAX_SECS => Err(ConfigError::invalid(
                path,
                format!(
                    "expected {}, at most {}, got {value:?}",
                    self.describe(),
                    self.max
                ),
            )),
            _ => Err(ConfigError::invalid(
                path,
                format!("expected {}, got {value:?}", self.describe()),
            )),
        }
    }
}
