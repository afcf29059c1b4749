//! The HTML report: one self-contained page (inline CSS and SVG, no script, no font, no
//! URL) explaining a run or a single judgment.
//!
//! The page is driven by the result's data: every metric result gets a section whatever its
//! judge, the statistics table is the test's own JSON flattened (a field a judge adds shows up
//! without a change here), and a chart is drawn only where its data exists.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use super::charts::{self, Arm, Effect};
use super::escape;
use crate::judge::effect::EffectMeasure;
use crate::judge::model::{AnalysisResult, CanaryJudgeResult, MetricSetPair, TestDetails};
use crate::judge::Thresholds;
use crate::runs::{utc_text as time, Run, RunStatus, Window};

/// Points per arm a series chart draws at most (thinned for display, never for statistics).
const SERIES_POINTS: usize = 400;
/// Points per arm of a distribution chart.
const ECDF_POINTS: usize = 120;

/// Everything a report shows.
pub struct ReportInput<'a> {
    /// The run, for a run's report: its spec, status and every judgment (the score timeline
    /// and each metric's evidence path).
    pub run: Option<&'a Run>,
    /// The judgment detailed metric by metric (a run's last).
    pub result: Option<&'a CanaryJudgeResult>,
    /// The canary config (`CanaryConfig` JSON): each metric's SQL and allowed effect.
    pub config: &'a Value,
    pub thresholds: Thresholds,
    /// Both scopes' series, for the charts (matched to results by name and tags).
    pub pairs: &'a [MetricSetPair],
    /// What the series cover, in words.
    pub series_note: String,
    /// When the page was made (Unix ms).
    pub generated_ms: i64,
}

/// The charts' time axis: seconds for short runs, minutes, hours for runs over a day.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Clock {
    unit_ms: f64,
    unit: &'static str,
}

impl Clock {
    fn for_span(ms: i64) -> Clock {
        let (unit_ms, unit) = if ms < 10 * 60_000 {
            (1e3, "seconds")
        } else if ms > 24 * 3_600_000 {
            (3.6e6, "hours")
        } else {
            (6e4, "minutes")
        };
        Clock { unit_ms, unit }
    }

    /// `ms` after `origin`, in the unit.
    fn x(self, ms: i64, origin: i64) -> f64 {
        (ms - origin) as f64 / self.unit_ms
    }

    fn into_run(self) -> String {
        format!("{} into the run", self.unit)
    }
}

/// The axis for `input`: the run's lifetime, else the span of the series' timestamps.
fn clock_of(input: &ReportInput) -> Clock {
    if let Some(run) = input.run {
        return Clock::for_span(run.spec.lifetime_ms);
    }
    let span = input
        .pairs
        .iter()
        .filter_map(|p| p.times.as_ref())
        .flat_map(|t| t.control.iter().chain(&t.experiment).flatten().copied())
        .fold(None, |acc: Option<(i64, i64)>, t| match acc {
            None => Some((t, t)),
            Some((a, b)) => Some((a.min(t), b.max(t))),
        });
    Clock::for_span(span.map_or(0, |(a, b)| b - a))
}

/// The page's style, scoped to `.cm` so a fragment inside a notebook restyles nothing else.
const STYLE: &str = r#"
.cm{--ink:#222;--muted:#666;--line:#ddd;--fail:#b00020;--warn:#8a5a00;--pass:#00664f;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink);background:#fff;margin:0 auto;max-width:1100px;padding:16px}
.cm *{box-sizing:border-box}
.cm h1{font-size:1.5em;margin:.2em 0}.cm h2{font-size:1.2em;margin:1.4em 0 .4em;border-bottom:1px solid var(--line)}
.cm h3{font-size:1.05em;margin:0 0 .3em}
.cm .verdict{border:3px solid var(--ink);padding:10px 14px;border-radius:6px}
.cm .verdict.fail{border-color:var(--fail)}.cm .verdict.pass{border-color:var(--pass)}.cm .verdict.marginal,.cm .verdict.inconclusive{border-color:var(--warn)}
.cm .badge{display:inline-block;font-weight:700;padding:1px 8px;border:2px solid currentColor;border-radius:4px;white-space:nowrap}
.cm .badge.fail,.cm .cls.high,.cm .cls.low,.cm .cls.nodatafailmetric,.cm .cls.error{color:var(--fail)}
.cm .badge.pass,.cm .cls.pass{color:var(--pass)}.cm .badge.marginal,.cm .badge.inconclusive,.cm .cls.nodata{color:var(--warn)}
.cm .cls{font-weight:700;white-space:nowrap}
.cm .flag{display:inline-block;font-size:.8em;border:1px solid var(--muted);border-radius:3px;padding:0 4px;margin-left:4px;color:var(--muted)}
.cm .tags{color:var(--muted);font-weight:400}
.cm dl.spec{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:.4em 0}
.cm dl.spec dt{color:var(--muted)}.cm dl.spec dd{margin:0;overflow-wrap:anywhere}
.cm table{border-collapse:collapse;margin:.4em 0;font-size:.92em}
.cm th,.cm td{border-bottom:1px solid var(--line);padding:3px 8px;text-align:left;vertical-align:top}
.cm td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.cm .scroll{overflow-x:auto}
.cm section.metric{border:1px solid var(--line);border-radius:6px;padding:10px 12px;margin:14px 0}
.cm section.metric.failing{border-left:6px solid var(--fail)}
.cm .charts{display:flex;flex-wrap:wrap;gap:8px}
.cm .charts figure{margin:0;flex:1 1 340px;min-width:0;max-width:520px}
.cm .charts figure.wide{flex:2 1 560px;max-width:none}
.cm figure svg{width:100%;height:auto;display:block}
.cm figcaption{font-size:.85em;color:var(--muted)}
.cm pre{background:#f6f6f6;padding:8px;overflow-x:auto;white-space:pre-wrap;font-size:.85em}
.cm .warn,.cm .note{color:var(--muted);font-style:italic}
.cm footer{margin-top:2em;color:var(--muted);font-size:.85em}
@media (max-width:600px){.cm{padding:8px;font-size:14px}.cm dl.spec{grid-template-columns:1fr}.cm dl.spec dt{font-weight:700}}
@media print{.cm{max-width:none;padding:0}.cm section.metric{break-inside:avoid}.cm .scroll{overflow:visible}.cm a{color:inherit;text-decoration:none}}
"#;

/// A whole page, or a fragment to embed (a notebook cell: no `<html>`, styles scoped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Page,
    Fragment,
}

/// `body` as a page titled `title`, or as a fragment.
fn wrap(title: &str, body: &str, form: Form) -> String {
    match form {
        Form::Page => format!(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <meta name=\"generator\" content=\"coalmine {}\">\
             <title>{}</title><style>{STYLE}</style></head><body style=\"margin:0\"><div class=\"cm\">{body}</div></body></html>\n",
            env!("CARGO_PKG_VERSION"),
            escape(title),
        ),
        Form::Fragment => format!("<div class=\"cm\"><style>{STYLE}</style>{body}</div>"),
    }
}

/// Render the report.
pub fn render(input: &ReportInput, form: Form) -> String {
    let mut out = String::with_capacity(256 * 1024);
    let name = input
        .config
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("canary");
    let (verdict, score, reason) = headline(input);
    let title = format!(
        "{name} — {} — coalmine canary report",
        verdict.to_uppercase()
    );
    let class = verdict.to_lowercase();
    let _ = write!(
        out,
        "<header class=\"verdict {class}\"><h1>{}</h1><p><span class=\"badge {class}\" id=\"verdict\">{} {}</span>",
        escape(name),
        verdict_symbol(&class),
        escape(&verdict.to_uppercase()),
    );
    if let Some(s) = score {
        let _ = write!(
            out,
            " score <b id=\"score\">{}</b> (pass ≥ {}, marginal ≥ {})",
            fmt_num(s),
            fmt_num(input.thresholds.pass),
            fmt_num(input.thresholds.marginal)
        );
    }
    out.push_str("</p>");
    if !reason.is_empty() {
        let _ = write!(out, "<p id=\"reason\">{}</p>", escape(&reason));
    }
    out.push_str("</header>");

    let clock = clock_of(input);
    if let Some(run) = input.run {
        run_section(&mut out, run, input, clock);
    }
    match input.result {
        Some(result) => {
            // one order for the summary and the sections, so the anchors line up
            let order = failing_first(&result.results);
            summary_section(&mut out, result, &order);
            out.push_str("<h2 id=\"details\">Metrics in detail</h2>");
            if !input.series_note.is_empty() {
                let _ = write!(
                    out,
                    "<p class=\"note\">Series: {}.</p>",
                    escape(&input.series_note)
                );
            }
            for (n, i) in order.iter().enumerate() {
                metric_section(&mut out, n + 1, &result.results[*i], input, clock);
            }
        }
        None => out.push_str("<p class=\"note\">No judgment yet.</p>"),
    }
    let _ = write!(
        out,
        "<footer>Made by coalmine {} at {}. The charts thin long series for display (each \
         bucket keeps its lowest and highest value); the statistics used every value.</footer>",
        env!("CARGO_PKG_VERSION"),
        time(input.generated_ms)
    );
    wrap(&title, &out, form)
}

/// The verdict, score and reason up front: the run's status, else the judgment's.
fn headline(input: &ReportInput) -> (String, Option<f64>, String) {
    let last = input.result;
    match input.run {
        Some(run) => {
            let reason = run
                .message
                .clone()
                .or_else(|| {
                    last.map(|r| r.score.classification_reason.clone())
                        .filter(|s| !s.is_empty())
                })
                .unwrap_or_default();
            (
                run.status.as_str().to_string(),
                run.judgments.last().map(|j| j.score),
                reason,
            )
        }
        None => match last {
            Some(r) => (
                r.score.classification.clone(),
                Some(r.score.score),
                r.score.classification_reason.clone(),
            ),
            None => ("no judgment".into(), None, String::new()),
        },
    }
}

fn verdict_symbol(class: &str) -> &'static str {
    match class {
        "pass" => "✓",
        "fail" => "✗",
        "marginal" => "≈",
        "inconclusive" => "?",
        "running" => "…",
        "error" => "!",
        "stopped" => "■",
        _ => "·",
    }
}

fn class_symbol(class: &str) -> &'static str {
    match class {
        "High" => "▲",
        "Low" => "▼",
        "Pass" => "✓",
        "Nodata" => "∅",
        "NodataFailMetric" => "∅!",
        "Error" => "!",
        _ => "·",
    }
}

/// 4 significant digits, NaN as "NaN", infinities as ±∞.
fn fmt_num(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "∞" } else { "−∞" }.into()
    } else if v != 0.0 && !(1e-4..1e9).contains(&v.abs()) {
        format!("{v:.3e}")
    } else {
        crate::judge::stats::significant(v, 4)
    }
}

fn duration(ms: i64) -> String {
    humantime::format_duration(std::time::Duration::from_millis(ms.max(0) as u64)).to_string()
}

fn tags_text(tags: &BTreeMap<String, String>) -> String {
    tags.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn run_section(out: &mut String, run: &Run, input: &ReportInput, clock: Clock) {
    let s = &run.spec;
    out.push_str("<h2 id=\"run\">Run</h2><dl class=\"spec\">");
    let mut item = |k: &str, v: String| {
        let _ = write!(out, "<dt>{}</dt><dd>{}</dd>", escape(k), escape(&v));
    };
    item("run", run.id.clone());
    if let Some(c) = &s.config_id {
        item("config id", c.clone());
    }
    item(
        "judge",
        input
            .result
            .map(|r| r.judge_name.clone())
            .or_else(|| s.judge.clone())
            .unwrap_or_else(|| "coalmine-v2 (default)".into()),
    );
    item(
        "status",
        format!(
            "{} after {} of {} judgments",
            run.status.as_str(),
            run.judgments.len(),
            s.judgments()
        ),
    );
    for (name, scope) in &s.scopes {
        item(
            &format!("scope '{name}'"),
            format!(
                "baseline {{{}}} · canary {{{}}}",
                tags_text(&scope.control.tags),
                tags_text(&scope.experiment.tags)
            ),
        );
    }
    item(
        "time",
        format!("{} to {}", time(s.start_ms), time(s.end_ms())),
    );
    item(
        "schedule",
        format!(
            "every {} for {}, warm-up {}",
            duration(s.interval_ms),
            duration(s.lifetime_ms),
            duration(s.warmup_ms)
        ),
    );
    item(
        "window",
        match s.window {
            Window::Sliding { ms } => format!("sliding, the last {}", duration(ms)),
            Window::Growing => "growing, from the end of the warm-up".into(),
        },
    );
    item(
        "thresholds",
        format!(
            "pass ≥ {}, marginal ≥ {}",
            fmt_num(s.pass),
            fmt_num(s.marginal)
        ),
    );
    if let Some(m) = s.min_duration_ms {
        item("early pass after", duration(m));
    }
    item("created", time(run.created_ms));
    if let Some(j) = run.judgments.last() {
        item(
            "last judgment",
            format!(
                "#{} at {}, window {} to {}, took {} ms",
                j.index,
                time(j.tick_ms),
                time(j.window_start_ms),
                time(j.window_end_ms),
                fmt_num(j.took_ms)
            ),
        );
    }
    if run.status == RunStatus::Running {
        item(
            "note",
            "the run is still going: this is where it stands".into(),
        );
    }
    out.push_str("</dl>");
    if !run.judgments.is_empty() {
        let points: Vec<(f64, f64, &str)> = run
            .judgments
            .iter()
            .map(|j| {
                (
                    clock.x(j.tick_ms, s.start_ms),
                    j.score,
                    j.classification.as_str(),
                )
            })
            .collect();
        out.push_str(
            "<h2 id=\"timeline\">Score over time</h2><div class=\"charts\"><figure class=\"wide\">",
        );
        out.push_str(&charts::scores(
            "score of every judgment against the thresholds",
            &clock.into_run(),
            &points,
            s.pass,
            s.marginal,
        ));
        let _ = write!(
            out,
            "<figcaption>{} judgment{}; circle pass, triangle marginal, cross fail.</figcaption></figure></div>",
            run.judgments.len(),
            if run.judgments.len() == 1 { "" } else { "s" }
        );
    }
}

/// Metrics that fail the canary first (critical ones first), then those without data or
/// in error, those not judged, those that pass, and muted metrics last; request order within.
fn failing_first(results: &[AnalysisResult]) -> Vec<usize> {
    let rank = |r: &AnalysisResult| -> u8 {
        if r.muted {
            return 6;
        }
        match r.classification.as_str() {
            "High" | "Low" if r.critical => 0,
            "High" | "Low" => 1,
            "NodataFailMetric" | "Error" => 2,
            "Nodata" => 3,
            _ if r.not_judged.is_some() => 4,
            _ => 5,
        }
    };
    let mut order: Vec<usize> = (0..results.len()).collect();
    order.sort_by_key(|&i| rank(&results[i]));
    order
}

fn is_failing(r: &AnalysisResult) -> bool {
    !r.muted
        && matches!(
            r.classification.as_str(),
            "High" | "Low" | "NodataFailMetric" | "Error"
        )
}

fn summary_section(out: &mut String, result: &CanaryJudgeResult, order: &[usize]) {
    let _ = write!(
        out,
        "<h2 id=\"metrics\">Metrics</h2><p>{} metric results by {}, failing first.</p>\
         <div class=\"scroll\"><table><thead><tr><th>metric</th><th>class</th><th>effect</th>\
         <th>interval</th><th>p / e</th><th>n canary / baseline</th><th>reason</th></tr></thead><tbody>",
        result.results.len(),
        escape(&result.judge_name)
    );
    for (n, &i) in order.iter().enumerate() {
        let r = &result.results[i];
        let (effect, interval, evidence) = brief(r);
        let _ = write!(
            out,
            "<tr><td><a href=\"#metric-{}\">{}</a>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{} / {}</td><td>{}</td></tr>",
            n + 1,
            escape(&r.name),
            tags_span(&r.tags),
            class_cell(r),
            escape(&effect),
            escape(&interval),
            escape(&evidence),
            r.experiment_metadata.stats.count,
            r.control_metadata.stats.count,
            escape(
                r.not_judged
                    .as_deref()
                    .or(r.classification_reason.as_deref())
                    .unwrap_or_default()
            ),
        );
    }
    out.push_str("</tbody></table></div>");
    if !result.group_scores.is_empty() {
        // Kayenta leaves a group's classification empty; the column shows when a judge sets it
        let classes = result
            .group_scores
            .iter()
            .any(|g| !g.classification.is_empty());
        let _ = write!(
            out,
            "<table><thead><tr><th>group</th><th>score</th>{}</tr></thead><tbody>",
            if classes { "<th>class</th>" } else { "" }
        );
        for g in &result.group_scores {
            let _ = write!(
                out,
                "<tr><td>{}</td><td class=\"num\">{}</td>",
                escape(&g.name),
                fmt_num(g.score),
            );
            if classes {
                let _ = write!(out, "<td>{}</td>", escape(&g.classification));
            }
            out.push_str("</tr>");
        }
        out.push_str("</tbody></table>");
    }
    if let Some(split) = &result.traffic_split {
        let _ = write!(out, "<p>Traffic split: {}</p>", escape(&split.reason));
    }
}

fn tags_span(tags: &BTreeMap<String, String>) -> String {
    if tags.is_empty() {
        String::new()
    } else {
        format!(
            " <span class=\"tags\">{{{}}}</span>",
            escape(&tags_text(tags))
        )
    }
}

fn class_cell(r: &AnalysisResult) -> String {
    let mut s = format!(
        "<span class=\"cls {}\">{} {}</span>",
        r.classification.to_lowercase(),
        class_symbol(&r.classification),
        escape(&r.classification)
    );
    for (on, flag) in [
        (r.critical, "critical"),
        (r.muted, "muted"),
        (r.not_judged.is_some(), "not judged"),
        (r.inconclusive, "inconclusive"),
    ] {
        if on {
            let _ = write!(s, "<span class=\"flag\">{flag}</span>");
        }
    }
    s
}

/// The effect, interval and evidence of a metric's test, for the summary table.
fn brief(r: &AnalysisResult) -> (String, String, String) {
    let ratio = r.result_metadata.as_ref().map_or(String::from("–"), |m| {
        format!("ratio {}", fmt_num(m.ratio))
    });
    let Some(test) = r.result_metadata.as_ref().and_then(|m| m.test.as_ref()) else {
        return (ratio, "–".into(), "–".into());
    };
    let interval = |l: f64, u: f64| format!("[{}, {}]", fmt_num(l), fmt_num(u));
    match test {
        TestDetails::MannWhitney(t) => (
            format!("shift {}", fmt_num(t.estimate)),
            interval(t.lower, t.upper),
            format!("p {}", fmt_num(t.p_value)),
        ),
        TestDetails::V2(v) => match v.tests.first() {
            Some(t) => (
                format!("{} {}", t.name, fmt_num(t.estimate)),
                match (t.lower, t.upper) {
                    (Some(l), Some(u)) => interval(l, u),
                    _ => "–".into(),
                },
                format!("p {}", fmt_num(v.adjusted_p_value)),
            ),
            None => (
                ratio,
                "–".into(),
                format!("p {}", fmt_num(v.adjusted_p_value)),
            ),
        },
        TestDetails::Sequential(s) => (
            s.confidence_sequence.as_ref().map_or(ratio, |c| {
                format!("{} {}", c.parameter, fmt_num(c.estimate))
            }),
            s.confidence_sequence
                .as_ref()
                .map_or("–".into(), |c| interval(c.lower, c.upper)),
            format!("e {} (1/α {})", fmt_num(s.e_value), fmt_num(s.threshold)),
        ),
    }
}

/// The pairs with a result's series: the same name and tags; for a histogram, its `+Inf`
/// bucket (every request per interval).
fn pair_of<'a>(
    r: &AnalysisResult,
    pairs: &'a [MetricSetPair],
) -> Option<(&'a MetricSetPair, bool)> {
    if let Some(p) = pairs.iter().find(|p| p.name == r.name && p.tags == r.tags) {
        return Some((p, false));
    }
    pairs
        .iter()
        .filter(|p| {
            p.name == r.name
                && p.tags.contains_key("le")
                && r.tags.iter().all(|(k, v)| p.tags.get(k) == Some(v))
        })
        .max_by(|a, b| bound(a).total_cmp(&bound(b)))
        .map(|p| (p, true))
}

fn bound(p: &MetricSetPair) -> f64 {
    p.tags
        .get("le")
        .and_then(|b| crate::query::timeseries::parse_le(b))
        .unwrap_or(f64::NAN)
}

fn metric_section(
    out: &mut String,
    n: usize,
    r: &AnalysisResult,
    input: &ReportInput,
    clock: Clock,
) {
    let _ = write!(
        out,
        "<section class=\"metric{}\" id=\"metric-{n}\"><h3>{} {}{}</h3>",
        if is_failing(r) { " failing" } else { "" },
        class_cell(r),
        escape(&r.name),
        tags_span(&r.tags),
    );
    if let Some(why) = &r.classification_reason {
        let _ = write!(out, "<p>{}</p>", escape(why));
    }
    if let Some(why) = r
        .not_judged
        .as_ref()
        .filter(|w| Some(*w) != r.classification_reason.as_ref())
    {
        let _ = write!(out, "<p>Not judged: {}</p>", escape(why));
    }
    if let Some(slo) = &r.slo {
        let _ = write!(
            out,
            "<p>SLO: {}</p>",
            escape(&slo.sentence(&slo.gate(), &r.name))
        );
    }
    if let Some(burn) = &r.error_budget {
        let _ = write!(
            out,
            "<p>Error budget: {}</p>",
            escape(&burn.sentence(&r.name))
        );
    }
    let origin = input.run.map(|run| run.spec.start_ms);
    let pair = pair_of(r, input.pairs);
    out.push_str("<div class=\"charts\">");
    match pair {
        Some((p, histogram)) => series_charts(out, r, p, histogram, origin, clock),
        None => {
            out.push_str("<p class=\"note\">No series for this metric in the report's data.</p>")
        }
    }
    out.push_str("</div>");
    let effects = effects(r, input.config);
    if !effects.is_empty() {
        out.push_str("<div class=\"charts\">");
        for e in &effects {
            let _ = write!(out, "<figure class=\"wide\">{}<figcaption>{}: estimate (square), interval (bar), no change (grey line){}</figcaption></figure>",
                charts::effect(e), escape(&e.label),
                if e.allowed.is_some() { ", allowed band (green)" } else { "" });
        }
        out.push_str("</div>");
    }
    if let Some(run) = input.run {
        evidence_path(out, r, run, clock);
    }
    numbers_table(out, r, pair.map(|p| p.0), input.config);
    if let Some(test) = r.result_metadata.as_ref().and_then(|m| m.test.as_ref()) {
        let mut rows = Vec::new();
        flatten(
            "",
            &serde_json::to_value(test).unwrap_or(Value::Null),
            &mut rows,
        );
        out.push_str("<details open><summary>The test's statistics</summary><div class=\"scroll\"><table><tbody>");
        for (k, v) in rows {
            let _ = write!(
                out,
                "<tr><th>{}</th><td>{}</td></tr>",
                escape(&k),
                escape(&v)
            );
        }
        out.push_str("</tbody></table></div></details>");
    }
    if let Some(q) = query_of(input.config, &r.name) {
        let _ = write!(
            out,
            "<details open><summary>Query</summary><pre><code>{}</code></pre></details>",
            escape(&q)
        );
    }
    out.push_str("</section>");
}

fn series_charts(
    out: &mut String,
    r: &AnalysisResult,
    p: &MetricSetPair,
    histogram: bool,
    origin: Option<i64>,
    clock: Clock,
) {
    let times = p.times.as_ref();
    let first = times.and_then(|t| {
        t.control
            .iter()
            .chain(&t.experiment)
            .flatten()
            .min()
            .copied()
    });
    let origin = origin.or(first);
    let timed = times.is_some() && origin.is_some();
    let xy = |values: &[f64], ts: Option<&Vec<Option<i64>>>| -> Vec<(f64, f64)> {
        values
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let x = match (ts.and_then(|t| t.get(i).copied().flatten()), origin) {
                    (Some(t), Some(o)) if timed => clock.x(t, o),
                    _ => i as f64,
                };
                (x, v)
            })
            .collect()
    };
    let mut base = xy(&p.control, times.map(|t| &t.control));
    let mut canary = xy(&p.experiment, times.map(|t| &t.experiment));
    base.sort_by(|a, b| a.0.total_cmp(&b.0));
    canary.sort_by(|a, b| a.0.total_cmp(&b.0));
    let finite = |v: &[f64]| v.iter().filter(|x| x.is_finite()).count();
    if finite(&p.control) + finite(&p.experiment) == 0 {
        let _ = write!(
            out,
            "<p class=\"note\">No finite value to draw: {} baseline and {} canary values, all NaN or missing.</p>",
            p.control.len(),
            p.experiment.len()
        );
        return;
    }
    let x_range = charts_range(&base, &canary);
    let what = if histogram {
        format!(
            "{}: requests per interval (bucket le={})",
            r.name,
            p.tags.get("le").map_or("", String::as_str)
        )
    } else {
        format!("{}: baseline and canary over time", r.name)
    };
    let x_desc = if !timed {
        "value index".to_string()
    } else if origin == first {
        format!("{} from the first value", clock.unit)
    } else {
        clock.into_run()
    };
    let b = charts::thin(&base, SERIES_POINTS);
    let c = charts::thin(&canary, SERIES_POINTS);
    let _ = write!(
        out,
        "<figure class=\"wide\">{}<figcaption>{} (baseline: circles, canary: triangles; {} and {} values).</figcaption></figure>",
        charts::series(&what, &x_desc, &[(Arm::Baseline, &b), (Arm::Canary, &c)], x_range),
        escape(&what),
        p.control.len(),
        p.experiment.len()
    );
    if !histogram {
        let _ = write!(
            out,
            "<figure>{}<figcaption>Distributions (empirical CDF).</figcaption></figure>",
            charts::ecdf(
                &format!("{}: distributions", r.name),
                &[
                    (Arm::Baseline, charts::ecdf_points(&p.control, ECDF_POINTS)),
                    (Arm::Canary, charts::ecdf_points(&p.experiment, ECDF_POINTS)),
                ]
            )
        );
    }
}

fn charts_range(a: &[(f64, f64)], b: &[(f64, f64)]) -> (f64, f64) {
    let xs = a.iter().chain(b).map(|p| p.0).filter(|x| x.is_finite());
    xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
        (lo.min(x), hi.max(x))
    })
}

/// A metric's `analysisConfigurations` (`null` when the config has no such metric).
fn analysis_of<'a>(config: &'a Value, metric: &str) -> &'a Value {
    metric_doc(config, metric).map_or(&Value::Null, |m| &m["analysisConfigurations"])
}

fn metric_doc<'a>(config: &'a Value, metric: &str) -> Option<&'a Value> {
    config
        .get("metrics")?
        .as_array()?
        .iter()
        .find(|m| m.get("name").and_then(Value::as_str) == Some(metric))
}

/// The metric's SQL, or its query JSON for other query types.
fn query_of(config: &Value, metric: &str) -> Option<String> {
    let q = metric_doc(config, metric)?.get("query")?;
    Some(match q.get("sql").and_then(Value::as_str) {
        Some(sql) => sql.to_string(),
        None => serde_json::to_string_pretty(q).unwrap_or_default(),
    })
}

/// The estimate-and-interval rows of a metric's test, each on its own scale.
fn effects(r: &AnalysisResult, config: &Value) -> Vec<Effect> {
    let Some(meta) = &r.result_metadata else {
        return Vec::new();
    };
    // the gate as the judges read it: the measure, each side defaulting to no change
    let (measure, lo, hi) = crate::judge::allowed_effect(analysis_of(config, &r.name)).unwrap_or((
        EffectMeasure::MeanRatio,
        1.0,
        1.0,
    ));
    let neutral = measure.neutral();
    let measure = serde_json::to_value(measure)
        .ok()
        .and_then(|m| m.as_str().map(str::to_owned))
        .unwrap_or_default();
    let gate = |label: String, value: f64, neutral: f64| Effect {
        label,
        estimate: value,
        lower: None,
        upper: None,
        null: neutral,
        allowed: Some((lo.min(hi), hi.max(lo), "allowed effect")),
    };
    match &meta.test {
        None => {
            if meta.ratio.is_finite() {
                vec![gate(
                    "mean ratio, canary / baseline".into(),
                    meta.ratio,
                    1.0,
                )]
            } else {
                Vec::new()
            }
        }
        Some(TestDetails::MannWhitney(t)) => vec![
            Effect {
                label: format!(
                    "location shift, canary − baseline, {}% interval",
                    fmt_num(t.achieved_confidence * 100.0)
                ),
                estimate: t.estimate,
                lower: Some(t.lower),
                upper: Some(t.upper),
                null: 0.0,
                allowed: t.bound.is_finite().then_some((
                    -t.bound.abs(),
                    t.bound.abs(),
                    "no-change band",
                )),
            },
            gate(
                format!("effect size ({measure})"),
                t.effect_size.value,
                neutral,
            ),
        ],
        Some(TestDetails::V2(v)) => {
            let mut rows = Vec::new();
            for t in &v.tests {
                let difference = t.method.contains("difference");
                rows.push(Effect {
                    label: format!("{} ({}): estimate and interval", t.name, t.method),
                    estimate: t.estimate,
                    lower: t.lower,
                    upper: t.upper,
                    null: if difference { 0.0 } else { 1.0 },
                    allowed: None,
                });
                let neutral = if t.gate_measure == "cles" { 0.5 } else { 1.0 };
                rows.push(gate(
                    format!("{}: effect gate ({})", t.name, t.gate_measure),
                    t.gate_value,
                    neutral,
                ));
            }
            rows
        }
        Some(TestDetails::Sequential(s)) => {
            let mut rows = Vec::new();
            if let Some(c) = &s.confidence_sequence {
                rows.push(Effect {
                    label: format!(
                        "{}: confidence sequence at {}%",
                        c.parameter,
                        fmt_num(c.level * 100.0)
                    ),
                    estimate: c.estimate,
                    lower: Some(c.lower),
                    upper: Some(c.upper),
                    null: if c.parameter.contains("Shift") {
                        0.0
                    } else {
                        1.0
                    },
                    allowed: None,
                });
            }
            rows.push(gate("effect size".into(), s.effect_size, 1.0));
            rows
        }
    }
}

/// The metric's evidence over the run's judgments: e-values against 1/α for the sequential
/// judges, p-values against α for the fixed-horizon ones.
fn evidence_path(out: &mut String, r: &AnalysisResult, run: &Run, clock: Clock) {
    let mut e_points = Vec::new();
    let mut p_points = Vec::new();
    let mut e_line = None;
    let mut alpha = None;
    for j in &run.judgments {
        let x = clock.x(j.tick_ms, run.spec.start_ms);
        let Some(m) = j
            .result
            .results
            .iter()
            .find(|m| m.name == r.name && m.tags == r.tags)
        else {
            continue;
        };
        match m.result_metadata.as_ref().and_then(|m| m.test.as_ref()) {
            Some(TestDetails::Sequential(s)) => {
                e_points.push((x, s.e_value));
                e_line = Some(s.threshold);
            }
            Some(TestDetails::V2(v)) => {
                p_points.push((x, v.adjusted_p_value));
                alpha = Some(v.family_alpha);
            }
            Some(TestDetails::MannWhitney(t)) => {
                p_points.push((x, t.p_value));
                alpha = Some(1.0 - t.confidence);
            }
            None => {}
        }
    }
    if let (Some(line), false) = (e_line, e_points.is_empty()) {
        let _ = write!(
            out,
            "<div class=\"charts\"><figure>{}<figcaption>E-value at each judgment; the canary is judged worse once it reaches 1/α = {}.</figcaption></figure></div>",
            charts::path(&format!("{}: e-value path", r.name), &clock.into_run(), "e-value", &e_points, (line, format!("1/α = {}", fmt_num(line)))),
            fmt_num(line)
        );
    } else if let (Some(a), true) = (alpha, p_points.len() > 1) {
        let _ = write!(
            out,
            "<div class=\"charts\"><figure>{}<figcaption>p-value at each judgment (each judgment is a test of its own window), against α = {}.</figcaption></figure></div>",
            charts::path(&format!("{}: p-value per judgment", r.name), &clock.into_run(), "p-value", &p_points, (a, format!("α = {}", fmt_num(a)))),
            fmt_num(a)
        );
    }
}

fn numbers_table(
    out: &mut String,
    r: &AnalysisResult,
    pair: Option<&MetricSetPair>,
    config: &Value,
) {
    let (e, c) = (&r.experiment_metadata.stats, &r.control_metadata.stats);
    out.push_str("<div class=\"scroll\"><table class=\"numbers\"><thead><tr><th></th><th>canary</th><th>baseline</th></tr></thead><tbody>");
    let mut row = |k: &str, a: String, b: String| {
        let _ = write!(
            out,
            "<tr><th>{}</th><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            escape(k),
            escape(&a),
            escape(&b)
        );
    };
    if let Some(p) = pair.filter(|p| !p.tags.contains_key("le")) {
        let nan = |v: &[f64]| v.iter().filter(|x| !x.is_finite()).count();
        row(
            "values in the series",
            p.experiment.len().to_string(),
            p.control.len().to_string(),
        );
        row(
            "NaN values",
            nan(&p.experiment).to_string(),
            nan(&p.control).to_string(),
        );
        // the judges' own cleaning, so the counts are the values they dropped
        let analysis = analysis_of(config, &r.name);
        let removed = |v: &[f64]| crate::judge::outliers_removed(analysis, v);
        if let (Some((factor, e)), Some((_, c))) = (removed(&p.experiment), removed(&p.control)) {
            row(
                &format!("outliers removed (IQR × {})", fmt_num(factor)),
                e.to_string(),
                c.to_string(),
            );
        }
    }
    row("values judged", e.count.to_string(), c.count.to_string());
    row("mean", fmt_num(e.mean), fmt_num(c.mean));
    row("standard deviation", fmt_num(e.std), fmt_num(c.std));
    row("min", fmt_num(e.min), fmt_num(c.min));
    row("max", fmt_num(e.max), fmt_num(c.max));
    out.push_str("</tbody></table></div>");
}

/// `(path, value)` rows of a JSON document: nested keys dotted, arrays of objects indexed,
/// short arrays of scalars inline, long ones counted.
fn flatten(prefix: &str, v: &Value, rows: &mut Vec<(String, String)>) {
    let key = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                flatten(&key(k), x, rows);
            }
        }
        Value::Array(a) if a.iter().any(|x| x.is_object() || x.is_array()) => {
            for (i, x) in a.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), x, rows);
            }
        }
        Value::Array(a) if a.len() > 8 => {
            rows.push((prefix.to_string(), format!("{} values", a.len())))
        }
        Value::Array(a) => rows.push((
            prefix.to_string(),
            format!("[{}]", a.iter().map(scalar).collect::<Vec<_>>().join(", ")),
        )),
        x => rows.push((prefix.to_string(), scalar(x))),
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Number(n) => n.as_f64().map_or_else(|| n.to_string(), fmt_num),
        Value::String(s) => s.clone(),
        Value::Null => "–".into(),
        x => x.to_string(),
    }
}

/// Rows of a comparison table shown at most (the rest is counted).
const COMPARISON_ROWS: usize = 200;

/// The page of a re-judge comparison ([`crate::archive::rejudge::Comparison`]'s tables):
/// how many verdicts change, old against new score, and the judgments and metric results
/// that change.
pub fn comparison(
    judgments: &arrow::record_batch::RecordBatch,
    metrics: &arrow::record_batch::RecordBatch,
    seconds: f64,
    thresholds: Thresholds,
    form: Form,
) -> String {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Float64Type, UInt64Type};
    let text = |b: &arrow::record_batch::RecordBatch, n: &str, i: usize| -> String {
        b.column_by_name(n)
            .and_then(|c| c.as_string_opt::<i32>())
            .filter(|c| !c.is_null(i))
            .map_or(String::from("–"), |c| c.value(i).to_string())
    };
    let num = |b: &arrow::record_batch::RecordBatch, n: &str, i: usize| -> f64 {
        b.column_by_name(n)
            .and_then(|c| c.as_primitive_opt::<Float64Type>())
            .filter(|c| !c.is_null(i))
            .map_or(f64::NAN, |c| c.value(i))
    };
    let index = |b: &arrow::record_batch::RecordBatch, i: usize| -> u64 {
        b.column_by_name("judgment")
            .and_then(|c| c.as_primitive_opt::<UInt64Type>())
            .map_or(0, |c| c.value(i))
    };
    let changed = |b: &arrow::record_batch::RecordBatch, i: usize| -> bool {
        b.column_by_name("changed")
            .and_then(|c| c.as_boolean_opt())
            .is_some_and(|c| c.value(i))
    };
    let (nj, nm) = (judgments.num_rows(), metrics.num_rows());
    let cj: Vec<usize> = (0..nj).filter(|&i| changed(judgments, i)).collect();
    let cm: Vec<usize> = (0..nm).filter(|&i| changed(metrics, i)).collect();
    let mut out = String::with_capacity(64 * 1024);
    let _ = write!(
        out,
        "<header class=\"verdict\"><h1>Re-judged archive</h1><p><b id=\"changed\">{}</b> of {} judgments \
         and <b>{}</b> of {} metric results change their classification ({} s).</p></header>",
        cj.len(),
        nj,
        cm.len(),
        nm,
        fmt_num(seconds)
    );
    let points: Vec<(f64, f64, bool)> = (0..nj)
        .map(|i| {
            (
                num(judgments, "old_score", i),
                num(judgments, "new_score", i),
                changed(judgments, i),
            )
        })
        .filter(|p| p.0.is_finite() && p.1.is_finite())
        .collect();
    if !points.is_empty() {
        let _ = write!(
            out,
            "<div class=\"charts\"><figure>{}<figcaption>Each judgment's old and new score; \
             crosses changed their verdict, circles did not.</figcaption></figure></div>",
            charts::rescored(
                "old against new score",
                &points,
                thresholds.pass,
                thresholds.marginal
            )
        );
    }
    if !cj.is_empty() {
        out.push_str("<h2>Judgments that change</h2><div class=\"scroll\"><table><thead><tr><th>run</th>\
            <th>#</th><th>old</th><th>new</th><th>old score</th><th>new score</th></tr></thead><tbody>");
        for &i in cj.iter().take(COMPARISON_ROWS) {
            let _ = write!(
                out,
                "<tr><td>{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                escape(&text(judgments, "run_id", i)),
                index(judgments, i),
                escape(&text(judgments, "old_classification", i)),
                escape(&text(judgments, "new_classification", i)),
                fmt_num(num(judgments, "old_score", i)),
                fmt_num(num(judgments, "new_score", i))
            );
        }
        out.push_str("</tbody></table></div>");
        if cj.len() > COMPARISON_ROWS {
            let _ = write!(
                out,
                "<p class=\"note\">and {} more.</p>",
                cj.len() - COMPARISON_ROWS
            );
        }
    }
    if !cm.is_empty() {
        out.push_str("<h2>Metric results that change</h2><div class=\"scroll\"><table><thead><tr><th>run</th>\
            <th>#</th><th>metric</th><th>old</th><th>new</th><th>new p-value</th><th>new interval</th></tr></thead><tbody>");
        for &i in cm.iter().take(COMPARISON_ROWS) {
            let tags = text(metrics, "tags", i);
            let _ = write!(
                out,
                "<tr><td>{}</td><td class=\"num\">{}</td><td>{}{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">[{}, {}]</td></tr>",
                escape(&text(metrics, "run_id", i)),
                index(metrics, i),
                escape(&text(metrics, "metric", i)),
                if tags.is_empty() || tags == "–" || tags == "{}" { String::new() } else { format!(" <span class=\"tags\">{}</span>", escape(&tags)) },
                escape(&text(metrics, "old_classification", i)),
                escape(&text(metrics, "new_classification", i)),
                fmt_num(num(metrics, "new_p_value", i)),
                fmt_num(num(metrics, "new_lower", i)),
                fmt_num(num(metrics, "new_upper", i)),
            );
        }
        out.push_str("</tbody></table></div>");
        if cm.len() > COMPARISON_ROWS {
            let _ = write!(
                out,
                "<p class=\"note\">and {} more.</p>",
                cm.len() - COMPARISON_ROWS
            );
        }
    }
    let _ = write!(
        out,
        "<footer>Made by coalmine {} at {}.</footer>",
        env!("CARGO_PKG_VERSION"),
        time(crate::store::now_ms())
    );
    let title = format!(
        "Re-judged: {} of {} verdicts change — coalmine",
        cj.len(),
        nj
    );
    wrap(&title, &out, form)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
    }

    #[test]
    fn flattens_nested_statistics() {
        let v = serde_json::json!({"kind": "coalmine-v2", "pValue": 0.01234567,
            "tests": [{"name": "location", "events": [3.0, 4.0]}], "big": (0..20).collect::<Vec<_>>()});
        let mut rows = Vec::new();
        flatten("", &v, &mut rows);
        assert!(
            rows.contains(&("tests[0].name".into(), "location".into())),
            "{rows:?}"
        );
        assert!(
            rows.contains(&("tests[0].events".into(), "[3, 4]".into())),
            "{rows:?}"
        );
        assert!(
            rows.contains(&("pValue".into(), "0.01235".into())),
            "{rows:?}"
        );
        assert!(
            rows.contains(&("big".into(), "20 values".into())),
            "{rows:?}"
        );
    }

    #[test]
    fn numbers_read_without_noise() {
        assert_eq!(fmt_num(f64::NAN), "NaN");
        assert_eq!(fmt_num(f64::INFINITY), "∞");
        assert_eq!(fmt_num(1.23456e-7), "1.235e-7");
        assert_eq!(fmt_num(95.0), "95");
    }
}
