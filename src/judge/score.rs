//! Scoring: Kayenta's `ScoringHelper`, `WeightedSumScorer` and `ThresholdScoreClassifier`.
//!
//! Muted results are ignored. Any critical non-Pass result scores 0; so does a judgment where
//! half or more of the results are `Nodata` (not counting `coalmine-v2`'s inconclusive ones, which
//! only leave the score with the reason). Otherwise each group scores
//! `#Pass/(#Pass+#High+#Low+#NodataFailMetric)·100` (100 when nothing in it counts), and the
//! summary is the weighted sum of group scores, rounded half-up to 2 decimals. Groups without
//! an explicit weight share `100 − Σweights` equally.

use std::collections::BTreeMap;

use serde::Serialize;

use super::classifier::Label;
use super::stats::round_half_up;

/// What the scorer needs of one metric result.
#[derive(Debug, Clone)]
pub struct ScoredResult<'a> {
    pub label: Label,
    pub groups: &'a [String],
    pub critical: bool,
    pub muted: bool,
    pub reason: Option<&'a str>,
    /// `coalmine-v2`: `Nodata` because the data could not reach the level, not because
    /// there was none: not counted towards the "50 % or more Nodata" rule.
    pub inconclusive: bool,
}

/// `{pass, marginal}` score thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Thresholds {
    pub pass: f64,
    pub marginal: f64,
}

/// The summary classification of a judgment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SummaryClass {
    Pass,
    Marginal,
    Fail,
}

impl SummaryClass {
    pub fn as_str(self) -> &'static str {
        match self {
            SummaryClass::Pass => "Pass",
            SummaryClass::Marginal => "Marginal",
            SummaryClass::Fail => "Fail",
        }
    }
}

/// One group's score (unrounded).
#[derive(Debug, Clone, PartialEq)]
pub struct GroupScore {
    pub name: String,
    pub score: f64,
    pub no_data: bool,
}

/// The outcome of scoring.
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    pub summary: f64,
    pub classification: SummaryClass,
    /// `""` when nothing failed the canary outright.
    pub reason: String,
    /// Sorted by group name (Kayenta's order is hash-map order).
    pub groups: Vec<GroupScore>,
}

/// Score classified results (`ScoringHelper.score` minus the JSON).
pub fn score(
    results: &[ScoredResult<'_>],
    group_weights: &BTreeMap<String, f64>,
    thresholds: Thresholds,
) -> Score {
    let counted: Vec<&ScoredResult<'_>> = results.iter().filter(|r| !r.muted).collect();
    let groups = group_scores(&counted);
    let (summary, reason) = if let Some(failed) = counted
        .iter()
        .find(|r| r.critical && r.label != Label::Pass)
    {
        (
            0.0,
            format!("Canary Failed: {}", failed.reason.unwrap_or("null")),
        )
    } else {
        let nodata = counted
            .iter()
            .filter(|r| r.label == Label::Nodata && !r.inconclusive)
            .count();
        let ratio = 100.0 * nodata as f64 / counted.len() as f64; // NaN when nothing counts
        if ratio >= 50.0 {
            (
                0.0,
                "Canary Failed: 50% or more metrics returned NODATA".to_string(),
            )
        } else {
            let inconclusive = counted.iter().filter(|r| r.inconclusive).count();
            let reason = if inconclusive > 0 {
                format!(
                    "Inconclusive: {inconclusive} of {} metrics could not be judged at the configured level and are not in the score",
                    counted.len()
                )
            } else {
                String::new()
            };
            (weighted_sum(&groups, group_weights), reason)
        }
    };
    Score {
        summary,
        classification: classify_score(summary, thresholds),
        reason,
        groups,
    }
}

/// `ThresholdScoreClassifier`: `≥ pass` → Pass, `≥ marginal` → Marginal, else Fail.
pub fn classify_score(score: f64, t: Thresholds) -> SummaryClass {
    if score >= t.pass {
        SummaryClass::Pass
    } else if score >= t.marginal {
        SummaryClass::Marginal
    } else {
        SummaryClass::Fail
    }
}

fn group_scores(results: &[&ScoredResult<'_>]) -> Vec<GroupScore> {
    // (#pass, #counted) per group
    let mut tally: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for r in results {
        for g in r.groups {
            let t = tally.entry(g.as_str()).or_default();
            match r.label {
                Label::Pass => {
                    t.0 += 1;
                    t.1 += 1;
                }
                Label::High | Label::Low | Label::NodataFailMetric => t.1 += 1,
                Label::Nodata | Label::Error => {}
            }
        }
    }
    tally
        .into_iter()
        .map(|(name, (pass, total))| GroupScore {
            name: name.to_string(),
            score: if total == 0 {
                0.0
            } else {
                (pass as f64 / total as f64) * 100.0
            },
            no_data: total == 0,
        })
        .collect()
}

fn weighted_sum(groups: &[GroupScore], weights: &BTreeMap<String, f64>) -> f64 {
    let configured: f64 = weights.values().fold(0.0, |acc, w| acc + w);
    let unweighted = groups
        .iter()
        .filter(|g| !weights.contains_key(&g.name))
        .count();
    let default_weight = if unweighted > 0 {
        (100.0 - configured) / unweighted as f64
    } else {
        0.0
    };
    // fold from +0.0: `Iterator::sum` of f64 starts at -0.0, and Kayenta's empty sum is 0.0
    let sum = groups.iter().fold(0.0, |acc, g| {
        let effective = if g.no_data { 100.0 } else { g.score };
        let weight = weights.get(&g.name).copied().unwrap_or(default_weight);
        acc + effective * (weight / 100.0)
    });
    round_half_up(sum, 2)
}

/// Standalone (continuous) aggregation of a run's final score, Kayenta's
/// `GenerateCanaryAnalysisResultTask`: fails when `score ≤ marginal` or `score < pass`
/// (note `≤` for marginal, unlike [`classify_score`]). `None` thresholds are not checked.
pub fn standalone_passed(final_score: f64, pass: Option<f64>, marginal: Option<f64>) -> bool {
    match (pass, marginal) {
        (None, None) => true,
        (_, Some(m)) if final_score <= m => false,
        (None, _) => true,
        (Some(p), _) => final_score >= p,
    }
}
