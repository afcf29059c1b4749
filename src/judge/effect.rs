//! Effect sizes between experiment (canary) and control (baseline), Kayenta's
//! `judge/stats/EffectSizes.scala`.

use serde::Serialize;

use super::stats::{average_ranks, mean, variance};

/// Which effect size gates a classification (`analysisConfigurations.canary.effectSize.measure`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum EffectMeasure {
    /// `mean(experiment) / mean(control)`.
    #[serde(rename = "meanRatio")]
    MeanRatio,
    /// Common-language effect size `P(experiment > control) + ½ P(tie)`.
    #[serde(rename = "cles")]
    Cles,
}

impl EffectMeasure {
    /// Kayenta: only the exact string `"cles"` selects CLES, anything else is meanRatio.
    pub fn parse(s: &str) -> Self {
        if s == "cles" {
            EffectMeasure::Cles
        } else {
            EffectMeasure::MeanRatio
        }
    }

    /// Default thresholds: 0.5 for CLES (no effect), 1.0 for the mean ratio.
    pub fn neutral(self) -> f64 {
        match self {
            EffectMeasure::Cles => 0.5,
            EffectMeasure::MeanRatio => 1.0,
        }
    }

    pub fn compute(self, control: &[f64], experiment: &[f64]) -> f64 {
        match self {
            EffectMeasure::MeanRatio => mean_ratio(control, experiment),
            EffectMeasure::Cles => cles(control, experiment),
        }
    }
}

/// `mean(experiment) / mean(control)`; NaN when either mean is exactly zero.
pub fn mean_ratio(control: &[f64], experiment: &[f64]) -> f64 {
    let c = mean(control);
    let e = mean(experiment);
    if c == 0.0 || e == 0.0 {
        f64::NAN
    } else {
        e / c
    }
}

/// Common-language effect size (McGraw & Wong 1992) from the rank sum of the experiment in
/// the pooled sample (experiment first): `(2·R₁ − m(m+1)) / (2·n·m)`, `m = |experiment|`.
pub fn cles(control: &[f64], experiment: &[f64]) -> f64 {
    let m = experiment.len();
    let n = control.len();
    let mut pooled = Vec::with_capacity(m + n);
    pooled.extend_from_slice(experiment);
    pooled.extend_from_slice(control);
    let (ranks, _) = average_ranks(&pooled);
    let r1: f64 = ranks[..m].iter().fold(0.0, |acc, &r| acc + r);
    let (mf, nf) = (m as f64, n as f64);
    (2.0 * r1 - mf * (mf + 1.0)) / (2.0 * nf * mf)
}

/// Cohen's d with the pooled sample standard deviation (absolute value).
pub fn cohen_d(control: &[f64], experiment: &[f64]) -> f64 {
    let (nc, ne) = (control.len() as f64, experiment.len() as f64);
    let pooled = (((ne - 1.0) * variance(experiment, true))
        + ((nc - 1.0) * variance(control, true)))
        / (nc + ne - 2.0);
    (mean(experiment) - mean(control)).abs() / pooled.sqrt()
}
