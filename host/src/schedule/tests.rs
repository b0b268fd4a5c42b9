use super::*;
use chrono::{FixedOffset, Utc};

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).single().expect("valid test time")
}

fn t(s: &str) -> NaiveTime {
    parse_time(s).expect("valid test time")
}

fn mins(m: i64) -> Duration {
    Duration::minutes(m)
}

#[test]
fn parse_time_accepts_hh_mm_only() {
    assert_eq!(parse_time("19:00"), Ok(hm(19, 0)));
    assert_eq!(parse_time("7:05"), Ok(hm(7, 5)));
    assert_eq!(parse_time("00:00"), Ok(NaiveTime::MIN));
    for bad in ["24:00", "12:60", "12", "12:5", "12:00:00", "ab:cd", "", " 12:00", "-1:00", "123:00"] {
        assert_eq!(parse_time(bad), Err(ScheduleError::InvalidTime(bad.to_owned())), "{bad:?}");
    }
}

#[test]
fn parse_weekday_names() {
    assert_eq!(parse_weekday("saturday"), Ok(Weekday::Sat));
    assert_eq!(parse_weekday("Sun"), Ok(Weekday::Sun));
    assert!(parse_weekday("someday").is_err());
}

#[test]
fn default_is_nightly_19_to_07_with_a_12_hour_spread() {
    let s = Schedule::default();
    assert_eq!(s, Schedule::nightly(t("19:00"), t("07:00")).unwrap());
    assert_eq!(s.spread(), Duration::hours(12));
}

#[test]
fn nightly_window_wrapping_midnight_runs_at_the_install_point() {
    let s = Schedule::default();
    // Offset 4h41m into a 19:00 window: 23:41.
    let off = mins(4 * 60 + 41);
    assert_eq!(s.next_after(utc(2024, 3, 5, 12, 0), off), utc(2024, 3, 5, 23, 41));
    // Just after today's run: tomorrow.
    assert_eq!(s.next_after(utc(2024, 3, 5, 23, 41), off), utc(2024, 3, 6, 23, 41));
    // Offset past midnight (10h): 05:00 the next morning, and the same morning when it is 01:00.
    let late = mins(10 * 60);
    assert_eq!(s.next_after(utc(2024, 3, 5, 20, 0), late), utc(2024, 3, 6, 5, 0));
    assert_eq!(s.next_after(utc(2024, 3, 6, 1, 0), late), utc(2024, 3, 6, 5, 0));
    // Month and year rollover.
    assert_eq!(s.next_after(utc(2024, 12, 31, 23, 50), off), utc(2025, 1, 1, 23, 41));
}

#[test]
fn nightly_offset_is_reduced_modulo_the_window() {
    let s = Schedule::default();
    // 13 hours into a 12-hour window is 1 hour: 20:00.
    assert_eq!(s.next_after(utc(2024, 3, 5, 12, 0), Duration::hours(13)), utc(2024, 3, 5, 20, 0));
    assert_eq!(s.next_after(utc(2024, 3, 5, 12, 0), Duration::hours(-1)), utc(2024, 3, 6, 6, 0));
}

#[test]
fn nightly_window_within_one_day() {
    let s = Schedule::nightly(t("01:00"), t("05:00")).unwrap();
    assert_eq!(s.spread(), Duration::hours(4));
    assert_eq!(s.next_after(utc(2024, 3, 5, 3, 0), mins(90)), utc(2024, 3, 6, 2, 30));
    assert_eq!(s.next_after(utc(2024, 3, 5, 2, 0), mins(90)), utc(2024, 3, 5, 2, 30));
    assert!(Schedule::nightly(t("01:00"), t("01:00")).is_err());
}

#[test]
fn nightly_uses_the_local_time_of_the_zone() {
    // UTC+02:00: 23:41 local is 21:41 UTC.
    let tz = FixedOffset::east_opt(2 * 3600).unwrap();
    let after = tz.with_ymd_and_hms(2024, 3, 5, 12, 0, 0).unwrap();
    let next = Schedule::default().next_after(after, mins(4 * 60 + 41));
    assert_eq!(next.naive_local(), tz.with_ymd_and_hms(2024, 3, 5, 23, 41, 0).unwrap().naive_local());
    assert_eq!(next.with_timezone(&Utc), utc(2024, 3, 5, 21, 41));
}

#[test]
fn weekly_rolls_over_to_next_week() {
    // 2024-03-09 is a Saturday.
    let s = Schedule::weekly(Weekday::Sat, t("02:00"), Duration::zero()).unwrap();
    assert_eq!(s.next_after(utc(2024, 3, 5, 12, 0), Duration::zero()), utc(2024, 3, 9, 2, 0));
    assert_eq!(s.next_after(utc(2024, 3, 9, 1, 59), Duration::zero()), utc(2024, 3, 9, 2, 0));
    assert_eq!(s.next_after(utc(2024, 3, 9, 2, 0), Duration::zero()), utc(2024, 3, 16, 2, 0));
    assert_eq!(s.next_after(utc(2024, 3, 10, 0, 0), Duration::zero()), utc(2024, 3, 16, 2, 0));
    // Without a spread the install offset is ignored.
    assert_eq!(s.next_after(utc(2024, 3, 5, 12, 0), mins(77)), utc(2024, 3, 9, 2, 0));
}

#[test]
fn weekly_spread_can_cross_midnight() {
    let s = Schedule::weekly(Weekday::Sat, t("23:00"), Duration::hours(2)).unwrap();
    let off = mins(90);
    assert_eq!(s.next_after(utc(2024, 3, 9, 12, 0), off), utc(2024, 3, 10, 0, 30));
    // Sunday 00:10 is before this install's Saturday-night run.
    assert_eq!(s.next_after(utc(2024, 3, 10, 0, 10), off), utc(2024, 3, 10, 0, 30));
    assert_eq!(s.next_after(utc(2024, 3, 10, 0, 30), off), utc(2024, 3, 17, 0, 30));
    assert_eq!(
        s.describe(off),
        "weekly on Saturday at 23:00, spread over 120 minutes (this install: 00:30 the next day)"
    );
}

#[test]
fn weekly_spread_is_capped() {
    assert_eq!(
        Schedule::weekly(Weekday::Mon, t("02:00"), Duration::hours(13)),
        Err(ScheduleError::SpreadTooLong)
    );
}

#[test]
fn interval_is_aligned_to_the_previous_run() {
    let s = Schedule::interval(mins(15)).unwrap();
    let last = utc(2024, 3, 5, 10, 7);
    assert_eq!(s.next_after(last, Duration::hours(3)), utc(2024, 3, 5, 10, 22));
    assert_eq!(s.next_after(utc(2024, 3, 5, 23, 50), Duration::zero()), utc(2024, 3, 6, 0, 5));
    assert_eq!(Schedule::interval(Duration::seconds(59)), Err(ScheduleError::IntervalTooShort));
    assert_eq!(s.spread(), Duration::zero());
}

#[test]
fn cron_with_and_without_seconds() {
    let s = Schedule::cron("0 30 2 * * *").unwrap();
    assert_eq!(s.next_after(utc(2024, 3, 5, 12, 0), mins(99)), utc(2024, 3, 6, 2, 30));
    assert_eq!(s.next_after(utc(2024, 3, 6, 2, 29), Duration::zero()), utc(2024, 3, 6, 2, 30));
    assert_eq!(s.next_after(utc(2024, 3, 6, 2, 30), Duration::zero()), utc(2024, 3, 7, 2, 30));
    // Five fields, POSIX weekdays: 1 is Monday; 2024-03-11 is a Monday.
    let monday = Schedule::cron("15 4 * * 1").unwrap();
    assert_eq!(monday.next_after(utc(2024, 3, 5, 12, 0), Duration::zero()), utc(2024, 3, 11, 4, 15));
    let every_10 = Schedule::cron("*/10 * * * *").unwrap();
    assert_eq!(every_10.next_after(utc(2024, 3, 5, 12, 3), Duration::zero()), utc(2024, 3, 5, 12, 10));
}

#[test]
fn cron_errors() {
    assert!(matches!(Schedule::cron("not a cron"), Err(ScheduleError::InvalidCron { .. })));
    assert!(matches!(Schedule::cron("0 61 * * *"), Err(ScheduleError::InvalidCron { .. })));
    assert!(matches!(Schedule::cron(""), Err(ScheduleError::InvalidCron { .. })));
    assert_eq!(Schedule::cron("0 0 30 2 *"), Err(ScheduleError::CronNeverFires("0 0 30 2 *".into())));
}

#[test]
fn missed_runs_are_caught_up_once() {
    let s = Schedule::default();
    let off = mins(4 * 60 + 41); // 23:41
                                 // Never ran: nothing missed, wait for the slot.
    assert!(!s.missed_since(None, utc(2024, 3, 5, 12, 0), off));
    // Ran last night, now is before tonight's slot: none missed.
    assert!(!s.missed_since(Some(utc(2024, 3, 4, 23, 41)), utc(2024, 3, 5, 23, 40), off));
    // Exactly at the slot counts as due.
    assert!(s.missed_since(Some(utc(2024, 3, 4, 23, 41)), utc(2024, 3, 5, 23, 41), off));
    // Machine off over one slot: one missed.
    assert!(s.missed_since(Some(utc(2024, 3, 4, 23, 41)), utc(2024, 3, 6, 8, 0), off));
    // Off for two weeks: still a single `true` — the runner runs once, then the next slot
    // is computed from now, not from the old last run.
    let now = utc(2024, 3, 19, 8, 0);
    assert!(s.missed_since(Some(utc(2024, 3, 4, 23, 41)), now, off));
    assert_eq!(s.next_after(now, off), utc(2024, 3, 19, 23, 41));
    assert!(!s.missed_since(Some(now), now, off));
    // A last run in the future (clock moved back) is not a miss.
    assert!(!s.missed_since(Some(utc(2024, 3, 20, 0, 0)), now, off));
}

#[test]
fn missed_interval_and_cron() {
    let every_15 = Schedule::interval(mins(15)).unwrap();
    let last = utc(2024, 3, 5, 10, 0);
    assert!(!every_15.missed_since(Some(last), utc(2024, 3, 5, 10, 14), Duration::zero()));
    assert!(every_15.missed_since(Some(last), utc(2024, 3, 5, 11, 0), Duration::zero()));
    let cron = Schedule::cron("0 30 2 * * *").unwrap();
    assert!(!cron.missed_since(Some(utc(2024, 3, 5, 2, 30)), utc(2024, 3, 6, 2, 0), Duration::zero()));
    assert!(cron.missed_since(Some(utc(2024, 3, 5, 2, 30)), utc(2024, 3, 6, 3, 0), Duration::zero()));
}

#[test]
fn describe_every_kind() {
    assert_eq!(
        Schedule::default().describe(mins(4 * 60 + 41)),
        "nightly between 19:00 and 07:00 (this install: 23:41)"
    );
    let weekly = Schedule::weekly(Weekday::Sat, t("02:00"), Duration::zero()).unwrap();
    assert_eq!(weekly.describe(mins(5)), "weekly on Saturday at 02:00");
    assert_eq!(Schedule::interval(mins(15)).unwrap().describe(Duration::zero()), "every 15 minutes");
    assert_eq!(Schedule::interval(mins(1)).unwrap().to_string(), "every minute");
    assert_eq!(Schedule::interval(mins(180)).unwrap().to_string(), "every 3 hours");
    let cron = Schedule::cron("0 30 2 * * *").unwrap().to_string();
    assert!(cron.starts_with("cron \"0 30 2 * * *\" ("), "{cron}");
}

#[test]
fn install_offset_is_stable_bounded_and_spread() {
    let window = Duration::hours(12);
    let a = install_offset("agent-0001", window);
    assert_eq!(a, install_offset("agent-0001", window), "stable across calls");
    // Pinned: a change of hash would move every install in the field.
    assert_eq!(install_offset("agent-0001", window), PINNED_AGENT_0001);
    assert_eq!(install_offset("x", Duration::zero()), Duration::zero());
    // 2 000 agents over 12 one-hour buckets: each bucket gets a fair share (167 on average).
    let mut buckets = [0u32; 12];
    for i in 0..2000 {
        let off = install_offset(&format!("agent-{i:04}"), window);
        assert!(off >= Duration::zero() && off < window);
        buckets[off.num_hours() as usize] += 1;
    }
    assert!(buckets.iter().all(|&n| (120..=215).contains(&n)), "{buckets:?}");
}

const PINNED_AGENT_0001: Duration = Duration::seconds(13029);

/// A Central-European-like zone for 2024: UTC+1, UTC+2 from 31 March 01:00 UTC to
/// 27 October 01:00 UTC. Local 02:00–03:00 does not exist on 31 March and occurs twice
/// on 27 October.
#[derive(Debug, Clone, Copy)]
struct Cet;

impl Cet {
    fn offset_at(utc: &NaiveDateTime) -> FixedOffset {
        let summer_from = NaiveDateTime::parse_from_str("2024-03-31 01:00", "%Y-%m-%d %H:%M").unwrap();
        let summer_to = NaiveDateTime::parse_from_str("2024-10-27 01:00", "%Y-%m-%d %H:%M").unwrap();
        let hours = if *utc >= summer_from && *utc < summer_to { 2 } else { 1 };
        FixedOffset::east_opt(hours * 3600).unwrap()
    }
}

impl TimeZone for Cet {
    type Offset = FixedOffset;
    fn from_offset(_: &FixedOffset) -> Self {
        Cet
    }
    fn offset_from_local_date(&self, local: &chrono::NaiveDate) -> MappedLocalTime<FixedOffset> {
        self.offset_from_local_datetime(&local.and_time(NaiveTime::MIN))
    }
    fn offset_from_local_datetime(&self, local: &NaiveDateTime) -> MappedLocalTime<FixedOffset> {
        // Earlier instant first: the larger offset maps the same wall time to an earlier UTC.
        let valid: Vec<FixedOffset> = [2, 1]
            .into_iter()
            .map(|h| FixedOffset::east_opt(h * 3600).unwrap())
            .filter(|off| Cet::offset_at(&(*local - Duration::seconds(off.local_minus_utc().into()))) == *off)
            .collect();
        match valid[..] {
            [] => MappedLocalTime::None,
            [one] => MappedLocalTime::Single(one),
            [a, b, ..] => MappedLocalTime::Ambiguous(a, b),
        }
    }
    fn offset_from_utc_date(&self, utc: &chrono::NaiveDate) -> FixedOffset {
        Cet::offset_at(&utc.and_time(NaiveTime::MIN))
    }
    fn offset_from_utc_datetime(&self, utc: &NaiveDateTime) -> FixedOffset {
        Cet::offset_at(utc)
    }
}

#[test]
fn dst_gap_moves_forward_and_fold_takes_the_earlier() {
    let s = Schedule::default();
    let off = mins(7 * 60 + 30); // 02:30 local
                                 // Spring forward: 02:30 does not exist on 31 March; the run moves to 03:00 CEST.
    let before_gap = Cet.with_ymd_and_hms(2024, 3, 30, 12, 0, 0).unwrap();
    let next = s.next_after(before_gap, off);
    assert_eq!(next.with_timezone(&Utc), utc(2024, 3, 31, 1, 0));
    assert_eq!(next.naive_local().time(), hm(3, 0));
    // And the night after is 02:30 CEST again.
    assert_eq!(s.next_after(next, off).with_timezone(&Utc), utc(2024, 4, 1, 0, 30));
    // Fall back: 02:30 occurs twice on 27 October; the earlier (CEST, 00:30 UTC) is used, once.
    let before_fold = Cet.with_ymd_and_hms(2024, 10, 26, 12, 0, 0).unwrap();
    let next = s.next_after(before_fold, off);
    assert_eq!(next.with_timezone(&Utc), utc(2024, 10, 27, 0, 30));
    assert_eq!(s.next_after(next, off).with_timezone(&Utc), utc(2024, 10, 28, 1, 30));
}
