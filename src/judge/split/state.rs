//! The traffic-split guard's state and report (what results and runs carry).

use serde::{Deserialize, Serialize};

use crate::judge::sequential::CountTest;

/// The guard's default false-alarm probability over a run.
pub const DEFAULT_ALPHA: f64 = 0.001;
/// The prior concentration of the Dirichlet mixture (savvi's default scale for two arms).
pub const CONCENTRATION: f64 = 100.0;

/// A guard ready to run: the metric, the expected share, the level.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitGuard {
    pub metric: String,
    pub share: f64,
    pub alpha: f64,
}

/// Both arms' events per look.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Looks {
    pub control: Vec<f64>,
    pub experiment: Vec<f64>,
}

impl Looks {
    /// Add one series pair, bucket by bucket.
    pub fn add(&mut self, control: &[f64], experiment: &[f64]) {
        let sum_into = |into: &mut Vec<f64>, values: &[f64]| {
            if into.len() < values.len() {
                into.resize(values.len(), 0.0);
            }
            for (a, v) in into.iter_mut().zip(values) {
                if !v.is_nan() {
                    *a += v;
                }
            }
        };
        sum_into(&mut self.control, control);
        sum_into(&mut self.experiment, experiment);
    }
}

/// The guard's running state: carried from tick to tick by a run, built afresh for a single
/// judgment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SplitState {
    pub metric: String,
    pub share: f64,
    pub alpha: f64,
    test: CountTest,
    /// Looks seen (buckets, with or without events).
    pub looks: u64,
    /// The look at which the e-value first reached `1/alpha`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mismatch_at: Option<u64>,
    /// Why the counts could not be used (a negative or infinite count); the guard stops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalid: Option<String>,
}

impl SplitState {
    pub fn new(guard: &SplitGuard) -> SplitState {
        SplitState {
            metric: guard.metric.clone(),
            share: guard.share,
            alpha: guard.alpha,
            test: CountTest::new(guard.share, CONCENTRATION, &[], guard.alpha).with_dispersion(),
            looks: 0,
            mismatch_at: None,
            invalid: None,
        }
    }

    /// Take the looks in order, checking the split after each.
    pub fn observe(&mut self, looks: &Looks) {
        let n = looks.control.len().max(looks.experiment.len());
        let at = |v: &[f64], i: usize| v.get(i).copied().unwrap_or(0.0);
        for i in 0..n {
            if self.invalid.is_some() {
                return;
            }
            let (c, e) = (at(&looks.control, i), at(&looks.experiment, i));
            self.looks += 1;
            if !(c >= 0.0 && e >= 0.0 && c.is_finite() && e.is_finite()) {
                self.invalid = Some(format!(
                    "{} is not a count at look {} (baseline {c}, canary {e})",
                    self.metric, self.looks
                ));
                return;
            }
            self.test.add(c, e);
            if self.mismatch_at.is_none() && self.test.ln_e_two_sided() >= (1.0 / self.alpha).ln() {
                self.mismatch_at = Some(self.looks);
            }
        }
    }

    pub fn mismatched(&self) -> bool {
        self.mismatch_at.is_some()
    }

    /// What the guard says now.
    pub fn report(&self) -> SplitReport {
        let t = &self.test;
        let (c, e) = (t.events_control, t.events_experiment);
        let n = c + e;
        let (lower, upper) = t.theta_cs_now(self.alpha);
        let phi = t.phi();
        let state = if self.invalid.is_some() {
            SplitStatus::Invalid
        } else if self.mismatched() {
            SplitStatus::Mismatch
        } else if phi.is_infinite() || n == 0.0 {
            SplitStatus::NoData
        } else {
            SplitStatus::Consistent
        };
        let observed = if n > 0.0 { e / n } else { f64::NAN };
        let mut report = SplitReport {
            metric: self.metric.clone(),
            expected_share: self.share,
            observed_share: observed,
            lower,
            upper,
            confidence: 1.0 - self.alpha,
            e_value: t.ln_e_two_sided().exp(),
            alpha: self.alpha,
            looks: self.looks,
            control: c,
            experiment: e,
            dispersion: if phi.is_finite() { phi } else { f64::NAN },
            mismatch_at: self.mismatch_at,
            state,
            reason: String::new(),
        };
        report.reason = report.sentence(self.invalid.as_deref());
        report
    }
}

/// What the guard says of the split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SplitStatus {
    /// No evidence against the expected share (so far).
    Consistent,
    /// The e-value reached `1/alpha`: the canary's share is not the expected one.
    Mismatch,
    /// Too few looks with events to say anything yet.
    NoData,
    /// The metric's values are not counts.
    Invalid,
}

/// `trafficSplit` of a judgment result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SplitReport {
    pub metric: String,
    pub expected_share: f64,
    /// The canary's share of the events so far.
    #[serde(with = "crate::judge::json::kayenta_f64")]
    pub observed_share: f64,
    /// The confidence sequence for the canary's share at `confidence`.
    #[serde(with = "crate::judge::json::kayenta_f64")]
    pub lower: f64,
    #[serde(with = "crate::judge::json::kayenta_f64")]
    pub upper: f64,
    pub confidence: f64,
    /// The two-sided e-value now (the split is mismatched once it has reached `1/alpha`).
    #[serde(with = "crate::judge::json::kayenta_f64")]
    pub e_value: f64,
    pub alpha: f64,
    pub looks: u64,
    /// Events in the baseline and the canary so far.
    pub control: f64,
    pub experiment: f64,
    /// The overdispersion factor the counts are divided by (NaN before 3 looks with events).
    #[serde(with = "crate::judge::json::kayenta_f64")]
    pub dispersion: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mismatch_at: Option<u64>,
    pub state: SplitStatus,
    pub reason: String,
}

fn pct(x: f64) -> String {
    format!("{} %", crate::judge::stats::significant(100.0 * x, 3))
}

impl SplitReport {
    fn sentence(&self, invalid: Option<&str>) -> String {
        let cs = format!(
            "{} confidence sequence {}–{}",
            pct(self.confidence),
            pct(self.lower),
            pct(self.upper)
        );
        let expected = pct(self.expected_share);
        match self.state {
            SplitStatus::Mismatch => format!(
                "Traffic split mismatch on {}: the canary has {} of its events ({cs}) where {expected} is expected, so every comparison rests on a biased sample (e-value reached 1/α = {} at look {})",
                self.metric,
                pct(self.observed_share),
                crate::judge::stats::significant(1.0 / self.alpha, 4),
                self.mismatch_at.unwrap_or(self.looks)
            ),
            SplitStatus::Consistent => format!(
                "Traffic split consistent on {}: the canary has {} of {} events ({cs}), {expected} expected",
                self.metric,
                pct(self.observed_share),
                self.control + self.experiment
            ),
            SplitStatus::NoData => format!(
                "Traffic split not checked yet on {}: {} events over {} looks; the guard needs 3 looks with events",
                self.metric,
                self.control + self.experiment,
                self.looks
            ),
            SplitStatus::Invalid => format!(
                "Traffic split not checked: {}",
                invalid.unwrap_or("the values are not counts")
            ),
        }
    }
}
