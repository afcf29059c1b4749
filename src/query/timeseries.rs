//! Counter and histogram functions for metric SQL, with Prometheus's semantics:
//! `increase`, `rate` and `histogram_quantile`, as DataFusion aggregate functions.
//!
//! * `increase(value, ts)` — how much a counter grew over the group's samples, counter
//!   resets handled as PromQL does (a value below its predecessor means the counter restarted
//!   from 0: the predecessor is added back). No extrapolation: the growth between the first
//!   and the last sample.
//! * `increase(value, ts, INTERVAL '1 minute')` — the same, extrapolated to the edges of the
//!   epoch-aligned interval that holds the group's first sample (the bucket of
//!   `date_bin(INTERVAL '1 minute', ts)`), by PromQL's rules (`extrapolatedRate`): to an
//!   edge when the nearest sample is within 1.1 average sample spacings of it, else by half a
//!   spacing; never below the counter's zero point. This is what `increase(x[1m])` evaluated
//!   at the bucket's end gives.
//! * `rate(value, ts)` — `increase(value, ts)` per second of the sampled span (first to last
//!   sample); `rate(value, ts, INTERVAL …)` — the extrapolated increase per second of the
//!   interval, PromQL's `rate(x[1m])`.
//! * `histogram_quantile(q, le, value)` — the `q`-quantile of a classic histogram from rows of
//!   bucket upper bound `le` (text such as `"0.25"` or `"+Inf"`, or a number) and cumulative
//!   count (typically an `increase` of `_bucket` series). Rows with the same `le` are summed
//!   (several instances), buckets sorted by `le`; PromQL's `bucketQuantile`: a `+Inf` bucket
//!   is required (NaN without one), counts made monotonic, linear interpolation inside the
//!   bucket, the lowest bucket starting at 0 when its bound is positive, the upper bound of
//!   the second-highest bucket when the rank falls in `+Inf`; `q < 0` gives −∞, `q > 1` +∞.
//!
//! Each returns NULL where PromQL returns no sample (fewer than two samples, or all at one
//! instant). A port of Prometheus's `promql/functions.go` (`extrapolatedRate`) and
//! `promql/quantile.go` (`bucketQuantile`, `coalesceBuckets`, `correctPrecisionErrors`,
//! `ensureMonotonic`), hand-written because they are exact semantics, not a library.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, ListArray};
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Field, FieldRef, Float64Type, Int64Type, IntervalUnit, TimeUnit,
};
use datafusion::common::cast::{
    as_float64_array, as_int64_array, as_interval_mdn_array, as_list_array, as_string_array,
    as_timestamp_millisecond_array,
};
use datafusion::common::{exec_err, plan_err, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};

/// Every function of this module, for a session to register.
pub fn functions() -> Vec<AggregateUDF> {
    vec![
        AggregateUDF::from(CounterFn::new("increase", false)),
        AggregateUDF::from(CounterFn::new("rate", true)),
        AggregateUDF::from(HistogramQuantile::new()),
    ]
}

fn arguments(n: usize) -> String {
    if n == 1 {
        "1 argument".into()
    } else {
        format!("{n} arguments")
    }
}

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

fn list_of(t: DataType) -> DataType {
    DataType::List(Arc::new(Field::new("item", t, true)))
}

/// A list-valued state of primitive type `T` (the samples an accumulator passes on).
fn list_scalar<T: ArrowPrimitiveType>(values: impl Iterator<Item = T::Native>) -> ScalarValue {
    ScalarValue::List(Arc::new(ListArray::from_iter_primitive::<T, _, _>([Some(
        values.map(Some),
    )])))
}

/// One row of a list-valued state column, its values of type `T` (nulls skipped).
fn list_row<T: ArrowPrimitiveType>(list: &ListArray, row: usize) -> Result<Vec<T::Native>> {
    let values = list.value(row);
    match values.as_primitive_opt::<T>() {
        Some(a) => Ok(a.iter().flatten().collect()),
        None => exec_err!(
            "a state list of {}, not {}",
            values.data_type(),
            T::DATA_TYPE
        ),
    }
}

/// `increase` and `rate`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct CounterFn {
    name: &'static str,
    rate: bool,
    signature: Signature,
}

impl CounterFn {
    fn new(name: &'static str, rate: bool) -> Self {
        CounterFn {
            name,
            rate,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl AggregateUDFImpl for CounterFn {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let usage = format!(
            "{}(value, ts) or {}(value, ts, INTERVAL '1 minute')",
            self.name, self.name
        );
        if !(2..=3).contains(&arg_types.len()) {
            return plan_err!("{usage}: got {}", arguments(arg_types.len()));
        }
        if !arg_types[0].is_numeric() && arg_types[0] != DataType::Null {
            return plan_err!("{usage}: the value must be a number, got {}", arg_types[0]);
        }
        if !matches!(arg_types[1], DataType::Timestamp(_, _)) {
            return plan_err!("{usage}: ts must be a timestamp, got {}", arg_types[1]);
        }
        let mut out = vec![DataType::Float64, ts_type()];
        if let Some(t) = arg_types.get(2) {
            if !matches!(t, DataType::Interval(_)) {
                return plan_err!("{usage}: the range must be an INTERVAL, got {t}");
            }
            out.push(DataType::Interval(IntervalUnit::MonthDayNano));
        }
        Ok(out)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn accumulator(&self, _acc_args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(CounterAcc(CounterGroups::new(
            self.name, self.rate,
        ))))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        _args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(CounterGroups::new(self.name, self.rate)))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![
            Arc::new(Field::new(
                format!("{}_ts", args.name),
                list_of(DataType::Int64),
                true,
            )),
            Arc::new(Field::new(
                format!("{}_values", args.name),
                list_of(DataType::Float64),
                true,
            )),
            Arc::new(Field::new(
                format!("{}_range", args.name),
                DataType::Int64,
                true,
            )),
        ])
    }
}

/// `increase`/`rate` without a `GROUP BY` (or as a window function): the groups
/// accumulator below with every row in group 0, so that both keep one sample store, state
/// and result.
#[derive(Debug)]
struct CounterAcc(CounterGroups);

/// An `INTERVAL` as milliseconds (months have no fixed length: refused).
fn interval_ms(v: arrow::datatypes::IntervalMonthDayNano, name: &str) -> Result<i64> {
    if v.months != 0 {
        return exec_err!("{name}: the range cannot be in months or years (use days)");
    }
    let ms = i64::from(v.days) * 86_400_000 + v.nanoseconds / 1_000_000;
    if ms <= 0 {
        return exec_err!("{name}: the range must be longer than 0");
    }
    Ok(ms)
}

impl Accumulator for CounterAcc {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let n = values[0].len();
        self.0.update_batch(values, &vec![0; n], None, 1)
    }

    // `state` and `evaluate` leave the samples in place: a window function evaluates again
    // after more rows
    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let mut copy = self.0.clone();
        copy.grow(1);
        copy.state(EmitTo::All)?
            .iter()
            .map(|a| ScalarValue::try_from_array(a, 0))
            .collect()
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let n = states[0].len();
        self.0.merge_batch(states, &vec![0; n], 1)
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let mut copy = self.0.clone();
        copy.grow(1);
        ScalarValue::try_from_array(&copy.evaluate(EmitTo::All)?, 0)
    }

    fn size(&self) -> usize {
        self.0.size()
    }
}

/// `(group, ms, value)`.
type GroupRow = (u32, i64, f64);

/// `increase`/`rate` for every group of a `GROUP BY` at once (DataFusion's fast path for
/// grouped aggregates: one accumulator for all groups instead of one boxed accumulator per
/// group, which dominated a per-minute, per-bucket, per-instance query — measured in
/// `benches/sql_functions.rs`).
#[derive(Debug, Clone)]
struct CounterGroups {
    name: &'static str,
    rate: bool,
    /// Every group's samples in one vector, `(group, ms, value)` in arrival order (no
    /// allocation per group; sorted by group and time when evaluated).
    rows: Vec<GroupRow>,
    /// The range of each group (`INTERVAL` argument), by group index.
    ranges: Vec<Option<i64>>,
}

impl CounterGroups {
    fn new(name: &'static str, rate: bool) -> Self {
        CounterGroups {
            name,
            rate,
            rows: Vec::new(),
            ranges: Vec::new(),
        }
    }

    fn grow(&mut self, total_num_groups: usize) {
        if self.ranges.len() < total_num_groups {
            self.ranges.resize(total_num_groups, None);
        }
    }

    /// The first `n` groups' samples (all with `EmitTo::All`), sorted by group then time,
    /// and their ranges; the groups after them are renumbered from 0.
    fn take(&mut self, emit_to: EmitTo) -> (Vec<GroupRow>, Vec<Option<i64>>) {
        let ranges = emit_to.take_needed(&mut self.ranges);
        let n = ranges.len() as u32;
        let mut taken = std::mem::take(&mut self.rows);
        if let EmitTo::First(_) = emit_to {
            let (keep, out): (Vec<_>, Vec<_>) = taken.into_iter().partition(|r| r.0 >= n);
            self.rows = keep.into_iter().map(|(g, t, v)| (g - n, t, v)).collect();
            taken = out;
        }
        // stable: samples at one instant keep their arrival order
        taken.sort_by_key(|r| (r.0, r.1));
        (taken, ranges)
    }
}

impl GroupsAccumulator for CounterGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&arrow::array::BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.grow(total_num_groups);
        let v = as_float64_array(&values[0])?;
        let t = as_timestamp_millisecond_array(&values[1])?;
        let range = values
            .get(2)
            .map(|a| as_interval_mdn_array(a))
            .transpose()?;
        self.rows.reserve(group_indices.len());
        for (i, &g) in group_indices.iter().enumerate() {
            if opt_filter.is_some_and(|f| !f.is_valid(i) || !f.value(i))
                || v.is_null(i)
                || t.is_null(i)
                || v.value(i).is_nan()
            {
                continue;
            }
            if let Some(r) = range {
                if !r.is_null(i) && self.ranges[g].is_none() {
                    self.ranges[g] = Some(interval_ms(r.value(i), self.name)?);
                }
            }
            self.rows.push((g as u32, t.value(i), v.value(i)));
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let (rows, ranges) = self.take(emit_to);
        let mut out = arrow::array::Float64Builder::with_capacity(ranges.len());
        let mut samples: Vec<(i64, f64)> = Vec::new();
        let mut at = 0;
        for (g, range) in ranges.iter().enumerate() {
            samples.clear();
            while at < rows.len() && rows[at].0 as usize == g {
                samples.push((rows[at].1, rows[at].2));
                at += 1;
            }
            out.append_option(counter_growth(&samples, *range, self.rate));
        }
        Ok(Arc::new(out.finish()))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let (rows, ranges) = self.take(emit_to);
        let mut lengths = vec![0usize; ranges.len()];
        for r in &rows {
            lengths[r.0 as usize] += 1;
        }
        let offsets = arrow::buffer::OffsetBuffer::from_lengths(lengths);
        let ts: arrow::array::Int64Array = rows.iter().map(|r| r.1).collect();
        let values: arrow::array::Float64Array = rows.iter().map(|r| r.2).collect();
        let item = |t: DataType| Arc::new(Field::new("item", t, true));
        let range: arrow::array::Int64Array = ranges.into_iter().collect();
        Ok(vec![
            Arc::new(ListArray::new(
                item(DataType::Int64),
                offsets.clone(),
                Arc::new(ts),
                None,
            )),
            Arc::new(ListArray::new(
                item(DataType::Float64),
                offsets,
                Arc::new(values),
                None,
            )),
            Arc::new(range),
        ])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.grow(total_num_groups);
        let ts = as_list_array(&values[0])?;
        let vals = as_list_array(&values[1])?;
        let range = as_int64_array(&values[2])?;
        for (row, &g) in group_indices.iter().enumerate() {
            if ts.is_null(row) {
                continue;
            }
            let (t, v) = (
                list_row::<Int64Type>(ts, row)?,
                list_row::<Float64Type>(vals, row)?,
            );
            self.rows
                .extend(t.into_iter().zip(v).map(|(t, v)| (g as u32, t, v)));
            if self.ranges[g].is_none() && !range.is_null(row) {
                self.ranges[g] = Some(range.value(row));
            }
        }
        Ok(())
    }

    /// Each row as a group of its own (DataFusion skips the partial aggregation of groups
    /// too small to shrink).
    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&arrow::array::BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let rows = values[0].len();
        let mut each = CounterGroups::new(self.name, self.rate);
        let indices: Vec<usize> = (0..rows).collect();
        each.update_batch(values, &indices, opt_filter, rows)?;
        each.state(EmitTo::All)
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.rows.capacity() * 24 + self.ranges.capacity() * 16
    }
}

/// PromQL's `extrapolatedRate` for a counter over time-sorted `(ms, value)` samples: the
/// reset-corrected growth, extrapolated to `range_ms`'s epoch-aligned interval when given,
/// per second when `rate`. `None` where PromQL gives no sample.
pub fn counter_growth(samples: &[(i64, f64)], range_ms: Option<i64>, rate: bool) -> Option<f64> {
    let (&(first_t, first_v), &(last_t, last_v)) = (samples.first()?, samples.last()?);
    if samples.len() < 2 || last_t == first_t {
        return None;
    }
    let mut growth = last_v - first_v;
    for w in samples.windows(2) {
        if w[1].1 < w[0].1 {
            growth += w[0].1; // the counter restarted from 0
        }
    }
    let sampled = (last_t - first_t) as f64 / 1000.0;
    let Some(range) = range_ms else {
        return Some(if rate { growth / sampled } else { growth });
    };
    let range_start = first_t.div_euclid(range) * range;
    let range_end = range_start + range;
    let mut to_start = (first_t - range_start) as f64 / 1000.0;
    let mut to_end = (range_end - last_t).max(0) as f64 / 1000.0;
    let average = sampled / (samples.len() - 1) as f64;
    let threshold = average * 1.1;
    if to_start >= threshold {
        to_start = average / 2.0;
    }
    if growth > 0.0 && first_v >= 0.0 {
        // never extrapolate below the counter's zero point
        let to_zero = sampled * (first_v / growth);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    if to_end >= threshold {
        to_end = average / 2.0;
    }
    let mut factor = (sampled + to_start + to_end) / sampled;
    if rate {
        factor /= range as f64 / 1000.0;
    }
    Some(growth * factor)
}

/// `histogram_quantile(q, le, value)`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct HistogramQuantile {
    signature: Signature,
}

impl HistogramQuantile {
    fn new() -> Self {
        HistogramQuantile {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl AggregateUDFImpl for HistogramQuantile {
    fn name(&self) -> &str {
        "histogram_quantile"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let usage = "histogram_quantile(q, le, count)";
        if arg_types.len() != 3 {
            return plan_err!("{usage}: got {}", arguments(arg_types.len()));
        }
        if !arg_types[0].is_numeric() {
            return plan_err!("{usage}: q must be a number, got {}", arg_types[0]);
        }
        let le = match &arg_types[1] {
            t if t.is_numeric() => DataType::Float64,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(_, _) => {
                DataType::Utf8
            }
            t => return plan_err!("{usage}: le must be a bucket bound (text like '0.25' or '+Inf', or a number), got {t}"),
        };
        if !arg_types[2].is_numeric() && arg_types[2] != DataType::Null {
            return plan_err!("{usage}: the count must be a number, got {}", arg_types[2]);
        }
        Ok(vec![DataType::Float64, le, DataType::Float64])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn accumulator(&self, _acc_args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::<QuantileAcc>::default())
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![
            Arc::new(Field::new(
                format!("{}_q", args.name),
                DataType::Float64,
                true,
            )),
            Arc::new(Field::new(
                format!("{}_le", args.name),
                list_of(DataType::Float64),
                true,
            )),
            Arc::new(Field::new(
                format!("{}_counts", args.name),
                list_of(DataType::Float64),
                true,
            )),
        ])
    }
}

#[derive(Debug, Default)]
struct QuantileAcc {
    q: Option<f64>,
    buckets: Vec<(f64, f64)>,
}

/// A bucket bound as Prometheus writes it (`"0.25"`, `"+Inf"`, `"1e+06"`).
pub fn parse_le(s: &str) -> Option<f64> {
    match s.trim() {
        "+Inf" | "Inf" | "inf" | "+inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        other => other.parse().ok(),
    }
}

impl Accumulator for QuantileAcc {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let q = as_float64_array(&values[0])?;
        let counts = as_float64_array(&values[2])?;
        let le: Vec<Option<f64>> = match values[1].data_type() {
            DataType::Float64 => as_float64_array(&values[1])?.iter().collect(),
            _ => {
                let s = as_string_array(&values[1])?;
                let mut out = Vec::with_capacity(s.len());
                for x in s.iter() {
                    out.push(match x {
                        None => None,
                        Some(text) => Some(parse_le(text).ok_or_else(|| {
                            datafusion::error::DataFusionError::Execution(format!(
                                "histogram_quantile: le {text:?} is not a bucket bound (a number or \"+Inf\")"
                            ))
                        })?),
                    });
                }
                out
            }
        };
        for i in 0..counts.len() {
            if self.q.is_none() && !q.is_null(i) {
                self.q = Some(q.value(i));
            }
            if let (Some(le), false) = (le[i], counts.is_null(i)) {
                if !le.is_nan() {
                    self.buckets.push((le, counts.value(i)));
                }
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![
            ScalarValue::Float64(self.q),
            list_scalar::<Float64Type>(self.buckets.iter().map(|b| b.0)),
            list_scalar::<Float64Type>(self.buckets.iter().map(|b| b.1)),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let q = as_float64_array(&states[0])?;
        let le = as_list_array(&states[1])?;
        let counts = as_list_array(&states[2])?;
        for row in 0..le.len() {
            if self.q.is_none() && !q.is_null(row) {
                self.q = Some(q.value(row));
            }
            if le.is_null(row) {
                continue;
            }
            let bounds = list_row::<Float64Type>(le, row)?;
            let counts = list_row::<Float64Type>(counts, row)?;
            self.buckets.extend(bounds.into_iter().zip(counts));
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let Some(q) = self.q else {
            return Ok(ScalarValue::Float64(None));
        };
        if self.buckets.is_empty() {
            return Ok(ScalarValue::Float64(None));
        }
        Ok(ScalarValue::Float64(Some(bucket_quantile(
            q,
            &mut self.buckets,
        ))))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.buckets.capacity() * 16
    }
}

/// PromQL's `bucketQuantile` over `(upper bound, cumulative count)` buckets (sorted here).
pub fn bucket_quantile(q: f64, buckets: &mut [(f64, f64)]) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    if buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return f64::NAN;
    }
    // coalesce buckets with the same bound
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for &(le, count) in buckets.iter() {
        match merged.last_mut() {
            Some(last) if last.0 == le => last.1 += count,
            _ => merged.push((le, count)),
        }
    }
    // precision errors: a relative change ≤ 1e-12 is no change
    let mut prev = merged[0].1;
    for b in merged.iter_mut().skip(1) {
        let delta = (b.1 - prev).abs();
        if delta == 0.0 {
            continue;
        }
        if delta / b.1 <= 1e-12 {
            b.1 = prev;
        } else {
            prev = b.1;
        }
    }
    // monotonic envelope
    let mut max = merged[0].1;
    for b in merged.iter_mut().skip(1) {
        if b.1 > max {
            max = b.1;
        } else if b.1 < max {
            b.1 = max;
        }
    }
    if merged.len() < 2 {
        return f64::NAN;
    }
    let n = merged.len();
    let observations = merged[n - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    // the first bucket among all but the last whose count reaches the rank (sort.Search)
    let b = merged[..n - 1].partition_point(|x| x.1 < rank);
    if b == n - 1 {
        return merged[n - 2].0;
    }
    if b == 0 && merged[0].0 <= 0.0 {
        return merged[0].0;
    }
    let bucket_end = merged[b].0;
    let mut count = merged[b].1;
    let mut bucket_start = 0.0;
    if b > 0 {
        bucket_start = merged[b - 1].0;
        count -= merged[b - 1].1;
        rank -= merged[b - 1].1;
    }
    bucket_start + (bucket_end - bucket_start) * (rank / count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_quantile_follows_promql() {
        // Prometheus's promql/testdata/histograms.test, "testhistogram_bucket" (start
        // positive): buckets 0.1:50, 0.2:70, +Inf:100 (scaled from its 5m rates).
        // q = 0.5: rank 50, first bucket reaching it is le 0.1 → 0 + 0.1·(50/50) = 0.1;
        // q = 0.8: rank 80 falls in +Inf → the second-highest bound, 0.2.
        let b = || vec![(0.1, 50.0), (f64::INFINITY, 100.0), (0.2, 70.0)];
        assert_eq!(bucket_quantile(0.5, &mut b()), 0.1);
        assert_eq!(bucket_quantile(0.8, &mut b()), 0.2);
        // q = 0.6: rank 60 in (0.1, 0.2]: 0.1 + 0.1·(10/20) = 0.15
        assert!((bucket_quantile(0.6, &mut b()) - 0.15).abs() < 1e-12);
        assert_eq!(bucket_quantile(-0.1, &mut b()), f64::NEG_INFINITY);
        assert_eq!(bucket_quantile(1.1, &mut b()), f64::INFINITY);
        // no +Inf: NaN; non-monotonic counts take the envelope
        assert!(bucket_quantile(0.5, &mut [(0.1, 5.0), (0.2, 10.0)]).is_nan());
        let mut nm = vec![(0.1, 10.0), (0.2, 8.0), (f64::INFINITY, 10.0)];
        assert!((bucket_quantile(0.9, &mut nm) - 0.09).abs() < 1e-15);
        // a non-positive lowest bound is returned as is
        assert_eq!(
            bucket_quantile(0.1, &mut [(-1.0, 5.0), (f64::INFINITY, 10.0)]),
            -1.0
        );
    }

    #[test]
    fn counter_growth_handles_resets_and_extrapolates_as_promql() {
        // samples every 15 s from t = 5 s: 10, 20, 5 (reset), 15 → growth 10 + 20·0 … :
        // last − first = 5, plus the value before the reset, 20 → 25
        let s = [(5_000, 10.0), (20_000, 20.0), (35_000, 5.0), (50_000, 15.0)];
        assert_eq!(counter_growth(&s, None, false), Some(25.0));
        assert_eq!(counter_growth(&s, None, true), Some(25.0 / 45.0));
        // range 60 s from 0: to start 5 s, to end 10 s, both < 1.1·15: extrapolated to the
        // whole minute; the zero point (45·10/25 = 18 s back) is further than 5 s
        let g = counter_growth(&s, Some(60_000), false).unwrap();
        assert!((g - 25.0 * 60.0 / 45.0).abs() < 1e-12, "{g}");
        let r = counter_growth(&s, Some(60_000), true).unwrap();
        assert!((r - 25.0 / 45.0).abs() < 1e-12, "{r}");
        // a series starting late (first sample 40 s in): half a spacing only
        let late = [(40_000, 100.0), (45_000, 110.0), (50_000, 120.0)];
        let g = counter_growth(&late, Some(60_000), false).unwrap();
        assert!((g - 20.0 * (10.0 + 2.5 + 2.5) / 10.0).abs() < 1e-12, "{g}");
        // the zero point caps the extrapolation back: 0, 10 at 30 s and 40 s
        let fresh = [(30_000, 0.0), (40_000, 10.0), (50_000, 20.0)];
        let g = counter_growth(&fresh, Some(60_000), false).unwrap();
        assert!((g - 20.0 * (20.0 + 0.0 + 10.0) / 20.0).abs() < 1e-12, "{g}");
        assert_eq!(counter_growth(&[(1, 1.0)], None, false), None);
    }
}
