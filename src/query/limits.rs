//! Bounds on metric SQL: what a query may be (checked when a config is saved and when a
//! run plans it) and what it may use when it runs (time, memory, threads).
//!
//! * **Shape** ([`check_shape`]): the SQL text, its SELECT blocks (set-operation branches
//!   and subqueries), table references, subquery nesting and expression nodes are counted on
//!   the parsed statement (tables joined per SELECT), before DataFusion plans it: planning cost grows with them (1,000
//!   `UNION ALL` branches took 10 s to plan), so a query beyond them is refused with a 400.
//! * **Functions** ([`bounded_functions`]): the functions that build a value whose size an
//!   argument chooses (`repeat`, `lpad`, `rpad`, `array_repeat`, `range`,
//!   `generate_series`) refuse a result larger than [`MAX_VALUE_BYTES`], so constant folding
//!   at planning time never allocates gigabytes (the planner leaves a constant it cannot
//!   fold as it is; the query then fails with the reason when it runs).
//! * **Resources** ([`QueryLimits`], the `[query]` settings): planning and execution run
//!   on the query threads (an [`Executor`], not the async workers serving HTTP), at most
//!   `query.concurrency` at a time in arrival order, each within `query.timeout` (then
//!   cancelled: the query's task is aborted and its operators dropped) and
//!   `query.memory` (DataFusion's memory pool, spilling off, plus the collected result).
//!   DataFusion's operators yield to the scheduler cooperatively, so a long query shares
//!   its thread with the others instead of holding it.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use datafusion::sql::sqlparser::ast::{Expr as SqlExpr, Query, Select, Visit, Visitor};

use super::QueryError;
use crate::settings::{Kind, Setting, Values};

/// The `[query]` settings of `coalmine.toml`.
pub const SETTINGS: &[Setting] = &[
    Setting { key: "query.timeout", kind: Kind::Duration, default: "10s", doc: "A metric query (planning and execution) still running after this is cancelled; its metric is reported with the reason and the run goes on." },
    Setting { key: "query.memory", kind: Kind::Bytes, default: "128MiB", doc: "Memory one query may hold (sorts, aggregates, joins, its result); beyond it the query fails (nothing spills to disk)." },
    Setting { key: "query.concurrency", kind: Kind::Int, default: "4", doc: "Queries planned or executed at once; more wait their turn, first come first served." },
    Setting { key: "query.threads", kind: Kind::Int, default: "0", doc: "Threads that plan and execute queries (0: one less than the cores, at least 2, so one run's slow query never holds them all), apart from the threads serving HTTP and ingest." },
];

/// Longest SQL text of one metric.
pub const MAX_SQL_BYTES: usize = 64 * 1024;
/// SELECT blocks in one query (each `UNION`/`INTERSECT`/`EXCEPT` branch and subquery is one).
pub const MAX_SELECTS: usize = 64;
/// Tables one SELECT block joins (each item of its `FROM` and each `JOIN`).
pub const MAX_JOINED: usize = 8;
/// Subqueries and CTEs nested in each other.
pub const MAX_NESTING: usize = 8;
/// Expression nodes in one query.
pub const MAX_EXPRESSIONS: usize = 10_000;
/// The largest value a size-choosing function may build (a string, a list).
pub const MAX_VALUE_BYTES: usize = 1 << 20;

/// What one query may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryLimits {
    pub timeout: Duration,
    pub memory_bytes: usize,
    pub concurrency: usize,
    pub threads: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits {
            timeout: Duration::from_secs(10),
            memory_bytes: 128 << 20,
            concurrency: 4,
            threads: default_threads(),
        }
    }
}

/// One less than the cores, and at least 2: a run queries one metric at a time, so one
/// run's query at its time limit holds one thread and other runs' ticks keep the other
/// (measured in `benches/runs.rs`: with 1 thread on 2 cores such a tick took 2.7× its time
/// alone).
fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .saturating_sub(1)
        .max(2)
}

impl QueryLimits {
    pub fn from_settings(v: &Values) -> QueryLimits {
        QueryLimits {
            timeout: v.duration("query.timeout"),
            memory_bytes: v
                .bytes("query.memory")
                .map_or(128 << 20, |b| usize::try_from(b).unwrap_or(usize::MAX)),
            concurrency: v.int("query.concurrency").max(1),
            threads: match v.int("query.threads") {
                0 => default_threads(),
                n => n,
            },
        }
    }
}

/// The threads that plan and execute queries: a tokio runtime of their own (DataFusion's
/// operators are async), with large stacks for planning deep expressions, and a fair
/// (FIFO) bound on the queries in progress.
pub struct Executor {
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    slots: Arc<tokio::sync::Semaphore>,
    pub(crate) limits: QueryLimits,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("limits", &self.limits)
            .finish()
    }
}

impl Executor {
    pub fn new(limits: QueryLimits) -> std::io::Result<Executor> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(limits.threads.max(1))
            .thread_name("coalmine-sql")
            .thread_stack_size(16 << 20)
            .enable_time()
            .build()?;
        Ok(Executor {
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
            slots: Arc::new(tokio::sync::Semaphore::new(limits.concurrency.max(1))),
            limits,
        })
    }

    /// Run `work` on the query threads within the time limit; `what` names it in the
    /// timeout error. Dropping the returned future (a stopped run) cancels the work too.
    pub async fn run<T: Send + 'static>(
        &self,
        what: &str,
        work: impl std::future::Future<Output = Result<T, QueryError>> + Send + 'static,
    ) -> Result<T, QueryError> {
        let timeout = self.limits.timeout;
        let slots = self.slots.clone();
        let task = AbortOnDrop(self.handle.spawn(async move {
            let _slot = slots
                .acquire_owned()
                .await
                .expect("query slots are never closed");
            tokio::time::timeout(timeout, work).await
        }));
        match task.await {
            Ok(Ok(result)) => result,
            Ok(Err(_elapsed)) => Err(QueryError::Limit(format!(
                "{what} ran longer than {} (query.timeout) and was cancelled",
                humantime::format_duration(timeout)
            ))),
            Err(e) if e.is_panic() => Err(QueryError::Invalid(format!(
                "{what} failed: {}",
                panic_message(e.into_panic())
            ))),
            Err(_) => Err(QueryError::Limit(format!("{what} was cancelled"))),
        }
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        // dropped from async code (the daemon's shutdown): do not block a runtime thread
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// A spawned task aborted when its handle is dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> std::future::Future for AbortOnDrop<T> {
    type Output = Result<T, tokio::task::JoinError>;
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
}

/// Counts on a parsed statement (see the module documentation).
#[derive(Default)]
struct Shape {
    selects: usize,
    depth: usize,
    max_depth: usize,
    expressions: usize,
}

impl Visitor for Shape {
    type Break = String;

    fn pre_visit_query(&mut self, _: &Query) -> ControlFlow<String> {
        self.depth += 1;
        self.max_depth = self.max_depth.max(self.depth);
        if self.max_depth > MAX_NESTING {
            return ControlFlow::Break(format!(
                "query nests subqueries more than {MAX_NESTING} deep"
            ));
        }
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _: &Query) -> ControlFlow<String> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<String> {
        let joined: usize = select.from.iter().map(|t| 1 + t.joins.len()).sum();
        if joined > MAX_JOINED {
            return ControlFlow::Break(format!(
                "a SELECT joins {joined} tables; at most {MAX_JOINED} (each FROM item and JOIN counts)"
            ));
        }
        self.selects += 1;
        if self.selects > MAX_SELECTS {
            return ControlFlow::Break(format!(
                "query has more than {MAX_SELECTS} SELECT blocks (UNION/INTERSECT/EXCEPT branches and subqueries)"
            ));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, _: &SqlExpr) -> ControlFlow<String> {
        self.expressions += 1;
        if self.expressions > MAX_EXPRESSIONS {
            return ControlFlow::Break(format!(
                "query has more than {MAX_EXPRESSIONS} expressions"
            ));
        }
        ControlFlow::Continue(())
    }
}

/// Refuse SQL whose planning would cost more than a metric query needs (see the module
/// documentation). `statement` is `sql` parsed.
pub fn check_shape(
    sql: &str,
    statement: &datafusion::sql::sqlparser::ast::Statement,
) -> Result<(), QueryError> {
    if sql.len() > MAX_SQL_BYTES {
        return Err(QueryError::Invalid(format!(
            "query is {} bytes long; a metric query is at most {MAX_SQL_BYTES}",
            sql.len()
        )));
    }
    match statement.visit(&mut Shape::default()) {
        ControlFlow::Break(why) => Err(QueryError::Invalid(format!(
            "{why}: simplify it (a metric query reads `metrics` once or twice)"
        ))),
        ControlFlow::Continue(()) => Ok(()),
    }
}

pub use bounded::bounded_functions;

/// A size-bounded function refused its arguments (DataFusion carries it as an external
/// error; [`QueryError`] turns it into a limit).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ValueTooLarge(pub String);

/// Size-bounded versions of the functions whose result size an argument chooses.
mod bounded {
    use std::sync::Arc;

    use arrow::datatypes::{DataType, FieldRef};
    use datafusion::common::{DataFusionError, Result, ScalarValue};
    use datafusion::logical_expr::{
        ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF,
        ScalarUDFImpl, Signature,
    };

    use super::{ValueTooLarge, MAX_VALUE_BYTES};

    /// How big a call's result can be, from its arguments (`None`: no bound needed).
    type Estimate = fn(&[ColumnarValue]) -> Option<u128>;

    /// `inner`, refusing calls whose result [`Estimate`] exceeds [`MAX_VALUE_BYTES`].
    #[derive(Debug)]
    struct Bounded {
        inner: Arc<dyn ScalarUDFImpl>,
        estimate: Estimate,
    }

    impl PartialEq for Bounded {
        fn eq(&self, other: &Self) -> bool {
            self.inner.name() == other.inner.name()
        }
    }
    impl Eq for Bounded {}
    impl std::hash::Hash for Bounded {
        fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
            self.inner.name().hash(state)
        }
    }

    impl ScalarUDFImpl for Bounded {
        fn name(&self) -> &str {
            self.inner.name()
        }
        fn aliases(&self) -> &[String] {
            self.inner.aliases()
        }
        fn signature(&self) -> &Signature {
            self.inner.signature()
        }
        fn return_type(&self, args: &[DataType]) -> Result<DataType> {
            self.inner.return_type(args)
        }
        fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
            self.inner.return_field_from_args(args)
        }
        fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
            self.inner.coerce_types(args)
        }
        fn documentation(&self) -> Option<&Documentation> {
            self.inner.documentation()
        }
        fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
            if let Some(bytes) = (self.estimate)(&args.args) {
                if bytes > MAX_VALUE_BYTES as u128 {
                    return Err(DataFusionError::External(Box::new(ValueTooLarge(format!(
                        "{}() would build a value of {bytes} bytes; at most {MAX_VALUE_BYTES} are allowed",
                        self.name()
                    )))));
                }
            }
            self.inner.invoke_with_args(args)
        }
    }

    /// The largest integer among argument `i`'s values (a scalar or an array).
    fn max_int(args: &[ColumnarValue], i: usize) -> Option<i128> {
        match args.get(i)? {
            ColumnarValue::Scalar(s) => scalar_int(s),
            ColumnarValue::Array(a) => (0..a.len())
                .filter_map(|r| ScalarValue::try_from_array(a, r).ok())
                .filter_map(|s| scalar_int(&s))
                .max(),
        }
    }

    fn scalar_int(s: &ScalarValue) -> Option<i128> {
        match s.cast_to(&arrow::datatypes::DataType::Int64).ok()? {
            ScalarValue::Int64(Some(v)) => Some(v as i128),
            _ => None,
        }
    }

    /// The longest string (or list) among argument `i`'s values.
    fn max_len(args: &[ColumnarValue], i: usize) -> u128 {
        let len = |s: &ScalarValue| match s {
            ScalarValue::Utf8(Some(v))
            | ScalarValue::LargeUtf8(Some(v))
            | ScalarValue::Utf8View(Some(v)) => v.len() as u128,
            _ => 1,
        };
        match args.get(i) {
            Some(ColumnarValue::Scalar(s)) => len(s),
            Some(ColumnarValue::Array(a)) => (0..a.len())
                .filter_map(|r| ScalarValue::try_from_array(a, r).ok())
                .map(|s| len(&s))
                .max()
                .unwrap_or(0),
            None => 0,
        }
    }

    /// `repeat(s, n)`: |s| × n bytes.
    fn repeat(args: &[ColumnarValue]) -> Option<u128> {
        Some(max_len(args, 0) * max_int(args, 1)?.max(0) as u128)
    }

    /// `lpad(s, n [, fill])`, `rpad`: n characters of up to 4 bytes.
    fn pad(args: &[ColumnarValue]) -> Option<u128> {
        Some(max_int(args, 1)?.max(0) as u128 * 4)
    }

    /// `array_repeat(x, n)`: n elements of at least 8 bytes.
    fn array_repeat(args: &[ColumnarValue]) -> Option<u128> {
        Some(max_int(args, 1)?.max(0) as u128 * 8 * max_len(args, 0).max(1))
    }

    /// `range(stop)`, `range(start, stop [, step])`, `generate_series`: 8 bytes an element
    /// (step taken as 1 when smaller, so the bound holds for every step).
    fn range(args: &[ColumnarValue]) -> Option<u128> {
        let (start, stop) = match args.len() {
            1 => (0, max_int(args, 0)?),
            _ => (min_int(args, 0)?, max_int(args, 1)?),
        };
        let step = match args.len() {
            3 => max_int(args, 2).map_or(1, |s| s.unsigned_abs().max(1)),
            _ => 1,
        };
        Some((stop.abs_diff(start) / step + 1) * 8)
    }

    fn min_int(args: &[ColumnarValue], i: usize) -> Option<i128> {
        match args.get(i)? {
            ColumnarValue::Scalar(s) => scalar_int(s),
            ColumnarValue::Array(a) => (0..a.len())
                .filter_map(|r| ScalarValue::try_from_array(a, r).ok())
                .filter_map(|s| scalar_int(&s))
                .min(),
        }
    }

    /// Wrap the session's functions of these names (those it has).
    pub fn bounded_functions(state: &datafusion::execution::SessionState) -> Vec<ScalarUDF> {
        let table: [(&str, Estimate); 6] = [
            ("repeat", repeat),
            ("lpad", pad),
            ("rpad", pad),
            ("array_repeat", array_repeat),
            ("range", range),
            ("generate_series", range),
        ];
        table
            .iter()
            .filter_map(|(name, estimate)| {
                let inner = state.scalar_functions().get(*name)?.inner().clone();
                Some(ScalarUDF::new_from_impl(Bounded {
                    inner,
                    estimate: *estimate,
                }))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(sql: &str) -> Result<(), QueryError> {
        let st = datafusion::sql::parser::DFParser::parse_sql(sql).unwrap();
        let datafusion::sql::parser::Statement::Statement(s) = &st[0] else {
            panic!()
        };
        check_shape(sql, s)
    }

    #[test]
    fn shapes_beyond_the_bounds_are_refused() {
        assert!(shape("SELECT ts, avg(value) AS value FROM metrics GROUP BY ts").is_ok());
        let union = |n: usize| vec!["SELECT value FROM metrics"; n].join(" UNION ALL ");
        shape(&union(MAX_SELECTS)).unwrap();
        let e = shape(&union(MAX_SELECTS + 1)).unwrap_err().to_string();
        assert!(e.contains("more than 64 SELECT blocks"), "{e}");
        let from = |n: usize| {
            let t: Vec<String> = (0..n).map(|i| format!("metrics m{i}")).collect();
            format!("SELECT m0.value FROM {}", t.join(", "))
        };
        shape(&from(MAX_JOINED)).unwrap();
        let e = shape(&from(MAX_JOINED + 1)).unwrap_err().to_string();
        assert!(e.contains("a SELECT joins 9 tables; at most 8"), "{e}");
        let mut nested = "SELECT value FROM metrics".to_string();
        for _ in 0..MAX_NESTING {
            nested = format!("SELECT value FROM ({nested})");
        }
        let e = shape(&nested).unwrap_err().to_string();
        assert!(e.contains("nests subqueries more than 8 deep"), "{e}");
        let long = format!(
            "SELECT value FROM metrics WHERE metric = '{}'",
            "x".repeat(MAX_SQL_BYTES)
        );
        assert!(shape(&long).unwrap_err().to_string().contains("bytes long"));
    }
}
