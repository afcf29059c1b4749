//! Human-readable renderings of judge results: terminal tables and the HTML report
//! ([`html`]: one self-contained page of a run or a judgment, charts by [`charts`]).

use std::fmt::Write as _;

mod charts;
pub mod html;

pub use html::{render, Form, ReportInput};

/// `&`, `<`, `>`, `"` and `'` as entities.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

use crate::judge::model::{AnalysisResult, CanaryJudgeResult};
use crate::judge::Thresholds;

/// The HTML report of one judgment: the request's config, series and thresholds, and the
/// result the judge gave it.
pub fn judgment_html(
    request: &crate::judge::JudgeRequest,
    result: &CanaryJudgeResult,
    form: Form,
) -> String {
    render(
        &ReportInput {
            run: None,
            result: Some(result),
            config: &request.canary_config.raw,
            thresholds: request.score_thresholds,
            pairs: &request.metric_set_pair_list,
            series_note: "the values of the request".into(),
            generated_ms: crate::store::now_ms(),
        },
        form,
    )
}

/// The HTML report of a run: its spec, score timeline and every metric of its last
/// judgment, with `pairs` as the series (`note` says what they cover).
pub fn run_html(
    run: &crate::runs::Run,
    pairs: &[crate::judge::MetricSetPair],
    note: &str,
    form: Form,
) -> String {
    let last = run.judgments.last().map(|j| &j.result);
    render(
        &ReportInput {
            run: Some(run),
            result: last,
            config: &run.config,
            thresholds: Thresholds {
                pass: run.spec.pass,
                marginal: run.spec.marginal,
            },
            pairs,
            series_note: note.to_string(),
            generated_ms: crate::store::now_ms(),
        },
        form,
    )
}

/// The HTML report of an archived run (no daemon needed).
pub fn archived_run_html(
    archive: &crate::archive::Archive,
    run_id: &str,
    form: Form,
) -> Result<String, crate::archive::ArchiveError> {
    let (run, pairs, note) = archive.run_report_data(run_id)?;
    Ok(run_html(&run, &pairs, &note, form))
}

/// A fixed-width table of every metric result, the group scores and the verdict.
pub fn judge_table(result: &CanaryJudgeResult, thresholds: Option<Thresholds>) -> String {
    let mut rows: Vec<[String; 9]> = vec![[
        "metric".into(),
        "tags".into(),
        "class".into(),
        "ratio".into(),
        "shift".into(),
        "interval".into(),
        "p-value".into(),
        "method".into(),
        "n canary/base".into(),
    ]];
    for r in &result.results {
        rows.push(metric_row(r));
    }
    let widths: Vec<usize> = (0..9)
        .map(|c| {
            rows.iter()
                .map(|row| row[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    let verdict = result.score.classification.to_uppercase();
    let _ = write!(
        out,
        "{} · verdict {} · score {:.2}",
        result.judge_name, verdict, result.score.score
    );
    if let Some(t) = thresholds {
        let _ = write!(out, " (pass ≥ {}, marginal ≥ {})", t.pass, t.marginal);
    }
    out.push_str("\n\n");
    for (i, row) in rows.iter().enumerate() {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, cell)| {
                let pad = widths[c] - cell.chars().count();
                // numbers right-aligned, text left-aligned
                if i > 0 && matches!(c, 3 | 4 | 6) {
                    format!("{}{}", " ".repeat(pad), cell)
                } else {
                    format!("{}{}", cell, " ".repeat(pad))
                }
            })
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    if !result.group_scores.is_empty() {
        let groups: Vec<String> = result
            .group_scores
            .iter()
            .map(|g| format!("{} {:.2}", g.name, g.score))
            .collect();
        let _ = writeln!(out, "\ngroups: {}", groups.join(" · "));
    }
    let reasons: Vec<String> = result
        .results
        .iter()
        .filter(|r| !r.muted && r.classification != "Pass")
        .filter_map(|r| r.classification_reason.clone())
        .collect();
    if !result.score.classification_reason.is_empty() {
        let _ = writeln!(out, "reason: {}", result.score.classification_reason);
    } else if !reasons.is_empty() {
        let _ = writeln!(out, "reasons: {}", reasons.join("; "));
    }
    for r in &result.results {
        // the gates' sentences, when they did not already fail the metric (met, uncertain,
        // or the baseline breaching)
        let reason = r.classification_reason.as_deref().unwrap_or_default();
        if let Some(slo) = &r.slo {
            let gate = slo.sentence(&slo.gate(), &r.name);
            if !reason.contains(&gate) {
                let _ = writeln!(out, "slo: {gate}");
            }
        }
        if let Some(burn) = &r.error_budget {
            let gate = burn.sentence(&r.name);
            if !reason.contains(&gate) {
                let _ = writeln!(out, "error budget: {gate}");
            }
        }
    }
    if let Some(split) = &result.traffic_split {
        let _ = writeln!(out, "traffic split: {}", split.reason);
    }
    for r in result.results.iter().filter(|r| r.not_judged.is_some()) {
        let tags = if r.tags.is_empty() {
            String::new()
        } else {
            format!(" {{{}}}", metric_row(r)[1])
        };
        let _ = writeln!(
            out,
            "not judged: {}{tags}: {}",
            r.name,
            r.not_judged.as_deref().unwrap_or_default()
        );
    }
    out
}

fn metric_row(r: &AnalysisResult) -> [String; 9] {
    let tags = if r.tags.is_empty() {
        "-".to_string()
    } else {
        r.tags
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut class = r.classification.clone();
    if r.critical {
        class.push_str(" (critical)");
    }
    if r.muted {
        class.push_str(" (muted)");
    }
    if r.not_judged.is_some() {
        class.push_str(" (not judged)");
    }
    use crate::judge::slo::SloState;
    if let Some(slo) = &r.slo {
        match slo.canary.state {
            SloState::Breached => class.push_str(" (SLO breached)"),
            SloState::Uncertain => class.push_str(" (SLO uncertain)"),
            _ => {}
        }
    }
    if let Some(burn) = &r.error_budget {
        match burn.canary.state {
            SloState::Breached => class.push_str(" (burn rate breached)"),
            SloState::Uncertain => class.push_str(" (burn rate uncertain)"),
            _ => {}
        }
    }
    let ratio = r
        .result_metadata
        .as_ref()
        .map_or("-".to_string(), |m| number(m.ratio, 3));
    let (shift, interval, p, method) = test_cells(r);
    let n = format!(
        "{}/{}",
        r.experiment_metadata.stats.count, r.control_metadata.stats.count
    );
    [
        r.name.clone(),
        tags,
        class,
        ratio,
        shift,
        interval,
        p,
        method,
        n,
    ]
}

/// The table's shift, interval, p-value and method cells of a metric's test.
fn test_cells(r: &AnalysisResult) -> (String, String, String, String) {
    let none = || ("-".into(), "-".into(), "-".into(), "-".into());
    let Some(test) = r.result_metadata.as_ref().and_then(|m| m.test.as_ref()) else {
        return none();
    };
    if let Some(t) = test.mann_whitney() {
        return (
            signed(t.estimate),
            format!(
                "[{}, {}] @{:.0}%",
                signed(t.lower),
                signed(t.upper),
                t.achieved_confidence * 100.0
            ),
            pvalue(t.p_value),
            t.method.clone(),
        );
    }
    if let Some(v2) = test.v2() {
        // coalmine-v2: the effect and interval of its first test, the metric's p-value after
        // the correction across metrics, and how each test was done
        let Some(t) = v2.tests.first() else {
            return none();
        };
        return (
            number(t.estimate, 3),
            match (t.lower, t.upper) {
                (Some(l), Some(u)) => format!("[{}, {}]", number(l, 3), number(u, 3)),
                _ => "-".into(),
            },
            pvalue(v2.adjusted_p_value),
            v2.tests
                .iter()
                .map(|t| t.method.as_str())
                .collect::<Vec<_>>()
                .join("+"),
        );
    }
    if let Some(s) = test.sequential() {
        // the sequential judges: the confidence sequence now, the anytime-valid p-value, the
        // test (sequential-paired, -quantile, -count)
        let (estimate, interval) = match &s.confidence_sequence {
            Some(cs) => (
                number(cs.estimate, 3),
                format!(
                    "[{}, {}] @{}%",
                    number(cs.lower, 3),
                    number(cs.upper, 3),
                    // 0.9975 is 99.75 %, not 100 %
                    format!("{:.2}", cs.level * 100.0)
                        .trim_end_matches('0')
                        .trim_end_matches('.')
                ),
            ),
            None => ("-".into(), "-".into()),
        };
        return (estimate, interval, pvalue(s.p_value), s.kind.to_string());
    }
    none()
}

fn number(v: f64, digits: usize) -> String {
    if v.is_nan() {
        "NaN".into()
    } else {
        format!("{v:.digits$}")
    }
}

/// Four significant digits with a sign; scientific notation for very large or small values.
fn signed(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    let a = v.abs();
    if a == 0.0 {
        return "0".into();
    }
    if !(1e-3..1e6).contains(&a) {
        return format!("{v:+.3e}");
    }
    let decimals = (3 - a.log10().floor() as i32).clamp(0, 6) as usize;
    format!("{v:+.decimals$}")
}

fn pvalue(p: f64) -> String {
    if p.is_nan() {
        "NaN".into()
    } else if p < 1e-4 {
        format!("{p:.1e}")
    } else {
        format!("{p:.4}")
    }
}
