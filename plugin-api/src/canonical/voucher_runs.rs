//! Vouchers whose lines do not come together.
//!
//! A voucher's lines must be one run in the stream (decision 0004): the validator
//! sums one voucher at a time, so a voucher whose lines come back after other
//! vouchers' lines passes its balance check — yet the plugin read those lines
//! twice or out of voucher order, and every reader of the snapshot would count
//! them twice. Finding such a voucher takes every voucher met so far, which the
//! agent cannot afford while it syncs (its memory is bounded by the master data,
//! decision 0004); the hub can: 8 bytes per voucher while it verifies a commit
//! (decision 0025).
//!
//! The hub reads a snapshot's lines in stretches on several threads. Each stretch
//! notes a hash of every run's voucher ([`StretchRuns`]); [`RunOrder`] takes the
//! stretches in order and finds the hashes met in more than one run. Only then —
//! a refusal, so rare — are the lines read once more, and [`RepeatedRuns`] names
//! each voucher that comes back, exactly: a hash two different vouchers share
//! is no finding. `ledgerlink plugins check` names them in one pass
//! ([`RepeatedRuns::every_voucher`]), as a partner's test data is small.

use super::{Problem, ValidationReport};
use foldhash::fast::FixedState;
use std::collections::HashSet;
use std::hash::BuildHasher;

/// The hash of a voucher id (the same in every process: the seed is fixed).
fn voucher_hash(voucher_id: &str) -> u64 {
    FixedState::with_seed(0x4c65_6467_6572_6c6b).hash_one(voucher_id)
}

/// Where the runs of voucher lines start: the voucher of the line before.
#[derive(Debug, Default)]
struct RunStart {
    open: Option<String>,
}

impl RunStart {
    /// True when `voucher_id` starts a new run (it is not the voucher of the line before).
    fn starts(&mut self, voucher_id: &str) -> bool {
        match &mut self.open {
            Some(open) if open == voucher_id => false,
            Some(open) => {
                open.clear();
                open.push_str(voucher_id);
                true
            }
            None => {
                self.open = Some(voucher_id.to_owned());
                true
            }
        }
    }
}

/// The vouchers of one stretch of lines, hashed, in the order their runs start.
#[derive(Debug, Default)]
pub struct StretchRuns {
    hashes: Vec<u64>,
    first: Option<String>,
    run: RunStart,
}

impl StretchRuns {
    /// Notes the voucher of the stretch's next line.
    pub fn observe(&mut self, voucher_id: &str) {
        if self.run.starts(voucher_id) {
            self.hashes.push(voucher_hash(voucher_id));
            if self.first.is_none() {
                self.first = Some(voucher_id.to_owned());
            }
        }
    }
}

/// The runs of a snapshot's lines, stretch after stretch: which vouchers may come back.
#[derive(Debug, Default)]
pub struct RunOrder {
    seen: HashSet<u64, FixedState>,
    repeated: HashSet<u64, FixedState>,
    last: Option<String>,
}

impl RunOrder {
    /// Adds the next stretch; its first run continues the last one when it is the same voucher.
    pub fn absorb(&mut self, stretch: StretchRuns) {
        let StretchRuns { hashes, first, run } = stretch;
        let continues = first.is_some() && first == self.last;
        for hash in hashes.into_iter().skip(usize::from(continues)) {
            if !self.seen.insert(hash) {
                self.repeated.insert(hash);
            }
        }
        if run.open.is_some() {
            self.last = run.open;
        }
    }

    /// True when some voucher may have lines in more than one run; [`Self::names`]
    /// then tells, in a second pass over the lines.
    pub fn may_repeat(&self) -> bool {
        !self.repeated.is_empty()
    }

    /// A second pass that names the vouchers whose lines come back, keeping `max_problems`.
    pub fn names(&self, max_problems: usize) -> RepeatedRuns<'_> {
        RepeatedRuns::new(Some(&self.repeated), max_problems)
    }
}

/// Names each run of lines whose voucher had a run before, with its first line's `source_key`.
#[derive(Debug)]
pub struct RepeatedRuns<'o> {
    /// The hashes worth a look (`None`: every voucher).
    candidates: Option<&'o HashSet<u64, FixedState>>,
    run: RunStart,
    /// The candidates met so far, exactly.
    met: HashSet<String, FixedState>,
    max_problems: usize,
    report: ValidationReport,
}

impl<'o> RepeatedRuns<'o> {
    fn new(candidates: Option<&'o HashSet<u64, FixedState>>, max_problems: usize) -> Self {
        Self {
            candidates,
            run: RunStart::default(),
            met: HashSet::default(),
            max_problems,
            report: ValidationReport::default(),
        }
    }

    /// One pass that keeps every voucher id (memory grows with the vouchers).
    pub fn every_voucher(max_problems: usize) -> RepeatedRuns<'static> {
        RepeatedRuns::new(None, max_problems)
    }

    /// Reads the next line.
    pub fn observe(&mut self, voucher_id: &str, source_key: &str) {
        if !self.run.starts(voucher_id) {
            return;
        }
        if self.candidates.is_some_and(|c| !c.contains(&voucher_hash(voucher_id))) {
            return;
        }
        if self.met.insert(voucher_id.to_owned()) {
            return;
        }
        self.report.total_problems += 1;
        if self.report.problems.len() < self.max_problems {
            self.report.problems.push(Problem {
                entity: "voucher_lines".into(),
                source_key: source_key.into(),
                field: "voucher_id".into(),
                message: format!(
                    "the lines of voucher `{voucher_id}` come back here after other vouchers' lines: a \
                     voucher's lines must come together, and lines read twice would be counted twice \
                     (the plugin's query must order lines by voucher and read each once; report it to \
                     the plugin's vendor)"
                ),
            });
        }
    }

    /// The vouchers that came back.
    pub fn finish(self) -> ValidationReport {
        self.report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (voucher, source key) lines: vouchers by letter, keys by position.
    fn lines(vouchers: &str) -> Vec<(String, String)> {
        vouchers.chars().enumerate().map(|(i, v)| (v.to_string(), format!("L{i}"))).collect()
    }

    /// The findings of the two-pass check with the lines cut into stretches at `cuts`.
    fn two_passes(lines: &[(String, String)], cuts: &[usize]) -> ValidationReport {
        let mut order = RunOrder::default();
        let mut bounds = vec![0];
        bounds.extend_from_slice(cuts);
        bounds.push(lines.len());
        for pair in bounds.windows(2) {
            let mut stretch = StretchRuns::default();
            lines[pair[0]..pair[1]].iter().for_each(|(v, _)| stretch.observe(v));
            order.absorb(stretch);
        }
        if !order.may_repeat() {
            return ValidationReport::default();
        }
        let mut names = order.names(10);
        lines.iter().for_each(|(v, k)| names.observe(v, k));
        names.finish()
    }

    fn one_pass(lines: &[(String, String)]) -> ValidationReport {
        let mut names = RepeatedRuns::every_voucher(10);
        lines.iter().for_each(|(v, k)| names.observe(v, k));
        names.finish()
    }

    fn keys(report: &ValidationReport) -> Vec<&str> {
        report.problems.iter().map(|p| p.source_key.as_str()).collect()
    }

    #[test]
    fn a_voucher_that_comes_back_is_named_at_its_second_run() {
        let report = one_pass(&lines("aabbbcaad"));
        assert_eq!(report.total_problems, 1);
        assert_eq!(keys(&report), ["L6"]);
        let problem = &report.problems[0];
        assert_eq!((problem.entity.as_str(), problem.field.as_str()), ("voucher_lines", "voucher_id"));
        assert!(problem.message.contains("voucher `a` come back"), "{}", problem.message);

        assert_eq!(one_pass(&lines("abacada")).total_problems, 3, "every return counts");
        assert!(one_pass(&lines("aaabbbccc")).is_valid(), "runs in any voucher order are fine");
        assert!(one_pass(&lines("cba")).is_valid());
        assert!(one_pass(&[]).is_valid());
    }

    #[test]
    fn stretches_cut_anywhere_find_exactly_what_one_pass_finds() {
        for vouchers in ["aabbbcaad", "abab", "aaaa", "abcdefa", "aabbaabb", "abcabcabc", "ab", "a"] {
            let lines = lines(vouchers);
            let expected = one_pass(&lines);
            let n = lines.len();
            for first in 0..=n {
                assert_eq!(two_passes(&lines, &[first]), expected, "{vouchers} cut at {first}");
                for second in first..=n {
                    assert_eq!(
                        two_passes(&lines, &[first, second]),
                        expected,
                        "{vouchers} cut at {first} and {second}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_run_split_across_stretches_is_one_run() {
        let lines = lines("aaaabbbb");
        assert!(two_passes(&lines, &[2, 6]).is_valid());
        let mut order = RunOrder::default();
        for stretch in [&lines[..2], &lines[2..4], &[][..], &lines[4..]] {
            let mut runs = StretchRuns::default();
            stretch.iter().for_each(|(v, _)| runs.observe(v));
            order.absorb(runs);
        }
        assert!(!order.may_repeat(), "an empty stretch between does not end the run");
    }

    #[test]
    fn the_second_pass_names_only_true_repeats_of_a_candidate_hash() {
        // A candidate set holding the hash of `b` (as a collision would put it there):
        // `b` met once is not a finding.
        let mut order = RunOrder::default();
        order.repeated.insert(voucher_hash("b"));
        let mut names = order.names(10);
        for (v, k) in lines("abca") {
            names.observe(&v, &k);
        }
        assert!(names.finish().is_valid(), "`a` comes back but was no candidate; `b` came once");
    }

    #[test]
    fn problems_are_capped_and_all_counted() {
        let mut names = RepeatedRuns::every_voucher(2);
        for (v, k) in lines("abababab") {
            names.observe(&v, &k);
        }
        let report = names.finish();
        assert_eq!(report.total_problems, 6);
        assert_eq!(keys(&report), ["L2", "L3"]);
    }
}
