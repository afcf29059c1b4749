//! Descriptive statistics and numeric primitives, bit-compatible with the ones Kayenta uses
//! (Apache commons-math3 3.6.1, `kayenta-judge/.../stats/DescriptiveStatistics.scala`).
//!
//! The judge's outputs (`stats`, `ratio`, classifications on borderline data) depend on the
//! exact floating-point operations, so every function here follows commons-math's algorithm
//! operation by operation rather than the "obvious" formula.

// Constants are copied digit for digit from the reference implementations.
#![allow(clippy::excessive_precision)]

use serde::Serialize;

/// `{min, max, mean, std, count}` of a series, as Kayenta reports it in
/// `experimentMetadata.stats` / `controlMetadata.stats`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct Summary {
    #[serde(with = "crate::judge::json::kayenta_f64")]
    pub min: f64,
    #[serde(with = "crate::judge::json::kayenta_f64")]
    pub max: f64,
    #[serde(with = "crate::judge::json::kayenta_f64")]
    pub mean: f64,
    #[serde(with = "crate::judge::json::kayenta_f64")]
    pub std: f64,
    pub count: u64,
}

/// `v` with `digits` significant digits for messages, without trailing zeros (`300`,
/// `0.00333`, `229.3`); `0` and non-finite values as Rust prints them.
pub fn significant(v: f64, digits: i32) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let decimals = (digits - 1 - v.abs().log10().floor() as i32).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}
/// Kayenta's `summary()`: an empty series gives all zeros (not NaN).
pub fn summary(values: &[f64]) -> Summary {
    if values.is_empty() {
        return Summary {
            min: 0.0,
            max: 0.0,
            mean: 0.0,
            std: 0.0,
            count: 0,
        };
    }
    let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
    for &v in values {
        // commons-math Min/Max ignore NaN unless every value is NaN; the judge never passes NaN.
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    Summary {
        min,
        max,
        mean: mean(values),
        std: variance(values, true).sqrt(),
        count: values.len() as u64,
    }
}

/// commons-math `Mean`: a two-pass mean with a correction term.
///
/// # Formula
/// `m0 = (Σx)/n` (left to right), `mean = m0 + Σ(x − m0)/n`. Empty input gives NaN.
pub fn mean(values: &[f64]) -> f64 {
    let n = values.len() as f64;
    if values.is_empty() {
        return f64::NAN;
    }
    let sum: f64 = values.iter().fold(0.0, |acc, &x| acc + x);
    let m0 = sum / n;
    let correction: f64 = values.iter().fold(0.0, |acc, &x| acc + (x - m0));
    m0 + correction / n
}

/// commons-math `Variance` (bias-corrected when `sample` is true).
///
/// # Formula
/// With `m` = [`mean`], `acc = Σ(x−m)²`, `acc2 = Σ(x−m)`:
/// `var = (acc − acc2²/n) / (n − 1)` (sample) or `/ n` (population). One value gives 0.
pub fn variance(values: &[f64], sample: bool) -> f64 {
    let n = values.len();
    match n {
        0 => f64::NAN,
        1 => 0.0,
        _ => {
            let m = mean(values);
            let (mut acc, mut acc2) = (0.0_f64, 0.0_f64);
            for &x in values {
                let dev = x - m;
                acc += dev * dev;
                acc2 += dev;
            }
            let nf = n as f64;
            let num = acc - (acc2 * acc2 / nf);
            if sample {
                num / (nf - 1.0)
            } else {
                num / nf
            }
        }
    }
}

/// commons-math `Percentile` with `EstimationType.R_7` (R's default `quantile` type).
///
/// `p` is in (0, 100]. Empty input gives NaN, a single value gives that value.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    percentile_sorted(&sorted, p)
}

/// [`percentile`] on data that is already sorted ascending.
pub fn percentile_sorted(sorted: &[f64], p: f64) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    if n == 1 {
        return sorted[0];
    }
    let q = p / 100.0;
    let nf = n as f64;
    let pos = if q == 1.0 { nf } else { 1.0 + (nf - 1.0) * q };
    if pos < 1.0 {
        return sorted[0];
    }
    if pos >= nf {
        return sorted[n - 1];
    }
    let i = pos.floor();
    let d = pos - i;
    let i = i as usize;
    let lower = sorted[i - 1];
    let upper = sorted[i];
    lower + d * (upper - lower)
}

/// Average ranks (1-based) of `values`, ties given the mean of their positions
/// (commons-math `NaturalRanking(NaNStrategy.MAXIMAL, TiesStrategy.AVERAGE)`; NaN never reaches it).
///
/// Also returns `Σ (t³ − t)` over tie groups, which every rank-based variance needs.
pub fn average_ranks(values: &[f64]) -> (Vec<f64>, f64) {
    let n = values.len();
    let mut order: Vec<u32> = (0..n as u32).collect();
    order.sort_by(|&a, &b| values[a as usize].total_cmp(&values[b as usize]));
    let mut ranks = vec![0.0; n];
    let mut ties = 0.0;
    let mut start = 0;
    while start < n {
        let v = values[order[start] as usize];
        let mut end = start + 1;
        while end < n && values[order[end] as usize] == v {
            end += 1;
        }
        // positions start+1 ..= end share the average rank
        let rank = (start + 1 + end) as f64 / 2.0;
        for &idx in &order[start..end] {
            ranks[idx as usize] = rank;
        }
        let t = (end - start) as f64;
        if end - start > 1 {
            ties += t * t * t - t;
        }
        start = end;
    }
    (ranks, ties)
}

/// Inverse error function: Giles' single-pass polynomial approximation exactly as coded in
/// commons-math 3.6.1 `Erf.erfInv` (M. Giles, "Approximating the erfinv function",
/// GPU Computing Gems vol. 2, 2010).
pub fn erf_inv(x: f64) -> f64 {
    // The logarithm argument must be (1 − x)(1 + x), not 1 − x², near ±1.
    let mut w = -((1.0 - x) * (1.0 + x)).ln();
    let p;
    if w < 6.25 {
        w -= 3.125;
        let mut q = -3.6444120640178196996e-21;
        for c in [
            -1.685059138182016589e-19,
            1.2858480715256400167e-18,
            1.115787767802518096e-17,
            -1.333171662854620906e-16,
            2.0972767875968561637e-17,
            6.6376381343583238325e-15,
            -4.0545662729752068639e-14,
            -8.1519341976054721522e-14,
            2.6335093153082322977e-12,
            -1.2975133253453532498e-11,
            -5.4154120542946279317e-11,
            1.051212273321532285e-09,
            -4.1126339803469836976e-09,
            -2.9070369957882005086e-08,
            4.2347877827932403518e-07,
            -1.3654692000834678645e-06,
            -1.3882523362786468719e-05,
            0.0001867342080340571352,
            -0.00074070253416626697512,
            -0.0060336708714301490533,
            0.24015818242558961693,
            1.6536545626831027356,
        ] {
            q = c + q * w;
        }
        p = q;
    } else if w < 16.0 {
        w = w.sqrt() - 3.25;
        let mut q = 2.2137376921775787049e-09;
        for c in [
            9.0756561938885390979e-08,
            -2.7517406297064545428e-07,
            1.8239629214389227755e-08,
            1.5027403968909827627e-06,
            -4.013867526981545969e-06,
            2.9234449089955446044e-06,
            1.2475304481671778723e-05,
            -4.7318229009055733981e-05,
            6.8284851459573175448e-05,
            2.4031110387097893999e-05,
            -0.0003550375203628474796,
            0.00095328937973738049703,
            -0.0016882755560235047313,
            0.0024914420961078508066,
            -0.0037512085075692412107,
            0.005370914553590063617,
            1.0052589676941592334,
            3.0838856104922207635,
        ] {
            q = c + q * w;
        }
        p = q;
    } else if w.is_finite() {
        w = w.sqrt() - 5.0;
        let mut q = -2.7109920616438573243e-11;
        for c in [
            -2.5556418169965252055e-10,
            1.5076572693500548083e-09,
            -3.7894654401267369937e-09,
            7.6157012080783393804e-09,
            -1.4960026627149240478e-08,
            2.9147953450901080826e-08,
            -6.7711997758452339498e-08,
            2.2900482228026654717e-07,
            -9.9298272942317002539e-07,
            4.5260625972231537039e-06,
            -1.9681778105531670567e-05,
            7.5995277030017761139e-05,
            -0.00021503011930044477347,
            -0.00013871931833623122026,
            1.0103004648645343977,
            4.8499064014085844221,
        ] {
            q = c + q * w;
        }
        p = q;
    } else {
        p = f64::INFINITY;
    }
    p * x
}

/// Standard normal quantile as commons-math 3.6.1 computes it:
/// `NormalDistribution(0, 1).inverseCumulativeProbability(p) = √2 · erfInv(2p − 1)`.
pub fn qnorm_commons(p: f64) -> f64 {
    std::f64::consts::SQRT_2 * erf_inv(2.0 * p - 1.0)
}

/// Standard normal CDF, `P(Z ≤ z)`, accurate to a few ulps in both tails (via `erfc`).
pub fn pnorm(z: f64) -> f64 {
    0.5 * statrs::function::erf::erfc(-z / std::f64::consts::SQRT_2)
}

/// Upper tail `P(Z > z)`.
pub fn pnorm_upper(z: f64) -> f64 {
    0.5 * statrs::function::erf::erfc(z / std::f64::consts::SQRT_2)
}

/// Standard normal quantile with full double precision (Wichura's AS 241, `PPND16`, the
/// algorithm R's `qnorm` uses).
pub fn qnorm(p: f64) -> f64 {
    if p.is_nan() || !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    if p == 0.0 {
        return f64::NEG_INFINITY;
    }
    if p == 1.0 {
        return f64::INFINITY;
    }
    let q = p - 0.5;
    if q.abs() <= 0.425 {
        let r = 0.180625 - q * q;
        return q
            * (((((((r * 2509.0809287301226727 + 33430.575583588128105) * r
                + 67265.770927008700853)
                * r
                + 45921.953931549871457)
                * r
                + 13731.693765509461125)
                * r
                + 1971.5909503065514427)
                * r
                + 133.14166789178437745)
                * r
                + 3.387132872796366608)
            / (((((((r * 5226.495278852545925 + 28729.085735721942674) * r
                + 39307.89580009271061)
                * r
                + 21213.794301586595867)
                * r
                + 5394.1960214247511077)
                * r
                + 687.1870074920579083)
                * r
                + 42.313330701600911252)
                * r
                + 1.0);
    }
    let mut r = if q < 0.0 { p } else { 1.0 - p };
    r = (-r.ln()).sqrt();
    let val = if r <= 5.0 {
        r -= 1.6;
        (((((((r * 7.7454501427834140764e-4 + 0.0227238449892691845833) * r
            + 0.24178072517745061177)
            * r
            + 1.27045825245236838258)
            * r
            + 3.64784832476320460504)
            * r
            + 5.7694972214606914055)
            * r
            + 4.6303378461565452959)
            * r
            + 1.42343711074968357734)
            / (((((((r * 1.05075007164441684324e-9 + 5.475938084995344946e-4) * r
                + 0.0151986665636164571966)
                * r
                + 0.14810397642748007459)
                * r
                + 0.68976733498510000455)
                * r
                + 1.6763848301838038494)
                * r
                + 2.05319162663775882187)
                * r
                + 1.0)
    } else {
        r -= 5.0;
        (((((((r * 2.01033439929228813265e-7 + 2.71155556874348757815e-5) * r
            + 0.0012426609473880784386)
            * r
            + 0.026532189526576123093)
            * r
            + 0.29656057182850489123)
            * r
            + 1.7848265399172913358)
            * r
            + 5.4637849111641143699)
            * r
            + 6.6579046435011037772)
            / (((((((r * 2.04426310338993978564e-15 + 1.4215117583164458887e-7) * r
                + 1.8463183175100546818e-5)
                * r
                + 7.868691311456132591e-4)
                * r
                + 0.0148753612908506148525)
                * r
                + 0.13692988092273580531)
                * r
                + 0.59983220655588793769)
                * r
                + 1.0)
    };
    if q < 0.0 {
        -val
    } else {
        val
    }
}

/// Round half-up to `places` decimals the way commons-math `Precision.round(x, places)` does:
/// through Java's shortest decimal representation (`Double.toString`), then `BigDecimal`
/// `ROUND_HALF_UP`. Rust's `{}` formatting is also shortest-round-trip, so the decimal digits
/// are the same.
pub fn round_half_up(x: f64, places: u32) -> f64 {
    if !x.is_finite() {
        return x;
    }
    // Shortest round-trip digits in scientific form: "d.ddddde±x".
    let s = format!("{:e}", x);
    let (mantissa, exp) = s.split_once('e').expect("`{:e}` always has an exponent");
    let exp: i64 = exp.parse().expect("exponent is an integer");
    let negative = mantissa.starts_with('-');
    let digits: Vec<u8> = mantissa
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| b - b'0')
        .collect();
    // value = 0.d1d2d3... × 10^(exp+1); keep digits up to 10^-places.
    let point = exp + 1; // number of digits before the decimal point
    let keep = point + places as i64; // digits to keep
    if keep < 0 {
        return if negative { -0.0 } else { 0.0 };
    }
    let keep = keep as usize;
    let mut kept: Vec<u8> = digits.iter().copied().take(keep).collect();
    while kept.len() < keep {
        kept.push(0);
    }
    let round_up = digits.get(keep).is_some_and(|&d| d >= 5);
    // integer formed by kept digits, as a decimal string, plus carry
    if round_up {
        let mut i = kept.len();
        loop {
            if i == 0 {
                kept.insert(0, 1);
                break;
            }
            i -= 1;
            if kept[i] == 9 {
                kept[i] = 0;
            } else {
                kept[i] += 1;
                break;
            }
        }
    }
    let digits_str: String = kept.iter().map(|d| char::from(b'0' + d)).collect();
    let text = format!(
        "{}{}e-{}",
        if negative { "-" } else { "" },
        if digits_str.is_empty() {
            "0"
        } else {
            &digits_str
        },
        places
    );
    text.parse().expect("a decimal literal parses")
}

/// R's `sign`: −1, 0 or 1 (`f64::signum` is 1 for +0).
pub(crate) fn sign(v: f64) -> f64 {
    if v > 0.0 {
        1.0
    } else if v < 0.0 {
        -1.0
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_is_decimal_half_up() {
        assert_eq!(round_half_up(72.22222222222221, 2), 72.22);
        assert_eq!(round_half_up(0.125, 2), 0.13); // binary 0.125 is exact: half-up
        assert_eq!(round_half_up(1.005, 2), 1.01); // "1.005" in decimal, although binary is below
        assert_eq!(round_half_up(-2.675, 2), -2.68);
        assert_eq!(round_half_up(99.995, 2), 100.0);
        assert_eq!(round_half_up(0.0, 2), 0.0);
        assert_eq!(round_half_up(33.33333333333333, 2), 33.33);
        assert_eq!(round_half_up(1e-9, 2), 0.0);
        assert_eq!(round_half_up(123456.0, 2), 123456.0);
    }

    #[test]
    fn qnorm_matches_r() {
        // R 4.2.2: sprintf("%.17g", qnorm(c(0.025, 0.01, 1e-10, 0.3)))
        assert_eq!(qnorm(0.025), -1.9599639845400538);
        assert_eq!(qnorm(0.01), -2.3263478740408408);
        assert!((qnorm(1e-10) - -6.3613409024040557).abs() < 1e-14);
        assert!((qnorm(0.3) - -0.52440051270804067).abs() < 1e-15);
    }

    #[test]
    fn ranks_average_ties() {
        let (r, t) = average_ranks(&[3.0, 1.0, 3.0, 2.0]);
        assert_eq!(r, vec![3.5, 1.0, 3.5, 2.0]);
        assert_eq!(t, 6.0);
    }
}
