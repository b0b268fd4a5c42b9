//! Schedules: when a source runs next.
//!
//! Pure computation on `chrono` date-times — no clock, no I/O, no tokio. The runner
//! passes "now" and the last run in, so everything here is deterministic and is
//! tested with fixed times in UTC or a fixed offset. Production code uses
//! `chrono::Local`; daylight-saving gaps and folds are resolved as documented on
//! [`Schedule::next_after`].

mod cron;
mod offset;

pub use cron::CronSchedule;
pub use offset::install_offset;

use chrono::{DateTime, Datelike, Duration, MappedLocalTime, NaiveDateTime, NaiveTime, TimeZone, Weekday};
use std::fmt;

/// The longest spread allowed for a weekly schedule (the nightly window spreads over its whole length).
pub const MAX_WEEKLY_SPREAD: Duration = Duration::hours(12);

/// When a source runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// Once a day at this install's point inside a local-time window that may wrap midnight.
    Nightly {
        /// Start of the window (local time).
        window_start: NaiveTime,
        /// End of the window (local time); before `window_start` when the window wraps midnight.
        window_end: NaiveTime,
    },
    /// Once a week on `weekday` at `at`, plus this install's offset inside `spread`.
    Weekly {
        /// The day of the week.
        weekday: Weekday,
        /// The local time of day.
        at: NaiveTime,
        /// How far after `at` installs spread out (zero: exactly at `at`).
        spread: Duration,
    },
    /// Every `every`, counted from the previous run.
    Interval {
        /// Time between the start of one run and the start of the next.
        every: Duration,
    },
    /// A cron expression, evaluated in local time.
    Cron(CronSchedule),
}

/// Why a schedule cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// A time of day is not `HH:MM`.
    #[error("`{0}` is not a time of day; write it as HH:MM, 24-hour clock (e.g. \"19:00\")")]
    InvalidTime(String),
    /// The nightly window starts and ends at the same time.
    #[error("the window starts and ends at the same time ({0}); give it a length")]
    EmptyWindow(String),
    /// An interval shorter than one minute.
    #[error("the interval must be at least 1 minute")]
    IntervalTooShort,
    /// A weekly spread longer than [`MAX_WEEKLY_SPREAD`].
    #[error("the spread must be at most {} minutes", MAX_WEEKLY_SPREAD.num_minutes())]
    SpreadTooLong,
    /// A weekday name that is not one.
    #[error("`{0}` is not a weekday; use monday, tuesday, …, sunday")]
    InvalidWeekday(String),
    /// A cron expression that does not parse.
    #[error("invalid cron expression `{pattern}`: {reason}")]
    InvalidCron {
        /// The expression as written.
        pattern: String,
        /// The parser's explanation.
        reason: String,
    },
    /// A cron expression that parses but never fires (e.g. February 30th).
    #[error("the cron expression `{0}` never fires")]
    CronNeverFires(String),
}

/// Parses a time of day written `HH:MM` (24-hour clock; `7:05` is accepted too).
pub fn parse_time(text: &str) -> Result<NaiveTime, ScheduleError> {
    let bad = || ScheduleError::InvalidTime(text.to_owned());
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    let digits =
        |s: &str, max_len| !s.is_empty() && s.len() <= max_len && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(h, 2) || !digits(m, 2) || m.len() != 2 {
        return Err(bad());
    }
    let (h, m) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    NaiveTime::from_hms_opt(h, m, 0).ok_or_else(bad)
}

/// Parses a weekday name (`monday` … `sunday`, or the three-letter form), case-insensitively.
pub fn parse_weekday(text: &str) -> Result<Weekday, ScheduleError> {
    let day = match text.to_ascii_lowercase().as_str() {
        "monday" | "mon" => Weekday::Mon,
        "tuesday" | "tue" => Weekday::Tue,
        "wednesday" | "wed" => Weekday::Wed,
        "thursday" | "thu" => Weekday::Thu,
        "friday" | "fri" => Weekday::Fri,
        "saturday" | "sat" => Weekday::Sat,
        "sunday" | "sun" => Weekday::Sun,
        _ => return Err(ScheduleError::InvalidWeekday(text.to_owned())),
    };
    Ok(day)
}

impl Default for Schedule {
    /// Nightly between 19:00 and 07:00.
    fn default() -> Self {
        Schedule::Nightly { window_start: hm(19, 0), window_end: hm(7, 0) }
    }
}

impl Schedule {
    /// A nightly window; `start` after `end` wraps midnight.
    pub fn nightly(window_start: NaiveTime, window_end: NaiveTime) -> Result<Self, ScheduleError> {
        if window_start == window_end {
            return Err(ScheduleError::EmptyWindow(window_start.format("%H:%M").to_string()));
        }
        Ok(Schedule::Nightly { window_start, window_end })
    }

    /// Weekly on `weekday` at `at`, installs spread over `spread` (at most [`MAX_WEEKLY_SPREAD`]).
    pub fn weekly(weekday: Weekday, at: NaiveTime, spread: Duration) -> Result<Self, ScheduleError> {
        if spread > MAX_WEEKLY_SPREAD || spread < Duration::zero() {
            return Err(ScheduleError::SpreadTooLong);
        }
        Ok(Schedule::Weekly { weekday, at, spread })
    }

    /// Every `every` (at least one minute).
    pub fn interval(every: Duration) -> Result<Self, ScheduleError> {
        if every < Duration::minutes(1) {
            return Err(ScheduleError::IntervalTooShort);
        }
        Ok(Schedule::Interval { every })
    }

    /// A cron expression (5 fields, or 6 with seconds first); see [`CronSchedule::parse`].
    pub fn cron(expression: &str) -> Result<Self, ScheduleError> {
        CronSchedule::parse(expression).map(Schedule::Cron)
    }

    /// The span over which installs spread their runs: the window length, the weekly spread, or zero.
    pub fn spread(&self) -> Duration {
        match self {
            Schedule::Nightly { window_start, window_end } => {
                let len = *window_end - *window_start;
                if len <= Duration::zero() {
                    len + Duration::days(1)
                } else {
                    len
                }
            }
            Schedule::Weekly { spread, .. } => *spread,
            Schedule::Interval { .. } | Schedule::Cron(_) => Duration::zero(),
        }
    }

    /// This install's offset into [`Schedule::spread`]: `install_offset(agent_id, self.spread())`.
    pub fn install_offset_for(&self, agent_id: &str) -> Duration {
        install_offset(agent_id, self.spread())
    }

    /// The first scheduled time strictly after `after`.
    ///
    /// `install_offset` is this install's offset (see [`install_offset`]); it is reduced
    /// modulo [`Schedule::spread`] and ignored by interval and cron schedules. For an
    /// interval the result is `after + every`, so pass the start of the previous run to
    /// keep runs aligned. A local time that falls into a daylight-saving gap moves forward
    /// to the first valid time; one that occurs twice uses the earlier.
    pub fn next_after<Tz: TimeZone>(&self, after: DateTime<Tz>, install_offset: Duration) -> DateTime<Tz> {
        let offset = self.effective_offset(install_offset);
        match self {
            Schedule::Nightly { window_start, .. } => {
                let (time, _) = window_start.overflowing_add_signed(offset);
                let tz = after.timezone();
                let today = after.naive_local().date();
                (-1..=2)
                    .map(|days| at_local(&tz, (today + Duration::days(days)).and_time(time)))
                    .find(|candidate| *candidate > after)
                    .unwrap_or_else(|| after.clone() + Duration::days(1))
            }
            Schedule::Weekly { weekday, at, .. } => {
                let tz = after.timezone();
                let today = after.naive_local().date();
                (-8..=15)
                    .map(|days| today + Duration::days(days))
                    .filter(|day| day.weekday() == *weekday)
                    .map(|day| at_local(&tz, day.and_time(*at) + offset))
                    .find(|candidate| *candidate > after)
                    .unwrap_or_else(|| after.clone() + Duration::weeks(1))
            }
            Schedule::Interval { every } => after + *every,
            Schedule::Cron(cron) => cron.next_after(after),
        }
    }

    /// Whether a scheduled time fell after `last_run` and at or before `now` — a run was
    /// missed (the machine was off), and the runner should catch up once at start.
    ///
    /// However many slots were missed, the answer is one `true`: the runner runs once,
    /// then continues with [`Schedule::next_after`]. With no previous run nothing was
    /// missed: a fresh install waits for its first slot.
    pub fn missed_since<Tz: TimeZone>(
        &self,
        last_run: Option<DateTime<Tz>>,
        now: DateTime<Tz>,
        install_offset: Duration,
    ) -> bool {
        match last_run {
            Some(last) if last < now => self.next_after(last, install_offset) <= now,
            _ => false,
        }
    }

    /// A sentence for status output, e.g. "nightly between 19:00 and 07:00 (this install: 23:41)".
    pub fn describe(&self, install_offset: Duration) -> String {
        let offset = self.effective_offset(install_offset);
        match self {
            Schedule::Nightly { window_start, window_end } => format!(
                "nightly between {} and {} (this install: {})",
                hhmm(*window_start),
                hhmm(*window_end),
                hhmm(window_start.overflowing_add_signed(offset).0)
            ),
            Schedule::Weekly { weekday, at, spread } => {
                let mut text = format!("weekly on {} at {}", weekday_name(*weekday), hhmm(*at));
                if *spread > Duration::zero() {
                    let (time, days) = at.overflowing_add_signed(offset);
                    let next_day = if days > 0 { " the next day" } else { "" };
                    text += &format!(
                        ", spread over {} minutes (this install: {}{next_day})",
                        spread.num_minutes(),
                        hhmm(time)
                    );
                }
                text
            }
            Schedule::Interval { every } => match every.num_minutes() {
                1 => "every minute".to_owned(),
                m if m % 60 == 0 && m >= 120 => format!("every {} hours", m / 60),
                m => format!("every {m} minutes"),
            },
            Schedule::Cron(cron) => format!("cron \"{}\" ({})", cron.expression(), cron.describe()),
        }
    }

    fn effective_offset(&self, install_offset: Duration) -> Duration {
        let spread = self.spread().num_seconds();
        if spread <= 0 {
            return Duration::zero();
        }
        Duration::seconds(install_offset.num_seconds().rem_euclid(spread))
    }
}

impl fmt::Display for Schedule {
    /// The description without an install offset.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe(Duration::zero()))
    }
}

/// `naive` as a local time in `tz`: a time in a DST gap moves forward to the first valid
/// time, a time that occurs twice resolves to the earlier.
fn at_local<Tz: TimeZone>(tz: &Tz, naive: NaiveDateTime) -> DateTime<Tz> {
    let mut probe = naive;
    // Gaps are at most a few hours; a day of 15-minute steps is more than enough.
    for _ in 0..96 {
        match tz.from_local_datetime(&probe) {
            MappedLocalTime::Single(t) | MappedLocalTime::Ambiguous(t, _) => return t,
            MappedLocalTime::None => probe += Duration::minutes(15),
        }
    }
    tz.from_utc_datetime(&naive)
}

fn hm(h: u32, m: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(h, m, 0).unwrap_or(NaiveTime::MIN)
}

fn hhmm(t: NaiveTime) -> String {
    t.format("%H:%M").to_string()
}

fn weekday_name(day: Weekday) -> &'static str {
    match day {
        Weekday::Mon => "Monday",
        Weekday::Tue => "Tuesday",
        Weekday::Wed => "Wednesday",
        Weekday::Thu => "Thursday",
        Weekday::Fri => "Friday",
        Weekday::Sat => "Saturday",
        Weekday::Sun => "Sunday",
    }
}

#[cfg(test)]
mod tests;
