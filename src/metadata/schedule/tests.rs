//! Tests of schedule parsing and expansion, against hand-written DST goldens and a
//! minute-by-minute model.

// Expected answers are lists of ranges, often holding one.
#![allow(clippy::single_range_in_vec_init)]

use std::cmp::Ordering;

use proptest::prelude::*;

use super::*;
use crate::metadata::time::{format_nanos, parse_timestamp};

const NYSE: &str = "America/New_York; Mon-Fri 09:30-16:00; closed 2024-01-15, 2024-02-19; 2024-11-29 09:30-13:00";
const DAY_NANOS: i64 = 86_400_000_000_000;

fn schedule(text: &str) -> Schedule {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn tz(name: &str) -> Tz {
    name.parse().unwrap()
}

fn ns(text: &str) -> i64 {
    parse_timestamp(text).unwrap()
}

/// The scheduled ranges of `[from, to)` (UTC as the default zone), as RFC 3339 pairs.
fn between(s: &Schedule, from: &str, to: &str) -> Vec<(String, String)> {
    let ranges = s.sessions_between(ns(from), ns(to), &tz("UTC"));
    ranges.into_iter().map(|r| (format_nanos(r.start), format_nanos(r.end))).collect()
}

fn utc_ranges(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|&(a, b)| (a.to_string(), b.to_string())).collect()
}

#[test]
fn displays_the_canonical_form_and_parses_it_back() {
    let cases = [
        (NYSE, NYSE),
        (
            " 2024-11-29 09:30 - 11:00,11:00-13:00 ;closed 2024-02-19 2024-01-15; mon - FRI 12:00-16:00, \
             09:30-12:30 ; America/New_York ;",
            NYSE,
        ),
        (
            "Mon,Wed,Fri 09:00-12:00; Tue-Thu 13:00-17:00; Sat-Mon 10:00-11:00",
            "Mon,Fri 09:00-12:00; Tue,Thu 13:00-17:00; Wed 09:00-12:00 13:00-17:00; Sat-Sun 10:00-11:00",
        ),
        ("DAILY 00:00-24:00; utc; Closed,2024-01-02", "UTC; daily 00:00-24:00; closed 2024-01-02"),
        ("+0545; monday-wednesday,Friday 08:00-09:00", "+05:45; Mon-Wed,Fri 08:00-09:00"),
        ("Sunday 22:00-24:00; Mon-Sun 00:00-01:00", "Mon-Sat 00:00-01:00; Sun 00:00-01:00 22:00-24:00"),
    ];
    for (text, canonical) in cases {
        let parsed = schedule(text);
        assert_eq!(parsed.to_string(), canonical, "{text}");
        assert_eq!(schedule(canonical), parsed, "{text}");
    }
}

#[test]
fn accessors_apply_the_exceptions() {
    let nyse = schedule(NYSE);
    assert_eq!(nyse.zone_name(), Some("America/New_York"));
    assert_eq!(schedule("Mon 09:00-10:00").zone_name(), None);
    let date = |text: &str| NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap();
    let regular = [Session::try_new(570, 960).unwrap()];
    assert_eq!(nyse.regular_sessions(chrono::Weekday::Mon), regular);
    assert_eq!(nyse.sessions_on(date("2024-01-16")), regular);
    assert_eq!(nyse.sessions_on(date("2024-01-15")), []);
    assert_eq!(nyse.sessions_on(date("2024-01-13")), []);
    assert_eq!(nyse.sessions_on(date("2024-11-29")), ["09:30-13:00".parse::<Session>().unwrap()]);
    assert!(Session::try_new(600, 600).is_err());
    assert!(Session::try_new(0, 1441).is_err());
}

#[test]
fn serde_round_trip_is_the_string_form() {
    let nyse = schedule(NYSE);
    let json = serde_json::to_string(&nyse).unwrap();
    assert_eq!(json, format!("\"{NYSE}\""));
    assert_eq!(serde_json::from_str::<Schedule>(&json).unwrap(), nyse);
    let err = serde_json::from_str::<Schedule>("\"Mon-Fri 16:00-09:30\"").unwrap_err();
    assert!(err.to_string().contains("invalid schedule: session '16:00-09:30'"), "{err}");
}

#[test]
fn rejects_bad_input_naming_the_bad_part() {
    let weekdays = "Mon-Fri 09:30-16:00";
    let cases: Vec<(String, &str)> = vec![
        ("".into(), "the schedule is empty"),
        (" ; ; ".into(), "the schedule is empty"),
        ("America/New_York".into(), "has no weekly session"),
        (
            format!("Mars/Olympus; {weekdays}"),
            "unknown time zone 'Mars/Olympus' (use an IANA name such as America/New_York, UTC, or an offset such \
             as +05:30)",
        ),
        (format!("Mars; {weekdays}"), "unknown time zone 'Mars'"),
        (format!("UTC; Europe/London; {weekdays}"), "two time zone clauses, 'UTC' and 'Europe/London'"),
        ("Mon-Fry 09:30-16:00".into(), "unknown day name 'Fry' in clause 'Mon-Fry 09:30-16:00'"),
        ("Mon-Fri".into(), "weekly clause 'Mon-Fri' has no session"),
        ("Mon 09:30-25:00".into(), "bad time '25:00'"),
        ("Mon 09:60-16:00".into(), "bad time '09:60'"),
        ("Mon 9:3-16:00".into(), "bad time '9:3'"),
        ("Mon 24:00-24:00".into(), "bad time '24:00'"),
        (
            "Mon 22:00-06:00".into(),
            "session '22:00-06:00' in clause 'Mon 22:00-06:00' does not end after it starts; split an overnight \
             session at midnight",
        ),
        ("Mon 09:00-09:00".into(), "session '09:00-09:00' in clause 'Mon 09:00-09:00' does not end after"),
        ("Mon 09:30".into(), "malformed session '09:30'"),
        ("Mon 09:30-16:00 lunch".into(), "malformed session 'lunch'"),
        (format!("{weekdays}; closed 2024-02-30"), "bad date '2024-02-30' in clause 'closed 2024-02-30'"),
        (format!("{weekdays}; closed 2024-1-5"), "bad date '2024-1-5'"),
        (format!("{weekdays}; closed"), "clause 'closed' names no date"),
        (format!("{weekdays}; 2024-11-29"), "dated clause '2024-11-29' has no session"),
        (format!("{weekdays}; 2024-13-01 10:00-11:00"), "bad date '2024-13-01'"),
        (
            format!("{weekdays}; closed 2024-01-16, 2024-01-13"),
            "closed date 2024-01-13 in clause 'closed 2024-01-16, 2024-01-13' is a Saturday, which has no \
             regular session",
        ),
        (
            format!("{weekdays}; 2024-01-14 10:00-12:00"),
            "dated clause '2024-01-14 10:00-12:00': 2024-01-14 is a Sunday, which has no regular session",
        ),
        (
            format!("{weekdays}; 2024-11-29 08:00-13:00"),
            "session 08:00-13:00 is not within the regular sessions of a Friday (09:30-16:00)",
        ),
        (
            "Mon-Fri 09:30-12:00 13:00-16:00; 2024-11-29 11:00-14:00".into(),
            "session 11:00-14:00 is not within the regular sessions of a Friday (09:30-12:00 13:00-16:00)",
        ),
        (
            format!("{weekdays}; closed 2024-11-29; 2024-11-29 09:30-13:00"),
            "2024-11-29 is both closed and given a dated session",
        ),
        (
            format!("{weekdays}; 2024-11-29 09:30-13:00; 2024-11-29 10:00-11:00"),
            "2024-11-29 is given two dated clauses, '2024-11-29 09:30-13:00' and '2024-11-29 10:00-11:00'",
        ),
    ];
    for (text, expected) in cases {
        match text.parse::<Schedule>() {
            Err(err @ Error::InvalidSchedule { .. }) => {
                assert!(err.to_string().contains(expected), "{text}: {err}")
            }
            other => panic!("{text}: expected InvalidSchedule containing {expected:?}, got {other:?}"),
        }
    }
}

#[test]
fn nyse_hand_examples() {
    let nyse = schedule(NYSE);
    // 2024-01-16 is a Tuesday in EST (UTC-5).
    assert_eq!(
        between(&nyse, "2024-01-16", "2024-01-17"),
        utc_ranges(&[("2024-01-16T14:30:00Z", "2024-01-16T21:00:00Z")])
    );
    assert_eq!(between(&nyse, "2024-01-15", "2024-01-16"), [], "closed (MLK day)");
    assert_eq!(between(&nyse, "2024-01-13", "2024-01-15"), [], "weekend");
    assert_eq!(
        between(&nyse, "2024-11-29", "2024-11-30"),
        utc_ranges(&[("2024-11-29T14:30:00Z", "2024-11-29T18:00:00Z")]),
        "the day after Thanksgiving closes at 13:00"
    );
    assert_eq!(nyse.sessions_between(ns("2024-01-13"), ns("2024-01-20"), &tz("UTC")).len(), 4);
    // The window clips, to the nanosecond.
    let (from, to) = (ns("2024-01-16T15:00:00Z"), ns("2024-01-16T16:00:00.5Z"));
    assert_eq!(nyse.sessions_between(from, to, &tz("UTC")), [from..to]);
}

#[test]
fn without_a_zone_the_default_zone_applies() {
    let s = schedule("Mon-Fri 09:30-16:00");
    let (from, to) = (ns("2024-01-16"), ns("2024-01-17"));
    assert_eq!(
        s.sessions_between(from, to, &tz("America/New_York")),
        [ns("2024-01-16T14:30:00Z")..ns("2024-01-16T21:00:00Z")]
    );
    assert_eq!(s.sessions_between(from, to, &tz("+05:30")), [ns("2024-01-16T04:00:00Z")..ns("2024-01-16T10:30:00Z")]);
    // A zone clause wins over the default.
    let tokyo = schedule("Asia/Tokyo; Mon-Fri 09:00-15:00");
    assert_eq!(tokyo.sessions_between(from, to, &tz("America/New_York")), [from..ns("2024-01-16T06:00:00Z")]);
}

#[test]
fn new_york_dst_days_are_23_and_25_hours_long() {
    let sundays = schedule("America/New_York; Sun 00:00-24:00");
    assert_eq!(
        between(&sundays, "2024-03-09", "2024-03-12"),
        utc_ranges(&[("2024-03-10T05:00:00Z", "2024-03-11T04:00:00Z")])
    );
    assert_eq!(
        between(&sundays, "2024-11-02", "2024-11-05"),
        utc_ranges(&[("2024-11-03T04:00:00Z", "2024-11-04T05:00:00Z")])
    );
    // 02:00-03:00 does not exist on 2024-03-10, and 01:00-02:00 happens twice on 2024-11-03.
    let night = schedule("America/New_York; daily 01:00-03:00");
    assert_eq!(
        between(&night, "2024-03-10", "2024-03-11"),
        utc_ranges(&[("2024-03-10T06:00:00Z", "2024-03-10T07:00:00Z")])
    );
    assert_eq!(
        between(&night, "2024-11-03", "2024-11-04"),
        utc_ranges(&[("2024-11-03T05:00:00Z", "2024-11-03T08:00:00Z")])
    );
    // Whole days merge across both switches into one range.
    let daily = schedule("America/New_York; daily 00:00-24:00");
    for (from, to) in [("2024-03-09", "2024-03-12"), ("2024-11-02T13:17:00Z", "2024-11-05")] {
        assert_eq!(between(&daily, from, to), utc_ranges(&[(&format_nanos(ns(from)), &format_nanos(ns(to)))]));
    }
}

#[test]
fn london_dst_days_are_23_and_25_hours_long() {
    let sundays = schedule("Europe/London; Sun 00:00-24:00");
    assert_eq!(
        between(&sundays, "2024-03-30", "2024-04-02"),
        utc_ranges(&[("2024-03-31T00:00:00Z", "2024-03-31T23:00:00Z")])
    );
    assert_eq!(
        between(&sundays, "2024-10-26", "2024-10-29"),
        utc_ranges(&[("2024-10-26T23:00:00Z", "2024-10-28T00:00:00Z")])
    );
    // 01:00-02:00 does not exist on 2024-03-31, and happens twice on 2024-10-27.
    let night = schedule("Europe/London; daily 01:00-03:00");
    assert_eq!(
        between(&night, "2024-03-31", "2024-04-01"),
        utc_ranges(&[("2024-03-31T01:00:00Z", "2024-03-31T02:00:00Z")])
    );
    assert_eq!(
        between(&night, "2024-10-27", "2024-10-28"),
        utc_ranges(&[("2024-10-27T00:00:00Z", "2024-10-27T03:00:00Z")])
    );
}

#[test]
fn empty_and_extreme_windows_do_not_panic() {
    let daily = schedule("daily 00:00-24:00");
    assert_eq!(daily.sessions_between(5, 5, &tz("UTC")), []);
    assert_eq!(daily.sessions_between(6, 5, &tz("UTC")), []);
    assert_eq!(daily.sessions_between(i64::MIN, i64::MAX, &tz("+05:30")), [i64::MIN..i64::MAX]);
    assert_eq!(daily.sessions_between(i64::MIN, i64::MAX, &tz("UTC")), [i64::MIN..i64::MAX]);
    let nyse = schedule(NYSE);
    for (from, to) in [(i64::MIN, i64::MIN + 10 * DAY_NANOS), (i64::MAX - 10 * DAY_NANOS, i64::MAX)] {
        let ranges = nyse.sessions_between(from, to, &tz("UTC"));
        assert!((5..=8).contains(&ranges.len()), "{ranges:?}");
        assert!(ranges.iter().all(|r| from <= r.start && r.start < r.end && r.end <= to), "{ranges:?}");
        let whole = schedule("America/New_York; daily 00:00-24:00").sessions_between(from, to, &tz("UTC"));
        assert_eq!(whole, [from..to]);
    }
}

// -------------------------------------------------------------------------------------
// Property: sessions_between against a minute-by-minute model
// -------------------------------------------------------------------------------------

const ZONES: [&str; 6] = ["America/New_York", "Europe/London", "Australia/Lord_Howe", "Asia/Kolkata", "UTC", "+05:45"];
/// 2024 DST switches (UTC) of the zones above; Lord Howe moves by 30 minutes.
const SWITCHES: [&str; 6] = [
    "2024-03-10T07:00:00Z",
    "2024-11-03T06:00:00Z",
    "2024-03-31T01:00:00Z",
    "2024-10-27T01:00:00Z",
    "2024-04-06T15:00:00Z",
    "2024-10-05T15:30:00Z",
];
const MINUTE_NANOS: i64 = 60_000_000_000;

/// A schedule written as plain data, and the window to check it on.
#[derive(Debug, Clone)]
struct Model {
    zone: Option<&'static str>,
    default_zone: &'static str,
    /// Indexed from Monday; unsorted and possibly overlapping.
    weekly: Vec<Vec<(u16, u16)>>,
    closed: BTreeSet<NaiveDate>,
    dated: BTreeMap<NaiveDate, (u16, u16)>,
    window: Range<i64>,
}

impl Model {
    fn text(&self) -> String {
        let hm = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
        let mut clauses: Vec<String> = self.zone.iter().map(|z| z.to_string()).collect();
        for (day, sessions) in self.weekly.iter().enumerate().filter(|(_, s)| !s.is_empty()) {
            let sessions: Vec<String> = sessions.iter().map(|&(a, b)| format!("{}-{}", hm(a), hm(b))).collect();
            clauses.push(format!("{} {}", DAY_NAMES[day], sessions.join(", ")));
        }
        if !self.closed.is_empty() {
            clauses.push(format!("closed {}", self.closed.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(" ")));
        }
        for (date, &(a, b)) in &self.dated {
            clauses.push(format!("{date} {} - {}", hm(a), hm(b)));
        }
        clauses.join("; ")
    }

    /// The reference definition: the local wall time lies in a session of its local date.
    fn scheduled(&self, secs: i64, zone: &Tz) -> bool {
        let local = chrono::DateTime::from_timestamp(secs, 0).unwrap().with_timezone(zone).naive_local();
        let (date, wall) = (local.date(), i64::from(chrono::Timelike::num_seconds_from_midnight(&local.time())));
        let inside = |&(a, b): &(u16, u16)| i64::from(a) * 60 <= wall && wall < i64::from(b) * 60;
        if self.closed.contains(&date) {
            false
        } else if let Some(session) = self.dated.get(&date) {
            inside(session)
        } else {
            self.weekly[weekday_index(date)].iter().any(inside)
        }
    }
}

/// Session boundaries: often on the half hour (where DST switches fall), else any minute.
fn boundary() -> impl Strategy<Value = u16> {
    prop_oneof![(0u16..=48).prop_map(|h| h * 30), 0u16..=MINUTES_PER_DAY]
}

fn session() -> impl Strategy<Value = (u16, u16)> {
    (boundary(), boundary()).prop_filter_map("empty session", |(a, b)| match a.cmp(&b) {
        Ordering::Less => Some((a, b)),
        Ordering::Greater => Some((b, a)),
        Ordering::Equal => None,
    })
}

fn model() -> impl Strategy<Value = Model> {
    let zone = prop::option::of(prop::sample::select(ZONES.to_vec()));
    let weekly = prop::collection::vec(prop::collection::vec(session(), 0..3), 7)
        .prop_filter("no weekly session", |w| w.iter().any(|d| !d.is_empty()));
    // Start up to 4 days before a switch, 1 to 21 days long, on whole minutes.
    let window = (prop::sample::select(SWITCHES.to_vec()), -4 * 1440i64..=1440, 1440i64..=21 * 1440);
    // (day into the window, closed or dated, which session, where it starts, where it ends)
    let exceptions = prop::collection::vec((0i64..23, any::<bool>(), any::<u16>(), any::<u16>(), any::<u16>()), 0..5);
    let default_zone = prop::sample::select(ZONES.to_vec());
    (zone, default_zone, weekly, window, exceptions).prop_map(
        |(zone, default_zone, weekly, (switch, shift, length), exceptions)| {
            let start = ns(switch) + shift * MINUTE_NANOS;
            let window = start..start + length * MINUTE_NANOS;
            let first_date = chrono::DateTime::from_timestamp_nanos(start).date_naive() - chrono::Days::new(1);
            let mut model =
                Model { zone, default_zone, weekly, closed: BTreeSet::new(), dated: BTreeMap::new(), window };
            for (day, closed, pick, from, to) in exceptions {
                let date = first_date + chrono::Days::new(day as u64);
                let regular = &model.weekly[weekday_index(date)];
                if regular.is_empty() || model.closed.contains(&date) || model.dated.contains_key(&date) {
                    continue;
                }
                if closed {
                    model.closed.insert(date);
                } else {
                    // A sub-session of one regular session, so it lies inside the regular ones.
                    let (a, b) = regular[usize::from(pick) % regular.len()];
                    let start = a + from % (b - a);
                    let end = start + 1 + to % (b - start);
                    model.dated.insert(date, (start, end));
                }
            }
            model
        },
    )
}

/// Checks `sessions_between` on the model's window: the ranges are well-formed, their
/// boundaries are exact to the second, and every minute agrees with the model.
fn check_against_model(model: &Model) -> std::result::Result<(), TestCaseError> {
    let text = model.text();
    let schedule: Schedule = text.parse().map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
    prop_assert_eq!(&schedule.to_string().parse::<Schedule>().unwrap(), &schedule);
    let zone = tz(model.zone.unwrap_or(model.default_zone));
    let Range { start, end } = model.window;
    let ranges = schedule.sessions_between(start, end, &tz(model.default_zone));
    for r in &ranges {
        prop_assert!(start <= r.start && r.start < r.end && r.end <= end, "{:?} outside the window", r);
    }
    for pair in ranges.windows(2) {
        prop_assert!(pair[0].end < pair[1].start, "{:?} not sorted, disjoint and apart", pair);
    }
    // Boundaries are exact to the second (zone transitions may fall between minutes).
    let second = |nanos: i64| nanos / 1_000_000_000;
    for r in &ranges {
        prop_assert!(model.scheduled(second(r.start), &zone) && model.scheduled(second(r.end) - 1, &zone));
        prop_assert!(r.start == start || !model.scheduled(second(r.start) - 1, &zone), "{:?} starts late", r);
        prop_assert!(r.end == end || !model.scheduled(second(r.end), &zone), "{:?} ends early", r);
    }
    let mut next = ranges.iter().peekable();
    for minute in (start..end).step_by(MINUTE_NANOS as usize) {
        while next.next_if(|r| r.end <= minute).is_some() {}
        let inside = next.peek().is_some_and(|r| r.start <= minute);
        prop_assert_eq!(
            inside,
            model.scheduled(minute / 1_000_000_000, &zone),
            "at {} for '{}'",
            format_nanos(minute),
            text
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn sessions_between_matches_a_minute_by_minute_model(model in model()) {
        check_against_model(&model)?;
    }
}

#[test]
fn sessions_near_every_switch_match_the_model_to_the_second() {
    // Every half-hour session within 00:00-05:00, where all the switches fall, on the
    // days around each switch: random schedules rarely put a boundary exactly there.
    let zones = ["America/New_York", "America/New_York", "Europe/London", "Europe/London"];
    let zones = zones.iter().chain(&["Australia/Lord_Howe"; 2]);
    let grid: Vec<u16> = (0..=10).map(|h| h * 30).collect();
    for (&zone, switch) in zones.zip(SWITCHES) {
        let start = ns(switch) - DAY_NANOS;
        for &a in &grid {
            for &b in grid.iter().filter(|&&b| b > a) {
                let model = Model {
                    zone: Some(zone),
                    default_zone: "UTC",
                    weekly: vec![vec![(a, b)]; 7],
                    closed: BTreeSet::new(),
                    dated: BTreeMap::new(),
                    window: start..start + 2 * DAY_NANOS,
                };
                check_against_model(&model).unwrap_or_else(|e| panic!("{}: {e}", model.text()));
            }
        }
    }
}
