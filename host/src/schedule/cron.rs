//! Cron expressions, parsed and evaluated by `croner`.

use super::ScheduleError;
use chrono::{DateTime, Duration, TimeZone, Utc};
use croner::parser::{CronParser, Seconds};
use croner::Cron;
use std::fmt;

/// A parsed cron expression: 5 fields (`min hour dom month dow`) or 6 with seconds first.
///
/// Weekdays follow POSIX cron (0 or 7 is Sunday, 1 is Monday) and names (`MON`) work;
/// `L`, `W`, `#` and `@daily`-style aliases are accepted.
#[derive(Clone)]
pub struct CronSchedule {
    expression: String,
    // Boxed: croner's `Cron` is ~300 bytes and would bloat every `Schedule`.
    cron: Box<Cron>,
}

impl CronSchedule {
    /// Parses `expression` and checks that it fires at all (`0 0 30 2 *` never does).
    pub fn parse(expression: &str) -> Result<Self, ScheduleError> {
        let expression = expression.trim();
        let cron =
            CronParser::builder().seconds(Seconds::Optional).build().parse(expression).map_err(|e| {
                ScheduleError::InvalidCron { pattern: expression.to_owned(), reason: e.to_string() }
            })?;
        // Without a year field a pattern that fires once fires again within the
        // 400-year Gregorian cycle, so one occurrence after a fixed instant proves it fires forever.
        let reference = Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).single().unwrap_or_default();
        if cron.find_next_occurrence(&reference, false).is_err() {
            return Err(ScheduleError::CronNeverFires(expression.to_owned()));
        }
        Ok(CronSchedule { expression: expression.to_owned(), cron: Box::new(cron) })
    }

    /// The expression as written (trimmed).
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// A human-readable description from croner, e.g. "At 02:30:00 every day".
    pub fn describe(&self) -> String {
        self.cron.describe()
    }

    /// The first time strictly after `after` that the expression matches, in `after`'s zone.
    pub fn next_after<Tz: TimeZone>(&self, after: DateTime<Tz>) -> DateTime<Tz> {
        // `parse` proved the expression fires; the fallback only guards against a
        // search limit in croner and keeps the runner moving.
        match self.cron.find_next_occurrence(&after, false) {
            Ok(next) => next,
            Err(_) => after + Duration::days(1),
        }
    }
}

impl fmt::Debug for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CronSchedule").field(&self.expression).finish()
    }
}

impl PartialEq for CronSchedule {
    fn eq(&self, other: &Self) -> bool {
        self.expression == other.expression
    }
}

impl Eq for CronSchedule {}
