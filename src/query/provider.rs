//! `StoreTableProvider`: the `metrics` table, a DataFusion `TableProvider` over the store
//! restricted to one scope (tag filter) and time window, with filter pushdown to the
//! store's series index.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, RwLock};

use arrow::array::{Array, ArrayRef, MapBuilder, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;

use crate::store::segment::columns;
use crate::store::{SeriesRegistry, Store};

/// What `metrics` means for one query: a scope's tags and the judgment window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Binding {
    /// Every series must have these tags (the scope).
    pub tags: BTreeMap<String, String>,
    /// `[start_ms, end_ms)`.
    pub start_ms: i64,
    pub end_ms: i64,
}

impl Binding {
    pub fn new(tags: BTreeMap<String, String>, start_ms: i64, end_ms: i64) -> Self {
        Binding {
            tags,
            start_ms,
            end_ms,
        }
    }

    /// Everything in the store.
    pub fn all() -> Self {
        Binding {
            tags: BTreeMap::new(),
            start_ms: i64::MIN,
            end_ms: i64::MAX,
        }
    }
}

const FIXED: [&str; 4] = ["ts", "metric", "value", "tags"];

/// The `metrics` table.
pub struct StoreTableProvider {
    store: Store,
    binding: RwLock<Binding>,
    schema: SchemaRef,
    /// Tag keys exposed as columns (schema order), after the fixed columns.
    tag_columns: Vec<String>,
}

impl fmt::Debug for StoreTableProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreTableProvider")
            .field("binding", &self.binding)
            .finish()
    }
}

/// The tag keys of every series in the store (the tag columns of `metrics`).
pub fn stored_tag_keys(store: &Store) -> BTreeSet<String> {
    store
        .registry()
        .tag_keys()
        .filter(|t| !FIXED.contains(t))
        .map(str::to_string)
        .collect()
}

impl StoreTableProvider {
    /// The `metrics` table with a column per tag key in the store, plus `extra_tags` (keys a
    /// query names before any point carries them: their columns are NULL until one does).
    pub fn new(store: Store, binding: Binding, extra_tags: &[String]) -> Self {
        let tag_columns: Vec<String> = {
            let mut keys = stored_tag_keys(&store);
            keys.extend(
                extra_tags
                    .iter()
                    .filter(|k| !FIXED.contains(&k.as_str()))
                    .cloned(),
            );
            keys.into_iter().collect()
        };
        let mut fields = vec![
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                false,
            ),
            Field::new(
                "metric",
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
                false,
            ),
            Field::new("value", DataType::Float64, false),
            Field::new("tags", tags_type(), false),
        ];
        for k in &tag_columns {
            fields.push(Field::new(
                k,
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
                true,
            ));
        }
        StoreTableProvider {
            store,
            binding: RwLock::new(binding),
            schema: Arc::new(Schema::new(fields)),
            tag_columns,
        }
    }

    /// Point the table at another scope or window (a canary run's next tick).
    pub fn rebind(&self, binding: Binding) {
        *self.binding.write().expect("binding lock") = binding;
    }

    pub fn binding(&self) -> Binding {
        self.binding.read().expect("binding lock").clone()
    }
}

fn tags_type() -> DataType {
    MapBuilder::new(None, StringBuilder::new(), StringBuilder::new())
        .finish()
        .data_type()
        .clone()
}

/// What the pushed-down filters allow.
#[derive(Default, Debug)]
struct Pushed {
    metrics: Option<BTreeSet<String>>,
    tags: BTreeMap<String, String>,
    start: Option<i64>,
    end: Option<i64>,
    impossible: bool,
}

fn literal_str(e: &Expr) -> Option<String> {
    match e {
        Expr::Literal(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
            | ScalarValue::Utf8View(Some(s)),
            _,
        ) => Some(s.clone()),
        Expr::Literal(ScalarValue::Dictionary(_, v), _) => {
            literal_str(&Expr::Literal((**v).clone(), None))
        }
        Expr::Cast(c) => literal_str(&c.expr),
        Expr::TryCast(c) => literal_str(&c.expr),
        _ => None,
    }
}

/// A timestamp literal in milliseconds, rounded down, and whether that is exact.
fn literal_ms(e: &Expr) -> Option<(i64, bool)> {
    match e {
        Expr::Literal(v, _) => match v {
            ScalarValue::TimestampMillisecond(Some(x), _) => Some((*x, true)),
            ScalarValue::TimestampSecond(Some(x), _) => x.checked_mul(1000).map(|m| (m, true)),
            ScalarValue::TimestampMicrosecond(Some(x), _) => {
                Some((x.div_euclid(1000), x.rem_euclid(1000) == 0))
            }
            ScalarValue::TimestampNanosecond(Some(x), _) => {
                Some((x.div_euclid(1_000_000), x.rem_euclid(1_000_000) == 0))
            }
            _ => None,
        },
        Expr::Cast(c) => literal_ms(&c.expr),
        _ => None,
    }
}

fn column_name(e: &Expr) -> Option<&str> {
    match e {
        Expr::Column(c) => Some(c.name.as_str()),
        Expr::Cast(c) => column_name(&c.expr),
        Expr::TryCast(c) => column_name(&c.expr),
        _ => None,
    }
}

impl StoreTableProvider {
    /// Apply one filter to `p` if the store can use it: `Some(true)` when the store applies
    /// it exactly (DataFusion need not re-check it), `Some(false)` when it only prunes.
    fn push(&self, e: &Expr, p: &mut Pushed) -> Option<bool> {
        match e {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                let (col, lit, op) = match (column_name(left), column_name(right)) {
                    (Some(c), None) => (c, right.as_ref(), *op),
                    (None, Some(c)) => (c, left.as_ref(), op.swap()?),
                    _ => return None,
                };
                match (col, op) {
                    ("metric", Operator::Eq) => {
                        let set: BTreeSet<String> = [literal_str(lit)?].into();
                        p.metrics = Some(match p.metrics.take() {
                            Some(prev) => prev.intersection(&set).cloned().collect(),
                            None => set,
                        });
                        Some(true)
                    }
                    ("ts", Operator::GtEq | Operator::Gt | Operator::Lt | Operator::LtEq) => {
                        let (t, exact) = literal_ms(lit)?;
                        // rounded down to the millisecond: widen the range when inexact
                        match (op, exact) {
                            (Operator::GtEq, _) | (Operator::Gt, false) => {
                                p.start = Some(p.start.map_or(t, |s| s.max(t)))
                            }
                            (Operator::Gt, true) => {
                                p.start = Some(p.start.map_or(t + 1, |s| s.max(t + 1)))
                            }
                            (Operator::Lt, true) => p.end = Some(p.end.map_or(t, |s| s.min(t))),
                            _ => p.end = Some(p.end.map_or(t + 1, |s| s.min(t + 1))),
                        }
                        Some(exact)
                    }
                    (c, Operator::Eq) if self.tag_columns.iter().any(|k| k == c) => {
                        let v = literal_str(lit)?;
                        if p.tags.get(c).is_some_and(|old| *old != v) {
                            p.impossible = true;
                        }
                        p.tags.insert(c.to_string(), v);
                        Some(true)
                    }
                    _ => None,
                }
            }
            Expr::InList(list) if !list.negated && column_name(&list.expr) == Some("metric") => {
                let set: BTreeSet<String> =
                    list.list.iter().map(literal_str).collect::<Option<_>>()?;
                p.metrics = Some(match p.metrics.take() {
                    Some(prev) => prev.intersection(&set).cloned().collect(),
                    None => set,
                });
                Some(true)
            }
            Expr::Between(b) if !b.negated && column_name(&b.expr) == Some("ts") => {
                let ((lo, e1), (hi, e2)) = (literal_ms(&b.low)?, literal_ms(&b.high)?);
                p.start = Some(p.start.map_or(lo, |s| s.max(lo)));
                p.end = Some(p.end.map_or(hi + 1, |e| e.min(hi + 1)));
                Some(e1 && e2)
            }
            _ => None,
        }
    }

    /// Series ids matching the binding and the pushed filters.
    fn select_series(&self, reg: &SeriesRegistry, binding: &Binding, p: &Pushed) -> Vec<u32> {
        if p.impossible {
            return Vec::new();
        }
        let mut tags = binding.tags.clone();
        for (k, v) in &p.tags {
            if tags.get(k).is_some_and(|old| old != v) {
                return Vec::new();
            }
            tags.insert(k.clone(), v.clone());
        }
        match &p.metrics {
            Some(ms) => {
                let mut out: Vec<u32> =
                    ms.iter().flat_map(|m| reg.select(Some(m), &tags)).collect();
                out.sort_unstable();
                out
            }
            None => reg.select(None, &tags),
        }
    }
}

#[async_trait]
impl TableProvider for StoreTableProvider {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        // Exact ones the store applies in full (series selection, time slicing), so the
        // columns they test need not even be read; inexact ones only prune.
        Ok(filters
            .iter()
            .map(|f| match self.push(f, &mut Pushed::default()) {
                Some(true) => TableProviderFilterPushDown::Exact,
                Some(false) => TableProviderFilterPushDown::Inexact,
                None => TableProviderFilterPushDown::Unsupported,
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let binding = self.binding();
        let mut pushed = Pushed::default();
        for f in filters {
            self.push(f, &mut pushed);
        }
        let start = pushed
            .start
            .map_or(binding.start_ms, |s| s.max(binding.start_ms));
        let end = pushed.end.map_or(binding.end_ms, |e| e.min(binding.end_ms));
        let all: Vec<usize> = (0..self.schema.fields().len()).collect();
        let projection: Vec<usize> = projection.cloned().unwrap_or(all);
        let projected = Arc::new(self.schema.project(&projection)?);
        let batches = {
            let series = self.select_series(&self.store.registry(), &binding, &pushed);
            let raw = self
                .store
                .scan_series(&series, start, end)
                .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
            let reg = self.store.registry();
            coalesce(raw, COALESCE_ROWS)?
                .iter()
                .map(|b| self.widen(&reg, b, &projection, &projected))
                .collect::<DfResult<Vec<_>>>()?
        };
        let exec: Arc<dyn ExecutionPlan> =
            MemorySourceConfig::try_new_exec(&[batches], projected, None)?;
        Ok(exec)
    }
}

/// Rows per batch the scan hands to the plan, at most (DataFusion's default batch size).
const COALESCE_ROWS: usize = 8192;

/// The store's slices (one per series and segment: a 30-minute window of 180 series is 180
/// batches of 120 rows) joined into batches of up to `rows` rows, in order. Every operator
/// above the scan pays a fixed cost per batch — hashing set-up, row conversion, dictionary
/// handling — which on such slices outweighed the rows themselves (measured in the
/// `sql_functions` bench).
fn coalesce(raw: Vec<RecordBatch>, rows: usize) -> DfResult<Vec<RecordBatch>> {
    let mut out = Vec::new();
    let mut pending: Vec<RecordBatch> = Vec::new();
    let mut n = 0;
    let flush = |pending: &mut Vec<RecordBatch>, out: &mut Vec<RecordBatch>| -> DfResult<()> {
        match pending.len() {
            0 => {}
            1 => out.push(pending.pop().expect("one")),
            _ => {
                out.push(arrow::compute::concat_batches(
                    &pending[0].schema(),
                    pending.iter(),
                )?);
                pending.clear();
            }
        }
        Ok(())
    };
    for b in raw {
        if n + b.num_rows() > rows && n > 0 {
            flush(&mut pending, &mut out)?;
            n = 0;
        }
        n += b.num_rows();
        pending.push(b);
    }
    flush(&mut pending, &mut out)?;
    Ok(out)
}

impl StoreTableProvider {
    /// `(series, ts, value)` → the projected `metrics` columns. `ts` and `value` are shared,
    /// not copied; text columns are dictionaries with one entry per series run.
    fn widen(
        &self,
        reg: &SeriesRegistry,
        batch: &RecordBatch,
        projection: &[usize],
        schema: &SchemaRef,
    ) -> DfResult<RecordBatch> {
        let (se, ts, v) = columns(batch);
        let n = batch.num_rows();
        // runs of equal series (one per slice of a segment; several for buffered points)
        let mut runs: Vec<(u32, usize)> = Vec::new();
        for &s in se.values().iter() {
            match runs.last_mut() {
                Some((last, len)) if *last == s => *len += 1,
                _ => runs.push((s, 1)),
            }
        }
        let dict = |value_of: &dyn Fn(u32) -> Option<String>| -> DfResult<ArrayRef> {
            let mut values = StringBuilder::new();
            let mut keys = Vec::with_capacity(n);
            let mut nulls = Vec::with_capacity(n);
            for (k, &(s, len)) in runs.iter().enumerate() {
                let val = value_of(s);
                match &val {
                    Some(x) => values.append_value(x),
                    None => values.append_null(),
                }
                keys.extend(std::iter::repeat_n(k as i32, len));
                nulls.extend(std::iter::repeat_n(val.is_some(), len));
            }
            let keys = arrow::array::Int32Array::new(
                keys.into(),
                Some(arrow::buffer::NullBuffer::from(nulls)),
            );
            Ok(Arc::new(
                arrow::array::DictionaryArray::<Int32Type>::try_new(
                    keys,
                    Arc::new(values.finish()),
                )?,
            ))
        };
        let mut cols: Vec<ArrayRef> = Vec::with_capacity(projection.len());
        for &i in projection {
            let col: ArrayRef = match i {
                0 => Arc::new(ts.clone()),
                1 => dict(&|s| {
                    Some(
                        reg.key(s)
                            .map_or_else(String::new, |k| k.metric.to_string()),
                    )
                })?,
                2 => Arc::new(v.clone()),
                3 => {
                    let mut b = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
                    for &(s, len) in &runs {
                        for _ in 0..len {
                            if let Some(k) = reg.key(s) {
                                for (key, val) in &k.tags {
                                    b.keys().append_value(&**key);
                                    b.values().append_value(&**val);
                                }
                            }
                            b.append(true)?;
                        }
                    }
                    Arc::new(b.finish())
                }
                _ => {
                    let tag = &self.tag_columns[i - FIXED.len()];
                    dict(&|s| reg.key(s).and_then(|k| k.tag(tag)).map(str::to_owned))?
                }
            };
            debug_assert_eq!(col.len(), n);
            cols.push(col);
        }
        Ok(RecordBatch::try_new_with_options(
            schema.clone(),
            cols,
            &arrow::array::RecordBatchOptions::new().with_row_count(Some(n)),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;

    fn batch(from: i64, n: i64) -> RecordBatch {
        let a: ArrayRef = Arc::new(Int64Array::from_iter_values(from..from + n));
        RecordBatch::try_from_iter([("x", a)]).unwrap()
    }

    #[test]
    fn coalescing_keeps_every_row_in_order_within_the_batch_size() {
        let raw: Vec<RecordBatch> = (0..10).map(|i| batch(i * 120, 120)).collect();
        let out = coalesce(raw, 500).unwrap();
        assert_eq!(
            out.iter().map(RecordBatch::num_rows).collect::<Vec<_>>(),
            [480, 480, 240]
        );
        let all: Vec<i64> = out
            .iter()
            .flat_map(|b| {
                let a = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                a.values().to_vec()
            })
            .collect();
        assert_eq!(all, (0..1200).collect::<Vec<_>>());
        // a slice larger than the batch size passes whole; nothing in, nothing out
        let out = coalesce(vec![batch(0, 10), batch(10, 900), batch(910, 5)], 500).unwrap();
        assert_eq!(
            out.iter().map(RecordBatch::num_rows).collect::<Vec<_>>(),
            [10, 900, 5]
        );
        assert!(coalesce(Vec::new(), 500).unwrap().is_empty());
    }
}
