//! Time as the gateway's logic sees it: a [`Clock`] each worker's session gate is given,
//! and the calendar arithmetic the audit trail and certificate checks share.
//!
//! The gate never reads `Instant::now()` or `SystemTime::now()` itself: session deadlines,
//! pending-login ages, tombstones and token expiry are all decided from the clock it holds,
//! so unit tests drive a [`ManualClock`] instead of sleeping.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// A worker's clock: milliseconds since its epoch (monotonic, for session deadlines) and
/// wall-clock Unix time (for JWT `exp`/`iat`).
#[derive(Clone)]
pub struct Clock(Source);

#[derive(Clone)]
enum Source {
    /// The epoch, and what `now_ms` reads at it.
    System(Instant, u64),
    Manual(Rc<Manual>),
}

struct Manual {
    ms: Cell<u64>,
    epoch_unix_ms: u64,
}

/// The handle a test keeps to move a manual clock forward.
#[derive(Clone)]
pub struct ManualClock(Rc<Manual>);

impl Clock {
    /// The real clocks, with the epoch at the call.
    pub fn system() -> Clock {
        Clock::system_since(0)
    }

    /// The real clocks, reading `ms_ago` at the call: a worker that adopts sessions made
    /// before it started (a restart snapshot) keeps their creation times, which on a clock
    /// that starts at 0 could not be told apart from its start.
    pub fn system_since(ms_ago: u64) -> Clock {
        Clock(Source::System(Instant::now(), ms_ago))
    }

    /// A clock that moves only when told; its epoch is at Unix time `epoch_unix_ms`.
    pub fn manual(epoch_unix_ms: u64) -> (Clock, ManualClock) {
        let m = Rc::new(Manual {
            ms: Cell::new(0),
            epoch_unix_ms,
        });
        (Clock(Source::Manual(m.clone())), ManualClock(m))
    }

    /// Milliseconds since the epoch; never moves backwards.
    #[inline]
    pub fn now_ms(&self) -> u64 {
        match &self.0 {
            Source::System(epoch, start) => start + epoch.elapsed().as_millis() as u64,
            Source::Manual(m) => m.ms.get(),
        }
    }

    /// Wall-clock milliseconds since 1970-01-01.
    pub fn unix_ms(&self) -> u64 {
        match &self.0 {
            Source::System(..) => unix_ms(SystemTime::now()),
            Source::Manual(m) => m.epoch_unix_ms + m.ms.get(),
        }
    }

    /// Wall-clock seconds since 1970-01-01.
    pub fn unix_secs(&self) -> u64 {
        self.unix_ms() / 1000
    }
}

impl ManualClock {
    pub fn advance_ms(&self, ms: u64) {
        self.0.ms.set(self.0.ms.get() + ms);
    }

    pub fn advance_secs(&self, secs: u64) {
        self.advance_ms(secs * 1000);
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `2026-05-01T12:34:56.789Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (y, mo, day) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        s / 3600,
        s / 60 % 60,
        s % 60,
        d.subsec_millis()
    )
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar() {
        let at = |secs: u64| UNIX_EPOCH + std::time::Duration::from_millis(secs * 1000 + 5);
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(at(951_782_400)), "2000-02-29T00:00:00.005Z");
        assert_eq!(rfc3339(at(4_102_444_799)), "2099-12-31T23:59:59.005Z");
        for (y, m, d) in [(1970, 1, 1), (2000, 2, 29), (2024, 12, 31), (1969, 12, 31)] {
            assert_eq!(civil_from_days(days_from_civil(y, m, d)), (y, m, d));
        }
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn a_system_clock_may_start_in_the_past() {
        assert!(Clock::system_since(3_600_000).now_ms() >= 3_600_000);
        assert!(Clock::system().now_ms() < 3_600_000);
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let (clock, hand) = Clock::manual(1_700_000_000_000);
        assert_eq!(clock.now_ms(), 0);
        assert_eq!(clock.unix_secs(), 1_700_000_000);
        hand.advance_secs(90);
        assert_eq!(clock.now_ms(), 90_000);
        assert_eq!(clock.unix_secs(), 1_700_000_090);
        assert_eq!(clock.clone().now_ms(), 90_000);
    }
}
