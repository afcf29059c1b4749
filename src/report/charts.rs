//! The report's charts, drawn with `plotters` on its SVG backend (text as SVG `<text>`, no
//! font files): each function returns one `<svg>` element ready to inline in the page.
//!
//! Charts never rely on colour alone: the baseline is drawn with circles, the canary with
//! triangles, thresholds are labelled lines, and every series is named in a legend.

use std::error::Error;

use plotters::chart::{MeshStyle, SeriesAnno};
use plotters::coord::{CoordTranslate, Shift};
use plotters::prelude::*;

/// Okabe–Ito colours (distinguishable with the common colour-vision deficiencies).
pub(crate) const BASELINE: RGBColor = RGBColor(0x00, 0x72, 0xB2);
pub(crate) const CANARY: RGBColor = RGBColor(0xD5, 0x5E, 0x00);
const INK: RGBColor = RGBColor(0x22, 0x22, 0x22);
const GUIDE: RGBColor = RGBColor(0x66, 0x66, 0x66);
const GRID: RGBColor = RGBColor(0xE4, 0xE4, 0xE4);
const BAND: RGBColor = RGBColor(0x00, 0x9E, 0x73);

/// Markers drawn along a line: at most this many per series.
const MARKERS: usize = 24;

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type Drawn = Result<(), Box<dyn Error>>;

/// One arm's points `(x, y)`; a `NaN` y breaks the line (a gap).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arm {
    Baseline,
    Canary,
}

impl Arm {
    fn colour(self) -> RGBColor {
        match self {
            Arm::Baseline => BASELINE,
            Arm::Canary => CANARY,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Arm::Baseline => "baseline",
            Arm::Canary => "canary",
        }
    }
}

/// Names a series in the legend, with its arm's line and marker.
fn name_series<'a, DB: DrawingBackend + 'a>(anno: &mut SeriesAnno<'a, DB>, arm: Arm) {
    let colour = arm.colour();
    let line = colour.stroke_width(2);
    let fill = ShapeStyle::from(&colour).filled();
    anno.label(arm.name());
    match arm {
        Arm::Baseline => anno.legend(move |(x, y)| {
            EmptyElement::at((x, y))
                + PathElement::new(vec![(-8, 0), (12, 0)], line)
                + Circle::new((2, 0), 3, fill)
        }),
        Arm::Canary => anno.legend(move |(x, y)| {
            EmptyElement::at((x, y))
                + PathElement::new(vec![(-8, 0), (12, 0)], line)
                + TriangleMarker::new((2, 0), 4, fill)
        }),
    };
}

/// Baseline circles, canary triangles: the arms differ without colour.
fn markers<DB, CT>(chart: &mut ChartContext<'_, DB, CT>, arm: Arm, points: Vec<(f64, f64)>) -> Drawn
where
    DB: DrawingBackend,
    DB::ErrorType: 'static,
    CT: CoordTranslate<From = (f64, f64)>,
{
    let fill = ShapeStyle::from(&arm.colour()).filled();
    match arm {
        Arm::Baseline => chart
            .draw_series(points.into_iter().map(|p| Circle::new(p, 3, fill)))
            .map(|_| ()),
        Arm::Canary => chart
            .draw_series(points.into_iter().map(|p| TriangleMarker::new(p, 4, fill)))
            .map(|_| ()),
    }
    .map_err(|e| e.to_string().into())
}

/// An SVG of `size` drawn by `draw`, with `label` as its accessible name. A chart that cannot
/// be drawn (a bug, not an input error) becomes a sentence saying so: the rest of the report
/// stands.
fn svg(size: (u32, u32), label: &str, draw: impl FnOnce(&Area) -> Drawn) -> String {
    let mut out = String::new();
    let result = {
        let root = SVGBackend::with_string(&mut out, size).into_drawing_area();
        let drawn = root
            .fill(&WHITE)
            .map_err(|e| Box::new(e) as Box<dyn Error>)
            .and_then(|()| draw(&root));
        drawn.and_then(|()| root.present().map_err(|e| Box::new(e) as Box<dyn Error>))
    };
    match result {
        Ok(()) => {
            let label = super::escape(label);
            // inline SVG in HTML needs no namespace declaration (and the page then names no
            // URL at all); the title is what screen readers and tooltips show
            out.replacen(
                " xmlns=\"http://www.w3.org/2000/svg\"",
                &format!(" role=\"img\" aria-label=\"{label}\""),
                1,
            )
            .replacen('>', &format!("><title>{label}</title>"), 1)
        }
        Err(e) => format!(
            "<p class=\"warn\">The chart '{}' could not be drawn: {}</p>",
            super::escape(label),
            super::escape(&e.to_string())
        ),
    }
}

/// The charts' text: 12 px sans-serif in ink.
fn text() -> TextStyle<'static> {
    ("sans-serif", 12).into_font().color(&INK)
}

/// Every chart's mesh: no minor grid lines, light major ones, the house text.
fn house<'m, 'a, 'b, X, Y, DB>(
    mesh: &'m mut MeshStyle<'a, 'b, X, Y, DB>,
) -> &'m mut MeshStyle<'a, 'b, X, Y, DB>
where
    X: plotters::coord::ranged1d::Ranged,
    Y: plotters::coord::ranged1d::Ranged,
    DB: DrawingBackend,
{
    mesh.light_line_style(TRANSPARENT)
        .bold_line_style(GRID)
        .label_style(text())
        .axis_desc_style(text())
}

/// `[lo, hi]` with room around it (a single value gets a band of its own).
fn padded(lo: f64, hi: f64) -> (f64, f64) {
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    let span = hi - lo;
    if span <= 0.0 {
        let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        return (lo - pad, hi + pad);
    }
    (lo - span * 0.05, hi + span * 0.05)
}

fn finite_range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .filter(|v| v.is_finite())
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
}

/// Tick labels: few significant digits, no float noise.
fn tick(v: &f64) -> String {
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e6).contains(&a) {
        format!("{v:.1e}")
    } else {
        crate::judge::stats::significant(*v, 4)
    }
}

/// The finite runs of `points` (split at NaN values).
fn segments(points: &[(f64, f64)]) -> Vec<&[(f64, f64)]> {
    points
        .split(|p| !p.1.is_finite() || !p.0.is_finite())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Lines of both arms over time, with sparse markers and a legend.
pub(crate) fn series(
    label: &str,
    x_desc: &str,
    arms: &[(Arm, &[(f64, f64)])],
    x_range: (f64, f64),
) -> String {
    svg((720, 260), label, |root| {
        let y = finite_range(arms.iter().flat_map(|(_, p)| p.iter().map(|q| q.1)))
            .unwrap_or((0.0, 1.0));
        let (y0, y1) = padded(y.0, y.1);
        let (x0, x1) = if x_range.1 > x_range.0 {
            x_range
        } else {
            padded(x_range.0, x_range.1)
        };
        let mut chart = ChartBuilder::on(root)
            .margin(10)
            .x_label_area_size(34)
            .y_label_area_size(62)
            .build_cartesian_2d(x0..x1, y0..y1)?;
        house(&mut chart.configure_mesh())
            .x_desc(x_desc)
            .x_labels(8)
            .y_labels(6)
            .x_label_formatter(&tick)
            .y_label_formatter(&tick)
            .draw()?;
        for (arm, points) in arms {
            let arm = *arm;
            let colour = arm.colour();
            let mut first = true;
            for seg in segments(points) {
                let drawn = chart
                    .draw_series(LineSeries::new(seg.iter().copied(), colour.stroke_width(2)))?;
                if first {
                    name_series(drawn, arm);
                    first = false;
                }
            }
            let every = points.len().div_ceil(MARKERS).max(1);
            let marks: Vec<(f64, f64)> = points
                .iter()
                .step_by(every)
                .copied()
                .filter(|p| p.1.is_finite())
                .collect();
            markers(&mut chart, arm, marks)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(GUIDE)
            .label_font(text())
            .draw()?;
        Ok(())
    })
}

/// Empirical distribution functions of both arms (sorted finite values, already thinned for
/// display).
pub(crate) fn ecdf(label: &str, arms: &[(Arm, Vec<(f64, f64)>)]) -> String {
    svg((360, 260), label, |root| {
        let x = finite_range(arms.iter().flat_map(|(_, p)| p.iter().map(|q| q.0)))
            .unwrap_or((0.0, 1.0));
        let (x0, x1) = padded(x.0, x.1);
        let mut chart = ChartBuilder::on(root)
            .margin(10)
            .x_label_area_size(34)
            .y_label_area_size(40)
            .build_cartesian_2d(x0..x1, 0.0..1.0)?;
        house(&mut chart.configure_mesh())
            .x_desc("value")
            .y_desc("share ≤ value")
            .x_labels(5)
            .y_labels(5)
            .x_label_formatter(&tick)
            .y_label_formatter(&tick)
            .draw()?;
        for (arm, points) in arms {
            let arm = *arm;
            let colour = arm.colour();
            // a step function: flat until the next value
            let mut steps = Vec::with_capacity(points.len() * 2 + 1);
            let mut last = 0.0;
            for &(v, share) in points {
                steps.push((v, last));
                steps.push((v, share));
                last = share;
            }
            if let Some(&(v, _)) = points.last() {
                steps.push((x1.max(v), 1.0));
            }
            name_series(
                chart.draw_series(LineSeries::new(steps, colour.stroke_width(2)))?,
                arm,
            );
            let every = points.len().div_ceil(MARKERS / 2).max(1);
            let marks: Vec<(f64, f64)> = points.iter().step_by(every).copied().collect();
            markers(&mut chart, arm, marks)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(GUIDE)
            .label_font(text())
            .draw()?;
        Ok(())
    })
}

/// A horizontal reference line with its label, inside the chart's plotting area.
struct Guide {
    y: f64,
    text: String,
}

/// The score of every judgment (x: time into the run) against the thresholds; each
/// point's marker says its classification (circle pass, triangle marginal, cross fail).
pub(crate) fn scores(
    label: &str,
    x_desc: &str,
    points: &[(f64, f64, &str)],
    pass: f64,
    marginal: f64,
) -> String {
    svg((720, 240), label, |root| {
        let x = finite_range(points.iter().map(|p| p.0)).unwrap_or((0.0, 1.0));
        let (x0, x1) = padded(x.0, x.1);
        let mut chart = ChartBuilder::on(root)
            .margin(10)
            .x_label_area_size(34)
            .y_label_area_size(44)
            .build_cartesian_2d(x0..x1, 0.0..105.0)?;
        house(&mut chart.configure_mesh())
            .x_desc(x_desc)
            .y_desc("score")
            .x_labels(8)
            .y_labels(6)
            .x_label_formatter(&tick)
            .draw()?;
        guides(
            &mut chart,
            (x0, x1),
            &[
                Guide {
                    y: pass,
                    text: format!("pass ≥ {}", tick(&pass)),
                },
                Guide {
                    y: marginal,
                    text: format!("marginal ≥ {}", tick(&marginal)),
                },
            ],
        )?;
        chart.draw_series(LineSeries::new(
            points.iter().map(|p| (p.0, p.1)),
            INK.stroke_width(1),
        ))?;
        let of = |c: &'static [&str]| {
            points
                .iter()
                .filter(move |p| c.contains(&p.2))
                .map(|p| (p.0, p.1))
        };
        chart.draw_series(of(&["Pass"]).map(|p| Circle::new(p, 4, BAND.filled())))?;
        chart.draw_series(
            of(&["Marginal"])
                .map(|p| TriangleMarker::new(p, 5, RGBColor(0xE6, 0x9F, 0x00).filled())),
        )?;
        chart.draw_series(
            points
                .iter()
                .filter(|p| p.2 != "Pass" && p.2 != "Marginal")
                .map(|p| Cross::new((p.0, p.1), 5, RGBColor(0xCC, 0x00, 0x00).stroke_width(2))),
        )?;
        Ok(())
    })
}

fn guides<DB: DrawingBackend, X, Y>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<X, Y>>,
    (x0, x1): (f64, f64),
    lines: &[Guide],
) -> Drawn
where
    X: plotters::coord::ranged1d::Ranged<ValueType = f64>,
    Y: plotters::coord::ranged1d::Ranged<ValueType = f64>,
    DB::ErrorType: 'static,
{
    for g in lines {
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(x0, g.y), (x1, g.y)],
                GUIDE.stroke_width(1),
            )))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(std::iter::once(Text::new(
                g.text.clone(),
                (x0, g.y),
                ("sans-serif", 12).into_font().color(&GUIDE),
            )))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// An evidence path over the judgments on a log scale: e-values (sequential judges, against
/// `1/α`) or p-values (against `α`).
pub(crate) fn path(
    label: &str,
    x_desc: &str,
    y_desc: &str,
    points: &[(f64, f64)],
    line: (f64, String),
) -> String {
    svg((360, 240), label, |root| {
        let x = finite_range(points.iter().map(|p| p.0)).unwrap_or((0.0, 1.0));
        let (x0, x1) = padded(x.0, x.1);
        let floor = 1e-12;
        let ys = points.iter().map(|p| p.1.max(floor)).chain([line.0]);
        let (lo, hi) = finite_range(ys).unwrap_or((0.1, 10.0));
        let (y0, y1) = (lo.min(line.0 / 10.0).max(floor), hi.max(line.0 * 10.0));
        let mut chart = ChartBuilder::on(root)
            .margin(10)
            .x_label_area_size(34)
            .y_label_area_size(54)
            .build_cartesian_2d(x0..x1, (y0..y1).log_scale())?;
        house(&mut chart.configure_mesh())
            .x_desc(x_desc)
            .y_desc(y_desc)
            .x_labels(5)
            .y_labels(6)
            .x_label_formatter(&tick)
            .y_label_formatter(&tick)
            .draw()?;
        guides(
            &mut chart,
            (x0, x1),
            &[Guide {
                y: line.0,
                text: line.1.clone(),
            }],
        )?;
        let pts: Vec<(f64, f64)> = points
            .iter()
            .filter(|p| p.1.is_finite())
            .map(|p| (p.0, p.1.max(floor)))
            .collect();
        chart.draw_series(LineSeries::new(pts.iter().copied(), CANARY.stroke_width(2)))?;
        let every = pts.len().div_ceil(MARKERS).max(1);
        markers(
            &mut chart,
            Arm::Canary,
            pts.iter().step_by(every).copied().collect(),
        )?;
        Ok(())
    })
}

/// Old against new score of re-judged judgments: on the diagonal nothing changed; a changed
/// verdict is a cross, an unchanged one a circle.
pub(crate) fn rescored(
    label: &str,
    points: &[(f64, f64, bool)],
    pass: f64,
    marginal: f64,
) -> String {
    svg((420, 400), label, |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(44)
            .build_cartesian_2d(-2.0..102.0, -2.0..102.0)?;
        house(&mut chart.configure_mesh())
            .x_desc("old score")
            .y_desc("new score")
            .x_labels(6)
            .y_labels(6)
            .draw()?;
        guides(
            &mut chart,
            (-2.0, 102.0),
            &[
                Guide {
                    y: pass,
                    text: format!("pass ≥ {}", tick(&pass)),
                },
                Guide {
                    y: marginal,
                    text: format!("marginal ≥ {}", tick(&marginal)),
                },
            ],
        )?;
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(0.0, 0.0), (100.0, 100.0)],
            GUIDE.stroke_width(1),
        )))?;
        chart.draw_series(
            points
                .iter()
                .filter(|p| !p.2)
                .map(|p| Circle::new((p.0, p.1), 3, BASELINE.mix(0.5).filled())),
        )?;
        chart.draw_series(
            points
                .iter()
                .filter(|p| p.2)
                .map(|p| Cross::new((p.0, p.1), 5, CANARY.stroke_width(2))),
        )?;
        Ok(())
    })
}

/// One estimate with its interval (either end may be missing or infinite: drawn to the
/// edge) against the no-change value and the allowed band.
pub(crate) struct Effect {
    pub label: String,
    pub estimate: f64,
    pub lower: Option<f64>,
    pub upper: Option<f64>,
    /// No change: 1 for a ratio, 0 for a difference.
    pub null: f64,
    /// The band the effect may fall in without failing the metric, and what it is called.
    pub allowed: Option<(f64, f64, &'static str)>,
}

/// A one-row interval chart.
pub(crate) fn effect(e: &Effect) -> String {
    svg((720, 92), &e.label, |root| {
        let mut vals = vec![e.estimate, e.null];
        vals.extend(e.lower.iter().chain(e.upper.iter()).copied());
        if let Some((lo, hi, _)) = e.allowed {
            vals.extend([lo, hi]);
        }
        let r = finite_range(vals.into_iter()).unwrap_or((0.0, 1.0));
        let (x0, x1) = padded(r.0, r.1);
        let mut chart = ChartBuilder::on(root)
            .margin_left(12)
            .margin_right(18)
            .margin_top(22)
            .x_label_area_size(26)
            .build_cartesian_2d(x0..x1, 0.0..1.0)?;
        house(&mut chart.configure_mesh())
            .disable_y_mesh()
            .disable_y_axis()
            .x_labels(7)
            .x_label_formatter(&tick)
            .draw()?;
        let font = text();
        if let Some((lo, hi, name)) = e.allowed {
            let (lo, hi) = (lo.clamp(x0, x1), hi.clamp(x0, x1));
            chart.draw_series(std::iter::once(Rectangle::new(
                [(lo, 0.15), (hi, 0.85)],
                BAND.mix(0.12).filled(),
            )))?;
            for x in [lo, hi] {
                chart.draw_series(std::iter::once(PathElement::new(
                    vec![(x, 0.1), (x, 0.9)],
                    BAND.stroke_width(1),
                )))?;
            }
            chart.draw_series(std::iter::once(Text::new(
                name.to_string(),
                (lo, 0.98),
                font.clone(),
            )))?;
        }
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(e.null, 0.0), (e.null, 1.0)],
            GUIDE.stroke_width(1),
        )))?;
        let lower = e.lower.map(|l| if l.is_finite() { l.max(x0) } else { x0 });
        let upper = e.upper.map(|u| if u.is_finite() { u.min(x1) } else { x1 });
        if let (Some(l), Some(u)) = (lower, upper) {
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(l, 0.5), (u, 0.5)],
                INK.stroke_width(3),
            )))?;
            for x in [l, u] {
                chart.draw_series(std::iter::once(PathElement::new(
                    vec![(x, 0.35), (x, 0.65)],
                    INK.stroke_width(2),
                )))?;
            }
        }
        if e.estimate.is_finite() {
            chart.draw_series(std::iter::once(
                EmptyElement::at((e.estimate.clamp(x0, x1), 0.5))
                    + Rectangle::new([(-5, -5), (5, 5)], CANARY.filled()),
            ))?;
        }
        Ok(())
    })
}

/// Thin a series to at most `budget` points for display: each bucket of consecutive points
/// keeps its lowest and highest value in time order, so spikes stay visible; a bucket with
/// only NaN values keeps one NaN (a gap). The statistics never see this.
pub(crate) fn thin(points: &[(f64, f64)], budget: usize) -> Vec<(f64, f64)> {
    if points.len() <= budget.max(2) {
        return points.to_vec();
    }
    let per = points.len().div_ceil(budget.max(2) / 2);
    let mut out = Vec::with_capacity(budget + 2);
    for chunk in points.chunks(per) {
        let finite = || chunk.iter().enumerate().filter(|(_, p)| p.1.is_finite());
        let lo = finite().min_by(|a, b| a.1 .1.total_cmp(&b.1 .1));
        let hi = finite().max_by(|a, b| a.1 .1.total_cmp(&b.1 .1));
        match (lo, hi) {
            (Some((i, a)), Some((j, b))) => {
                if i == j {
                    out.push(*a);
                } else if i < j {
                    out.extend([*a, *b]);
                } else {
                    out.extend([*b, *a]);
                }
            }
            _ => out.push((chunk[0].0, f64::NAN)),
        }
    }
    out
}

/// The empirical distribution of `values` as `(value, share ≤ value)` at no more than
/// `budget` points (evenly spaced ranks, both ends kept).
pub(crate) fn ecdf_points(values: &[f64], budget: usize) -> Vec<(f64, f64)> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return Vec::new();
    }
    let k = budget.max(2).min(n);
    (0..k)
        .map(|i| {
            let rank = if k == 1 { n - 1 } else { i * (n - 1) / (k - 1) };
            (v[rank], (rank + 1) as f64 / n as f64)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thinning_keeps_extremes_gaps_and_order() {
        let mut pts: Vec<(f64, f64)> = (0..10_000).map(|i| (i as f64, (i % 7) as f64)).collect();
        pts[5_000].1 = 1000.0; // a spike
        for p in &mut pts[8_000..8_200] {
            p.1 = f64::NAN; // a hole
        }
        let t = thin(&pts, 400);
        assert!(t.len() <= 402, "{}", t.len());
        assert!(t.iter().any(|p| p.1 == 1000.0), "the spike survives");
        assert!(t.iter().any(|p| p.1.is_nan()), "the hole survives");
        assert!(t.windows(2).all(|w| w[0].0 <= w[1].0), "time order kept");
        let short = thin(&pts[..100], 400);
        assert_eq!(short.len(), 100);
    }

    #[test]
    fn ecdf_points_cover_both_ends() {
        let v: Vec<f64> = (1..=1000).map(f64::from).chain([f64::NAN]).collect();
        let e = ecdf_points(&v, 50);
        assert_eq!(e.len(), 50);
        assert_eq!(e[0], (1.0, 0.001));
        assert_eq!(*e.last().unwrap(), (1000.0, 1.0));
        assert!(ecdf_points(&[f64::NAN], 50).is_empty());
    }

    #[test]
    fn charts_are_svg_without_urls() {
        let b: Vec<(f64, f64)> = (0..50).map(|i| (i as f64, (i as f64).sin())).collect();
        let s = series(
            "latency",
            "minutes",
            &[(Arm::Baseline, &b), (Arm::Canary, &b)],
            (0.0, 49.0),
        );
        assert!(s.starts_with("<svg "), "{}", &s[..80.min(s.len())]);
        assert!(s.contains("<title>latency</title>"));
        assert!(s.contains("polyline"), "lines drawn");
        assert!(!s.contains("http"), "no URL in the SVG");
        let e = effect(&Effect {
            label: "ratio".into(),
            estimate: 1.2,
            lower: Some(1.1),
            upper: Some(f64::INFINITY),
            null: 1.0,
            allowed: Some((0.9, 1.1, "allowed")),
        });
        assert!(e.starts_with("<svg "), "{e}");
    }
}
