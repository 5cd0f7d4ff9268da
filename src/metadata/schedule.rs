//! `Schedule`: the local wall-clock hours in which a table expects data (a trading or duty
//! calendar), so that coverage can ask "which scheduled minutes are missing" rather than
//! "which minutes of the year".
//!
//! Pure; no I/O. The text form is `;`-separated clauses, e.g.
//! `America/New_York; Mon-Fri 09:30-16:00; closed 2024-01-15; 2024-11-29 09:30-13:00`.
//! Invariants, checked at parse: at least one weekly session; each day's sessions are sorted,
//! disjoint and non-touching; every exception (a closed date, a dated session) falls on a
//! weekday with regular sessions, and a dated session lies inside them.
//! [`Schedule::sessions_between`] is exact across daylight-saving switches: a wall time that
//! does not exist has no instant, and a repeated wall time has two.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use arrow::array::timezone::Tz;
use chrono::{Datelike, NaiveDate, Offset, TimeZone};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const NANOS_PER_SECOND: i128 = 1_000_000_000;
const SECONDS_PER_DAY: i64 = 86_400;
const MINUTES_PER_DAY: u16 = 1_440;
/// Days from 0001-01-01 (chrono's day 1) to 1970-01-01.
const UNIX_EPOCH_DAYS_FROM_CE: i64 = 719_163;
/// How far apart the UTC offset is sampled when looking for zone transitions. Two transitions
/// closer than this that cancel out would go unseen; in the tz database that arrow bundles
/// (chrono-tz 0.10) no two transitions of a zone are less than 6.9 days apart, and six hours
/// keeps a ten-year window to ~15k cheap look-ups.
const OFFSET_PROBE_SECONDS: i64 = 6 * 3_600;

const DAY_ABBREVIATIONS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const DAY_NAMES: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];
const EXAMPLE_WEEKLY: &str = "'Mon-Fri 09:30-16:00'";

fn invalid(reason: String) -> Error {
    Error::InvalidSchedule { reason }
}

/// A span of local wall-clock time within one day, `[start, end)`, in whole minutes after
/// midnight. Public because [`Schedule::sessions_on`] returns them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Session {
    start: u16,
    end: u16,
}

impl Session {
    /// The session from `start_minute` to `end_minute` after midnight; the end may be 1440
    /// (24:00) and must be after the start.
    pub fn try_new(start_minute: u16, end_minute: u16) -> Result<Self> {
        if end_minute > MINUTES_PER_DAY || start_minute >= end_minute {
            return Err(invalid(format!(
                "session from minute {start_minute} to minute {end_minute} is not a non-empty span of one day \
                 (0 <= start < end <= 1440)"
            )));
        }
        Ok(Session { start: start_minute, end: end_minute })
    }

    /// Minutes after midnight at which the session starts (inclusive).
    pub fn start_minute(self) -> u16 {
        self.start
    }

    /// Minutes after midnight at which the session ends (exclusive); 1440 is 24:00.
    pub fn end_minute(self) -> u16 {
        self.end
    }
}

impl fmt::Display for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (s, e) = (self.start, self.end);
        write!(f, "{:02}:{:02}-{:02}:{:02}", s / 60, s % 60, e / 60, e % 60)
    }
}

impl FromStr for Session {
    type Err = Error;

    /// Parses `HH:MM-HH:MM`.
    fn from_str(text: &str) -> Result<Self> {
        parse_session(text.trim(), text)
    }
}

/// The time zone clause: the tz value and its canonical name (what `Display` writes).
#[derive(Debug, Clone)]
struct Zone {
    name: String,
    tz: Tz,
}

// `Tz` has no `PartialEq`; the canonical name identifies it.
impl PartialEq for Zone {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for Zone {}

/// An expected schedule: which local wall-clock times of which days data is expected.
///
/// Parsed from and displayed as `;`-separated clauses (keywords and day names are
/// case-insensitive, whitespace around tokens is free):
/// - a zone: an IANA name (`America/New_York`), `UTC` or an offset (`+05:30`); at most one.
///   Without it the caller's zone applies (see [`Schedule::sessions_between`]).
/// - weekly: `<days> <session>...`, days being `Mon`..`Sun` or full names, a range `Mon-Fri`
///   (it may wrap: `Sat-Mon`), a comma list of those, or `daily`; a session is
///   `HH:MM-HH:MM`, start inclusive, end exclusive, `24:00` allowed as an end. Clauses naming
///   the same day add to it; overlapping or touching sessions merge.
/// - `closed <date>...`: no session on those local dates (`YYYY-MM-DD`, comma or space separated).
/// - `<date> <session>...`: on that date exactly these sessions, which must lie inside the
///   regular ones (a shortened day).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    zone: Option<Zone>,
    /// Indexed from Monday; sorted, disjoint, non-touching.
    weekly: [Vec<Session>; 7],
    closed: BTreeSet<NaiveDate>,
    /// Sorted, disjoint, non-touching per date.
    dated: BTreeMap<NaiveDate, Vec<Session>>,
}

impl Schedule {
    /// The schedule's own time zone, if it has a zone clause.
    pub fn zone(&self) -> Option<Tz> {
        self.zone.as_ref().map(|z| z.tz)
    }

    /// The canonical name of the schedule's own time zone, if it has a zone clause.
    pub fn zone_name(&self) -> Option<&str> {
        self.zone.as_ref().map(|z| z.name.as_str())
    }

    /// The regular sessions of `weekday`, before closed dates and dated sessions.
    pub fn regular_sessions(&self, weekday: chrono::Weekday) -> &[Session] {
        &self.weekly[weekday.num_days_from_monday() as usize]
    }

    /// The sessions of the local date `date`: none if closed, its dated sessions if it has
    /// them, else its weekday's regular sessions.
    pub fn sessions_on(&self, date: NaiveDate) -> &[Session] {
        if self.closed.contains(&date) {
            return &[];
        }
        match self.dated.get(&date) {
            Some(sessions) => sessions,
            None => self.regular_sessions(date.weekday()),
        }
    }

    /// The instants in `[start, end)` (nanoseconds since the Unix epoch, UTC) that lie in a
    /// scheduled session, as ascending, disjoint, non-empty half-open nanosecond ranges.
    /// Sessions that touch in time (one ends where the next begins, e.g. 00:00-24:00 on two
    /// consecutive days, or across a DST switch) are merged into one range.
    /// `default_zone` is used when the schedule has no zone clause.
    ///
    /// An instant is scheduled iff its local wall time (in the zone) lies in a session of its
    /// local date. Empty when `start >= end`.
    pub fn sessions_between(&self, start: i64, end: i64, default_zone: &Tz) -> Vec<Range<i64>> {
        let mut out = Vec::new();
        if start >= end {
            return out;
        }
        let tz = self.zone.as_ref().map_or(default_zone, |z| &z.tz);
        // Zone transitions fall on whole seconds, so the offset is constant within each
        // second and the search can run on the seconds that meet the window.
        let first = start.div_euclid(NANOS_PER_SECOND as i64);
        let last = (end - 1).div_euclid(NANOS_PER_SECOND as i64);
        for_each_offset_piece(tz, first, last + 1, |a, b, offset| {
            self.add_piece(a, b, offset, start..end, &mut out);
        });
        out
    }

    /// Adds the scheduled instants of the UTC seconds `[a, b)`, over which the zone's offset
    /// is `offset` seconds, so that wall time is UTC + `offset` throughout.
    fn add_piece(&self, a: i64, b: i64, offset: i64, window: Range<i64>, out: &mut Vec<Range<i64>>) {
        let first_day = (a + offset).div_euclid(SECONDS_PER_DAY);
        let last_day = (b - 1 + offset).div_euclid(SECONDS_PER_DAY);
        for day in first_day..=last_day {
            let midnight = day * SECONDS_PER_DAY - offset;
            for session in self.sessions_on_day(day) {
                let lo = (midnight + i64::from(session.start) * 60).max(a);
                let hi = (midnight + i64::from(session.end) * 60).min(b);
                if lo < hi {
                    push_merged(out, to_window_nanos(lo, &window), to_window_nanos(hi, &window));
                }
            }
        }
    }

    /// [`Schedule::sessions_on`] for a day counted from 1970-01-01.
    fn sessions_on_day(&self, day: i64) -> &[Session] {
        if self.closed.is_empty() && self.dated.is_empty() {
            // 1970-01-01 was a Thursday.
            return &self.weekly[(day + 3).rem_euclid(7) as usize];
        }
        let date = i32::try_from(day + UNIX_EPOCH_DAYS_FROM_CE).ok().and_then(NaiveDate::from_num_days_from_ce_opt);
        date.map_or(&[], |date| self.sessions_on(date))
    }
}

/// Calls `f(a, b, offset)` for consecutive UTC-second spans `[a, b)` covering `[lo, hi)` over
/// each of which the zone's UTC offset is constant (`offset` seconds). Requires `lo < hi`.
fn for_each_offset_piece(tz: &Tz, lo: i64, hi: i64, mut f: impl FnMut(i64, i64, i64)) {
    let mut piece_start = lo;
    let mut offset = offset_at(tz, lo);
    if is_fixed_offset(tz) {
        f(lo, hi, offset);
        return;
    }
    // Invariant: every second of [piece_start, known] has `offset` (up to an unseen
    // cancelling pair of transitions closer than the probe step).
    let mut known = lo;
    while known < hi - 1 {
        let probe = known.saturating_add(OFFSET_PROBE_SECONDS).min(hi - 1);
        if offset_at(tz, probe) == offset {
            known = probe;
            continue;
        }
        // offset_at(l) == offset != offset_at(r): bisect to the first second of the new offset.
        let (mut l, mut r) = (known, probe);
        while r - l > 1 {
            let mid = l + (r - l) / 2;
            if offset_at(tz, mid) == offset {
                l = mid;
            } else {
                r = mid;
            }
        }
        f(piece_start, r, offset);
        piece_start = r;
        offset = offset_at(tz, r);
        known = r;
    }
    f(piece_start, hi, offset);
}

/// The zone's UTC offset, in seconds, at the UTC second `secs`.
fn offset_at(tz: &Tz, secs: i64) -> i64 {
    // Every second of the i64-nanosecond range is a valid chrono date-time; 0 only guards.
    chrono::DateTime::from_timestamp(secs, 0)
        .map_or(0, |utc| i64::from(tz.offset_from_utc_datetime(&utc.naive_utc()).fix().local_minus_utc()))
}

/// Whether `tz` never changes offset (`+05:30`, `UTC`, `Etc/GMT+5`), so needs no transition
/// search: this keeps a whole-range window in such a zone cheap.
fn is_fixed_offset(tz: &Tz) -> bool {
    // Offsets display as `+HH:MM`; IANA names never start with a sign.
    let name = tz.to_string();
    name.starts_with(['+', '-'])
        || name.starts_with("Etc/")
        || ["UTC", "UCT", "GMT", "Zulu", "Universal", "Greenwich"].contains(&name.as_str())
}

/// UTC second `secs` as nanoseconds, clipped to `window` (saturating near the i64 ends).
fn to_window_nanos(secs: i64, window: &Range<i64>) -> i64 {
    (i128::from(secs) * NANOS_PER_SECOND).clamp(i128::from(window.start), i128::from(window.end)) as i64
}

/// Appends `[lo, hi)` to ranges that end at or before `lo`, merging when it touches the last.
fn push_merged(out: &mut Vec<Range<i64>>, lo: i64, hi: i64) {
    if lo >= hi {
        return;
    }
    match out.last_mut() {
        Some(last) if last.end >= lo => last.end = last.end.max(hi),
        _ => out.push(lo..hi),
    }
}

// ---------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------

enum ClauseKind<'a> {
    Zone,
    /// The text after the `closed` keyword.
    Closed(&'a str),
    Dated,
    Weekly,
}

/// Tells the clause kinds apart by their first token: `closed`, a date (starts with a
/// digit), a zone (a sign, a `/`, or a lone word without `:` that is not a day list), else
/// weekly.
fn classify(clause: &str) -> ClauseKind<'_> {
    let (first, rest) = clause.split_once(|c: char| c.is_whitespace() || c == ',').unwrap_or((clause, ""));
    if first.eq_ignore_ascii_case("closed") {
        return ClauseKind::Closed(rest);
    }
    if clause.starts_with(|c: char| c.is_ascii_digit()) {
        return ClauseKind::Dated;
    }
    let lone_word = !clause.contains(char::is_whitespace) && !clause.contains(':');
    if clause.starts_with(['+', '-']) || clause.contains('/') || (lone_word && parse_days(clause, clause).is_err()) {
        return ClauseKind::Zone;
    }
    ClauseKind::Weekly
}

fn parse_zone(clause: &str) -> Result<Zone> {
    let text = if clause.eq_ignore_ascii_case("utc") { "UTC" } else { clause };
    let tz: Tz = text.parse().map_err(|_| {
        invalid(format!(
            "unknown time zone '{clause}' (use an IANA name such as America/New_York, UTC, or an offset such as +05:30)"
        ))
    })?;
    Ok(Zone { name: tz.to_string(), tz })
}

fn parse_day_name(name: &str) -> Option<usize> {
    (0..7).find(|&i| name.eq_ignore_ascii_case(DAY_ABBREVIATIONS[i]) || name.eq_ignore_ascii_case(DAY_NAMES[i]))
}

/// Parses a day list (`daily`, `Mon`, `Mon-Fri`, `Sat-Mon`, `Mon,Wed-Fri`) into weekday flags.
fn parse_days(text: &str, clause: &str) -> Result<[bool; 7]> {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let mut days = [false; 7];
    for item in compact.split(',') {
        if item.eq_ignore_ascii_case("daily") {
            days = [true; 7];
            continue;
        }
        let (from, to) = item.split_once('-').unwrap_or((item, item));
        let day = |name: &str| {
            parse_day_name(name).ok_or_else(|| {
                invalid(format!(
                    "unknown day name '{name}' in clause '{clause}' (use Mon..Sun, a range such as Mon-Fri, or daily)"
                ))
            })
        };
        let (from, to) = (day(from)?, day(to)?);
        // A range may wrap past Sunday: Sat-Mon is Sat, Sun, Mon.
        let span = (to + 7 - from) % 7;
        for i in 0..=span {
            days[(from + i) % 7] = true;
        }
    }
    Ok(days)
}

/// Parses `HH:MM`; `24:00` only when `is_end`.
fn parse_time(text: &str, is_end: bool) -> Option<u16> {
    let b = text.as_bytes();
    if b.len() != 5 || b[2] != b':' || ![b[0], b[1], b[3], b[4]].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let digit = |i: usize| u16::from(b[i] - b'0');
    let (hours, minutes) = (digit(0) * 10 + digit(1), digit(3) * 10 + digit(4));
    let minute = hours * 60 + minutes;
    (minutes < 60 && (hours < 24 || (is_end && minute == MINUTES_PER_DAY))).then_some(minute)
}

fn parse_session(text: &str, clause: &str) -> Result<Session> {
    let (from, to) = text.split_once('-').ok_or_else(|| {
        invalid(format!("malformed session '{text}' in clause '{clause}' (expected HH:MM-HH:MM, e.g. 09:30-16:00)"))
    })?;
    let time = |t: &str, is_end: bool| {
        parse_time(t, is_end).ok_or_else(|| {
            invalid(format!(
                "bad time '{t}' in clause '{clause}' (expected HH:MM from 00:00 to 23:59, or 24:00 as an end)"
            ))
        })
    };
    let (start, end) = (time(from, false)?, time(to, true)?);
    if end <= start {
        return Err(invalid(format!(
            "session '{text}' in clause '{clause}' does not end after it starts; split an overnight session at \
             midnight (e.g. 'Mon 22:00-24:00; Tue 00:00-06:00')"
        )));
    }
    Ok(Session { start, end })
}

/// Splits a list of sessions or dates into items: commas and whitespace separate items, and
/// whitespace around `-` is dropped so that `09:30 - 16:00` is one item.
fn list_items(text: &str) -> Vec<String> {
    let mut joined = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '-' => {
                joined.truncate(joined.trim_end().len());
                joined.push('-');
                while chars.next_if(|c| c.is_whitespace()).is_some() {}
            }
            ',' => joined.push(' '),
            _ => joined.push(c),
        }
    }
    joined.split_whitespace().map(str::to_string).collect()
}

/// Parses a session list, sorted and merged.
fn parse_sessions(text: &str, clause: &str) -> Result<Vec<Session>> {
    let sessions = list_items(text).iter().map(|item| parse_session(item, clause)).collect::<Result<Vec<_>>>()?;
    Ok(merge_sessions(sessions))
}

/// Sorts sessions and merges those that overlap or touch.
fn merge_sessions(mut sessions: Vec<Session>) -> Vec<Session> {
    sessions.sort();
    let mut merged: Vec<Session> = Vec::with_capacity(sessions.len());
    for s in sessions {
        match merged.last_mut() {
            Some(last) if s.start <= last.end => last.end = last.end.max(s.end),
            _ => merged.push(s),
        }
    }
    merged
}

fn parse_date(text: &str, clause: &str) -> Result<NaiveDate> {
    let b = text.as_bytes();
    let shaped = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter().enumerate().all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    let date = if shaped { NaiveDate::parse_from_str(text, "%Y-%m-%d").ok() } else { None };
    date.ok_or_else(|| invalid(format!("bad date '{text}' in clause '{clause}' (expected YYYY-MM-DD)")))
}

fn weekday_index(date: NaiveDate) -> usize {
    date.weekday().num_days_from_monday() as usize
}

impl FromStr for Schedule {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        let mut zone: Option<Zone> = None;
        let mut weekly: [Vec<Session>; 7] = Default::default();
        // The clause of each exception is kept for the messages of the checks below.
        let mut closed: BTreeMap<NaiveDate, &str> = BTreeMap::new();
        let mut dated: BTreeMap<NaiveDate, (Vec<Session>, &str)> = BTreeMap::new();
        let mut clauses = 0;
        for clause in text.split(';').map(str::trim).filter(|c| !c.is_empty()) {
            clauses += 1;
            match classify(clause) {
                ClauseKind::Zone => {
                    let parsed = parse_zone(clause)?;
                    if let Some(previous) = &zone {
                        return Err(invalid(format!(
                            "two time zone clauses, '{}' and '{clause}'; a schedule has at most one",
                            previous.name
                        )));
                    }
                    zone = Some(parsed);
                }
                ClauseKind::Closed(dates) => {
                    let items = list_items(dates);
                    if items.is_empty() {
                        return Err(invalid(format!("clause '{clause}' names no date (e.g. 'closed 2024-12-25')")));
                    }
                    for item in items {
                        closed.insert(parse_date(&item, clause)?, clause);
                    }
                }
                ClauseKind::Dated => {
                    let (date_text, rest) = clause.split_once(char::is_whitespace).unwrap_or((clause, ""));
                    let date = parse_date(date_text, clause)?;
                    let sessions = parse_sessions(rest, clause)?;
                    if sessions.is_empty() {
                        return Err(invalid(format!(
                            "dated clause '{clause}' has no session (to close the day write 'closed {date}')"
                        )));
                    }
                    if let Some((_, first)) = dated.insert(date, (sessions, clause)) {
                        return Err(invalid(format!(
                            "{date} is given two dated clauses, '{first}' and '{clause}'; list all its sessions in one"
                        )));
                    }
                }
                ClauseKind::Weekly => {
                    // Day names hold no digit, so the sessions start at the first digit.
                    let split = clause.find(|c: char| c.is_ascii_digit()).unwrap_or(clause.len());
                    let (days_text, sessions_text) = clause.split_at(split);
                    let days = parse_days(days_text, clause)?;
                    let sessions = parse_sessions(sessions_text, clause)?;
                    if sessions.is_empty() {
                        return Err(invalid(format!(
                            "weekly clause '{clause}' has no session (expected e.g. {EXAMPLE_WEEKLY})"
                        )));
                    }
                    for (day, on) in weekly.iter_mut().zip(days) {
                        if on {
                            day.extend_from_slice(&sessions);
                        }
                    }
                }
            }
        }
        if clauses == 0 {
            return Err(invalid(format!(
                "the schedule is empty; write at least a weekly clause such as {EXAMPLE_WEEKLY}"
            )));
        }
        let weekly = weekly.map(merge_sessions);
        if weekly.iter().all(Vec::is_empty) {
            return Err(invalid(format!(
                "the schedule '{}' has no weekly session; add a clause such as {EXAMPLE_WEEKLY}",
                text.trim()
            )));
        }
        for (date, clause) in &closed {
            if weekly[weekday_index(*date)].is_empty() {
                return Err(invalid(format!(
                    "closed date {date} in clause '{clause}' is a {}, which has no regular session",
                    DAY_NAMES[weekday_index(*date)]
                )));
            }
        }
        for (date, (sessions, clause)) in &dated {
            if closed.contains_key(date) {
                return Err(invalid(format!("{date} is both closed and given a dated session in clause '{clause}'")));
            }
            let day = weekday_index(*date);
            let regular = &weekly[day];
            if regular.is_empty() {
                return Err(invalid(format!(
                    "dated clause '{clause}': {date} is a {}, which has no regular session to shorten",
                    DAY_NAMES[day]
                )));
            }
            // Regular sessions never touch, so lying inside their union means inside one.
            if let Some(outside) =
                sessions.iter().find(|s| !regular.iter().any(|r| r.start <= s.start && s.end <= r.end))
            {
                return Err(invalid(format!(
                    "dated clause '{clause}': session {outside} is not within the regular sessions of a {} ({}); \
                     a shortened session must lie inside them",
                    DAY_NAMES[day],
                    join_sessions(regular)
                )));
            }
        }
        Ok(Schedule {
            zone,
            weekly,
            closed: closed.into_keys().collect(),
            dated: dated.into_iter().map(|(date, (sessions, _))| (date, sessions)).collect(),
        })
    }
}

// ---------------------------------------------------------------------------------------
// Canonical text form
// ---------------------------------------------------------------------------------------

fn join_sessions(sessions: &[Session]) -> String {
    sessions.iter().map(Session::to_string).collect::<Vec<_>>().join(" ")
}

/// Writes ascending weekday indices as `daily` or comma-separated runs (`Mon-Wed,Fri`).
fn format_days(days: &[usize]) -> String {
    if days.len() == 7 {
        return "daily".to_string();
    }
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for &d in days {
        match runs.last_mut() {
            Some(run) if run.1 + 1 == d => run.1 = d,
            _ => runs.push((d, d)),
        }
    }
    let run = |&(a, b): &(usize, usize)| {
        if a == b {
            DAY_ABBREVIATIONS[a].to_string()
        } else {
            format!("{}-{}", DAY_ABBREVIATIONS[a], DAY_ABBREVIATIONS[b])
        }
    };
    runs.iter().map(run).collect::<Vec<_>>().join(",")
}

impl fmt::Display for Schedule {
    /// The canonical form: zone, weekly clauses (one per distinct session set, in order of
    /// their first day), `closed`, then dated clauses by date.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut clauses: Vec<String> = self.zone.iter().map(|z| z.name.clone()).collect();
        let mut written = [false; 7];
        for d in 0..7 {
            if written[d] || self.weekly[d].is_empty() {
                continue;
            }
            let days: Vec<usize> = (d..7).filter(|&e| self.weekly[e] == self.weekly[d]).collect();
            for &e in &days {
                written[e] = true;
            }
            clauses.push(format!("{} {}", format_days(&days), join_sessions(&self.weekly[d])));
        }
        if !self.closed.is_empty() {
            let dates: Vec<String> = self.closed.iter().map(NaiveDate::to_string).collect();
            clauses.push(format!("closed {}", dates.join(", ")));
        }
        for (date, sessions) in &self.dated {
            clauses.push(format!("{date} {}", join_sessions(sessions)));
        }
        f.write_str(&clauses.join("; "))
    }
}

impl Serialize for Schedule {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Schedule {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
