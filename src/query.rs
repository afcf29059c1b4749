//! The query layer: metric SQL through DataFusion over the store.
//!
//! A canary config's metric query is plain SQL over one table, `metrics`, with columns
//! `ts` (timestamp, UTC), `metric`, `value`, one text column per tag key the store knows,
//! and `tags` (a map of every tag). The SQL never mentions scopes or time: the engine binds
//! `metrics` to one scope's series and the judgment window (a [`Binding`]) — no user input
//! is templated into SQL. The provider pushes `metric = …`, `metric IN (…)`, tag equality
//! and time bounds down to the store's series index, so a query reads only the series and
//! segments it needs.
//!
//! Queries are read-only: exactly one `SELECT`; DDL, DML, `COPY`, `SET`, external tables and
//! URL tables are refused when a config is saved ([`validate_sql`]) and again when it runs.

pub mod limits;
pub mod provider;
pub mod timeseries;

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::execution::context::{SQLOptions, SessionConfig, SessionContext, SessionState};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Expr, LogicalPlan, Volatility};
use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::Statement;

use crate::error::kind::ErrorKind;
use crate::store::Store;
pub use limits::{Executor, QueryLimits};
pub use provider::{Binding, StoreTableProvider};

/// Errors of metric queries. DataFusion's errors are kept (as the source), and shown
/// without DataFusion's internal prefixes.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The SQL breaks coalmine's rules (not a single SELECT, no numeric `value`, a misspelt
    /// column …).
    #[error("{0}")]
    Invalid(String),
    /// DataFusion cannot parse, plan or optimise the SQL; `hint` adds what coalmine knows
    /// (names taken as tag keys).
    #[error("{}{hint}", clean(&source.to_string()))]
    Plan {
        #[source]
        source: datafusion::error::DataFusionError,
        hint: String,
    },
    /// The query ran but its result has the wrong shape.
    #[error("{0}")]
    Result(String),
    #[error("query failed: {}", clean(&.0.to_string()))]
    Execution(#[source] datafusion::error::DataFusionError),
    /// The query hit one of its limits (time, memory; see [`limits`]) and was stopped.
    #[error("{0}")]
    Limit(String),
}

impl QueryError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            QueryError::Invalid(_)
            | QueryError::Plan { .. }
            | QueryError::Result(_)
            | QueryError::Limit(_) => ErrorKind::InvalidInput,
            QueryError::Execution(_) => ErrorKind::Internal,
        }
    }

    fn plan(source: datafusion::error::DataFusionError) -> Self {
        out_of_memory(&source).unwrap_or(QueryError::Plan {
            source,
            hint: String::new(),
        })
    }

    fn execution(source: datafusion::error::DataFusionError) -> Self {
        out_of_memory(&source).unwrap_or(QueryError::Execution(source))
    }
}

/// DataFusion's memory pool refused an allocation (the query's `query.memory` is spent),
/// or a size-bounded function its arguments.
fn out_of_memory(e: &datafusion::error::DataFusionError) -> Option<QueryError> {
    use datafusion::error::DataFusionError;
    match e.find_root() {
        DataFusionError::ResourcesExhausted(msg) => Some(QueryError::Limit(format!(
            "the query needs more memory than query.memory allows ({})",
            clean(msg)
        ))),
        DataFusionError::External(inner) => inner
            .downcast_ref::<limits::ValueTooLarge>()
            .map(|v| QueryError::Limit(v.0.clone())),
        _ => None,
    }
}

/// SQL options for metric queries: no DDL, no DML (`INSERT`, `COPY`), no statements.
pub fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// Check that `sql` is exactly one read-only `SELECT` (syntax only; see [`Engine::plan`]
/// for columns and types). Errors give the line and column.
pub fn check_statement(sql: &str) -> Result<(), QueryError> {
    let statements = DFParser::parse_sql(sql).map_err(|e| {
        if e.to_string().contains("RecursionLimitExceeded") {
            QueryError::Invalid(
                "query nests too deeply (parentheses, subqueries or operators more than 50 levels): simplify it".into(),
            )
        } else {
            QueryError::plan(e)
        }
    })?;
    if statements.len() != 1 {
        return Err(QueryError::Invalid(format!(
            "query must be a single SELECT, found {} statements",
            statements.len()
        )));
    }
    match &statements[0] {
        DfStatement::Statement(s) if matches!(**s, Statement::Query(_)) => {
            limits::check_shape(sql, s)
        }
        DfStatement::Statement(s) => {
            let (line, col) = start_of(sql);
            Err(QueryError::Invalid(format!(
                "query must be a single SELECT, found {} at {line}:{col}",
                statement_kind(s)
            )))
        }
        other => {
            let kind = format!("{other}")
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ");
            Err(QueryError::Invalid(format!(
                "query must be a single SELECT, found {kind}"
            )))
        }
    }
}

/// For an error in a query some of whose names were taken as tag keys: say so, since a
/// metric name used as a column (`avg(latency)`) is the usual reason.
fn assumed_hint(assumed: &[String]) -> String {
    let Some(first) = assumed.first() else {
        return String::new();
    };
    let names: Vec<String> = assumed.iter().map(|n| format!("`{n}`")).collect();
    let (is, they) = if names.len() == 1 {
        (
            "is not a column of `metrics`: it was taken as a tag key",
            "its values are",
        )
    } else {
        (
            "are not columns of `metrics`: they were taken as tag keys",
            "their values are",
        )
    };
    format!(
        " (note: {} {is}; {they} text, NULL until points carry the tag. A metric named {first} is selected with WHERE metric = '{first}', its samples are in `value`)",
        names.join(", ")
    )
}

/// At most this many unknown names of one query are taken as tag keys.
const MAX_ASSUMED_TAGS: usize = 32;

/// The column a planning error says does not exist.
fn missing_column(e: &datafusion::error::DataFusionError) -> Option<String> {
    use datafusion::common::SchemaError;
    use datafusion::error::DataFusionError;
    match e.find_root() {
        DataFusionError::SchemaError(se, _) => match se.as_ref() {
            SchemaError::FieldNotFound { field, .. } => Some(field.name().to_string()),
            _ => None,
        },
        _ => None,
    }
}

/// The fixed column `name` is probably a misspelling of, if any: one edit (a transposition
/// counts as one) away from `value`, `metric` or `tags`, or a name users reach for instead
/// (`timestamp`, `time`, `__name__`, `labels`, …).
pub fn misspelt_fixed_column(name: &str) -> Option<&'static str> {
    const USUAL: [(&str, &str); 10] = [
        ("time", "ts"),
        ("timestamp", "ts"),
        ("_time", "ts"),
        ("__name__", "metric"),
        ("metric_name", "metric"),
        ("val", "value"),
        ("values", "value"),
        ("labels", "tags"),
        ("tag", "tags"),
        ("attributes", "tags"),
    ];
    let lower = name.to_lowercase();
    if let Some((_, fixed)) = USUAL.iter().find(|(n, _)| *n == lower) {
        return Some(fixed);
    }
    ["value", "metric", "tags"]
        .into_iter()
        .find(|f| lower != *f && strsim::osa_distance(&lower, f) <= 1)
        .or(["ts", "value", "metric", "tags"]
            .into_iter()
            .find(|f| lower == *f && name != *f))
}

/// Line and column (1-based) of the first non-blank character.
fn start_of(sql: &str) -> (usize, usize) {
    let lead = sql.len() - sql.trim_start().len();
    let before = &sql[..lead];
    let line = before.matches('\n').count() + 1;
    let col = lead - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

fn statement_kind(s: &Statement) -> String {
    let text = s.to_string();
    let words: Vec<&str> = text.split_whitespace().take(2).collect();
    match words.first().map(|w| w.to_uppercase()) {
        Some(w) if w == "CREATE" || w == "DROP" || w == "ALTER" => words.join(" ").to_uppercase(),
        Some(w) => w,
        None => "an empty statement".into(),
    }
}

/// DataFusion's messages, without the internal prefixes.
fn clean(msg: &str) -> String {
    let flat = msg.replace(['\n', '\t'], " ");
    // a signature mismatch is reported as an internal error with a bug-report request; the
    // useful part is the last sentence
    // a function's own coercion message (coalmine's time-series functions) says more
    const OWN: &str = "user-defined coercion failed with: ";
    if let Some(i) = flat.find(OWN) {
        let own = &flat[i + OWN.len()..];
        let own = own.split(". No function matches").next().unwrap_or(own);
        return own
            .trim_start_matches("Error during planning: ")
            .trim()
            .to_string();
    }
    let msg = match flat.find("No function matches the given name and argument types") {
        Some(i) => &flat[i..],
        None => flat
            .split(" This issue was likely caused by a bug in DataFusion")
            .next()
            .unwrap_or(&flat),
    };
    let m = msg
        .trim_start_matches("Internal error: ")
        .trim_start_matches("SQL error: ")
        .trim_start_matches("Error during planning: ")
        .trim_start_matches("Schema error: ")
        .to_string();
    m.replace("ParserError(\"", "")
        .replace("\")", "")
        .replace('\n', " ")
        .trim()
        .to_string()
}

/// A metric query's result as series: one per combination of the non-value columns.
#[derive(Debug, Clone, PartialEq)]
pub struct QuerySeries {
    pub tags: BTreeMap<String, String>,
    /// Epoch milliseconds when the query returns `ts`.
    pub ts: Vec<Option<i64>>,
    pub values: Vec<f64>,
}

/// The query engine: one per store, shared by the daemon and Python. Planning and
/// execution run on its [`Executor`] within its [`QueryLimits`].
#[derive(Clone)]
pub struct Engine {
    store: Store,
    executor: Arc<Executor>,
}

impl Engine {
    /// An engine with the default limits, on the process's shared query threads.
    pub fn new(store: Store) -> Self {
        static SHARED: std::sync::OnceLock<Arc<Executor>> = std::sync::OnceLock::new();
        let executor = SHARED.get_or_init(|| {
            Arc::new(Executor::new(QueryLimits::default()).expect("cannot start the query threads"))
        });
        Engine {
            store,
            executor: executor.clone(),
        }
    }

    /// An engine on its own query threads, within `limits`.
    pub fn with_limits(store: Store, limits: QueryLimits) -> std::io::Result<Self> {
        Ok(Engine {
            store,
            executor: Arc::new(Executor::new(limits)?),
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn limits(&self) -> QueryLimits {
        self.executor.limits
    }

    /// A session with `metrics` bound to `binding`. Single partition: metric queries are
    /// small, and many run in parallel across canary runs instead.
    pub fn session(&self, binding: Binding) -> (SessionContext, Arc<StoreTableProvider>) {
        self.session_with(binding, &[])
    }

    /// [`Engine::session`] with tag columns for `extra_tags` even if no point has them yet.
    fn session_with(
        &self,
        binding: Binding,
        extra_tags: &[String],
    ) -> (SessionContext, Arc<StoreTableProvider>) {
        let cfg = SessionConfig::new()
            .with_target_partitions(1)
            .with_information_schema(false)
            .with_default_catalog_and_schema("coalmine", "public");
        // The query's memory (`query.memory`), nothing spilt to disk.
        let runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(
                datafusion::execution::memory_pool::GreedyMemoryPool::new(
                    self.executor.limits.memory_bytes,
                ),
            ))
            .with_disk_manager_builder(
                datafusion::execution::disk_manager::DiskManagerBuilder::default()
                    .with_mode(datafusion::execution::disk_manager::DiskManagerMode::Disabled),
            )
            .build_arc()
            .expect("a runtime without spilling builds");
        let ctx = SessionContext::new_with_config_rt(cfg, runtime);
        for f in limits::bounded_functions(&ctx.state()) {
            ctx.register_udf(f);
        }
        for f in timeseries::functions() {
            ctx.register_udaf(f);
        }
        // It tells a stranger the engine's version and the host's OS and architecture.
        ctx.deregister_udf("version");
        let provider = Arc::new(StoreTableProvider::new(
            self.store.clone(),
            binding,
            extra_tags,
        ));
        ctx.register_table("metrics", provider.clone())
            .expect("a fresh session has no `metrics` table");
        (ctx, provider)
    }

    /// Parse and plan `sql` against `metrics` (no data is read). The plan can be executed
    /// many times with other bindings through the returned provider.
    pub async fn plan(&self, sql: &str, binding: Binding) -> Result<PreparedQuery, QueryError> {
        let q = self.plan_any(sql, binding).await?;
        check_output_schema(&q.plan).map_err(|e| match e {
            QueryError::Invalid(m) => QueryError::Invalid(m + &assumed_hint(&q.assumed_names)),
            other => other,
        })?;
        Ok(q)
    }

    /// [`Engine::plan`] for exploration: any read-only SELECT, whatever it returns.
    ///
    /// Planning never depends on which tags have arrived: a column the query names that
    /// `metrics` does not have (yet) is taken as a tag key — a nullable tag column, NULL
    /// until points carry that tag ([`PreparedQuery::assumed_tags`]) — unless the name is
    /// a likely misspelling of one of the fixed columns (`valeu`, `timestamp`), which is
    /// refused with a suggestion.
    pub async fn plan_any(&self, sql: &str, binding: Binding) -> Result<PreparedQuery, QueryError> {
        check_statement(sql)?;
        let (engine, sql) = (self.clone(), sql.to_string());
        self.executor
            .run("planning the query", async move {
                engine.plan_here(&sql, binding).await
            })
            .await
    }

    /// [`Engine::plan_any`] on the calling thread (the query threads).
    async fn plan_here(&self, sql: &str, binding: Binding) -> Result<PreparedQuery, QueryError> {
        let mut assumed: Vec<String> = Vec::new();
        let (ctx, provider, df) = loop {
            let (ctx, provider) = self.session_with(binding.clone(), &assumed);
            match ctx.sql_with_options(sql, read_only()).await {
                Ok(df) => break (ctx, provider, df),
                Err(e) => {
                    let missing = missing_column(&e);
                    match missing {
                        Some(name)
                            if !assumed.contains(&name) && assumed.len() < MAX_ASSUMED_TAGS =>
                        {
                            if let Some(fixed) = misspelt_fixed_column(&name) {
                                return Err(QueryError::Invalid(format!(
                                    "no column named `{name}`: did you mean `{fixed}`? (`metrics` has ts, metric, value, tags and a column per tag key; other unknown names are taken as tag keys)"
                                )));
                            }
                            assumed.push(name);
                        }
                        _ => {
                            return Err(QueryError::Plan {
                                source: e,
                                hint: assumed_hint(&assumed),
                            })
                        }
                    }
                }
            }
        };
        let assumed_tags: Vec<String> = {
            let stored = provider::stored_tag_keys(&self.store);
            assumed
                .iter()
                .filter(|k| !stored.contains(*k))
                .cloned()
                .collect()
        };
        let plan = df.logical_plan().clone();
        // Optimised once, here, unless the plan reads the clock (`now()` and the like are
        // folded to the instant of optimisation) or is volatile; the session state and task
        // context are built once too (each clone copies DataFusion's function registries).
        let state = ctx.state();
        let optimized = if reads_the_clock(&plan) {
            None
        } else {
            Some(state.optimize(&plan).map_err(QueryError::plan)?)
        };
        let task = state.task_ctx();
        Ok(PreparedQuery {
            executor: self.executor.clone(),
            ctx,
            state: Arc::new(state),
            task,
            provider,
            plan,
            optimized,
            assumed_tags,
            assumed_names: assumed,
        })
    }

    /// Run any read-only SELECT over `metrics` once (Python's `Store.sql`).
    pub async fn sql(&self, sql: &str, binding: Binding) -> Result<Vec<RecordBatch>, QueryError> {
        self.plan_any(sql, binding).await?.collect().await
    }

    /// Run `sql` once.
    pub async fn query(&self, sql: &str, binding: Binding) -> Result<Vec<RecordBatch>, QueryError> {
        self.plan(sql, binding).await?.collect().await
    }
}

/// A planned metric query, re-runnable with new bindings (each tick of a canary run): the
/// logical plan is optimised once; each run plans the physical side again (the scan reads
/// the store as it is then) and executes it.
pub struct PreparedQuery {
    executor: Arc<Executor>,
    ctx: SessionContext,
    state: Arc<SessionState>,
    task: Arc<TaskContext>,
    provider: Arc<StoreTableProvider>,
    plan: LogicalPlan,
    /// `None` when the plan must be optimised at each run (see [`reads_the_clock`]).
    optimized: Option<LogicalPlan>,
    /// Unknown names taken as tag keys, and those of them no point had at planning.
    assumed_names: Vec<String>,
    assumed_tags: Vec<String>,
}

impl PreparedQuery {
    /// Tag keys the query names that no point in the store had when it was planned.
    pub fn assumed_tags(&self) -> &[String] {
        &self.assumed_tags
    }

    /// Of [`PreparedQuery::assumed_tags`], those no point in the store has yet.
    pub fn missing_tags(&self, store: &Store) -> Vec<String> {
        if self.assumed_tags.is_empty() {
            return Vec::new();
        }
        let stored = provider::stored_tag_keys(store);
        self.assumed_tags
            .iter()
            .filter(|k| !stored.contains(*k))
            .cloned()
            .collect()
    }

    pub fn rebind(&self, binding: Binding) {
        self.provider.rebind(binding);
    }

    pub fn binding(&self) -> Binding {
        self.provider.binding()
    }

    /// Execute on the query threads, within the time and memory limits (the collected
    /// result counts against the memory limit too).
    pub async fn collect(&self) -> Result<Vec<RecordBatch>, QueryError> {
        let (state, task) = (self.state.clone(), self.task.clone());
        let plan = match &self.optimized {
            Some(optimized) => Ok(optimized.clone()),
            None => Err((self.ctx.clone(), self.plan.clone())),
        };
        self.executor
            .run("the query", async move {
                let physical = match plan {
                    Ok(optimized) => state
                        .query_planner()
                        .create_physical_plan(&optimized, &*state)
                        .await
                        .map_err(QueryError::execution)?,
                    Err((ctx, plan)) => datafusion::dataframe::DataFrame::new(ctx.state(), plan)
                        .create_physical_plan()
                        .await
                        .map_err(QueryError::execution)?,
                };
                collect_within(physical, task).await
            })
            .await
    }

    /// Run and shape the result as series.
    pub async fn series(&self) -> Result<Vec<QuerySeries>, QueryError> {
        to_series(&self.collect().await?)
    }
}

/// Execute `physical`, holding its result in a reservation of the query's memory pool.
async fn collect_within(
    physical: Arc<dyn datafusion::physical_plan::ExecutionPlan>,
    task: Arc<TaskContext>,
) -> Result<Vec<RecordBatch>, QueryError> {
    use datafusion::execution::memory_pool::MemoryConsumer;
    use futures::StreamExt;
    let result = MemoryConsumer::new("query result").register(task.memory_pool());
    let mut stream =
        datafusion::physical_plan::execute_stream(physical, task).map_err(QueryError::execution)?;
    let mut batches = Vec::new();
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(QueryError::execution)?;
        result
            .try_grow(batch.get_array_memory_size())
            .map_err(QueryError::execution)?;
        batches.push(batch);
    }
    Ok(batches)
}

/// Whether `plan` calls a function that is not immutable (`now()`, `current_date()`,
/// `random()`, …): the optimiser folds the clock's to constants, so such a plan is optimised
/// again at each run.
fn reads_the_clock(plan: &LogicalPlan) -> bool {
    let mut found = false;
    let _ = plan.apply_with_subqueries(|node| {
        node.apply_expressions(|e| {
            e.apply(|e| {
                if let Expr::ScalarFunction(f) = e {
                    if f.func.signature().volatility != Volatility::Immutable {
                        found = true;
                        return Ok(TreeNodeRecursion::Stop);
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    });
    found
}

/// The result must have a numeric `value` column; `ts`, if present, a timestamp or integer.
fn check_output_schema(plan: &LogicalPlan) -> Result<(), QueryError> {
    let schema = plan.schema();
    let fields = schema.fields();
    let Some(value) = fields.iter().find(|f| f.name() == "value") else {
        let names: Vec<&str> = fields.iter().map(|f| f.name().as_str()).collect();
        return Err(QueryError::Invalid(format!(
            "the query must return a column named `value` (the sample); it returns: {}",
            names.join(", ")
        )));
    };
    if !value.data_type().is_numeric() && !matches!(value.data_type(), DataType::Null) {
        return Err(QueryError::Invalid(format!(
            "column `value` must be numeric, it is {}",
            value.data_type()
        )));
    }
    if let Some(ts) = fields.iter().find(|f| f.name() == "ts") {
        if !matches!(
            ts.data_type(),
            DataType::Timestamp(_, _) | DataType::Int64 | DataType::Date32 | DataType::Date64
        ) {
            return Err(QueryError::Invalid(format!(
                "column `ts` must be a timestamp, it is {}",
                ts.data_type()
            )));
        }
    }
    Ok(())
}

/// Split a result into series by the values of every column other than `value` and `ts`.
pub fn to_series(batches: &[RecordBatch]) -> Result<Vec<QuerySeries>, QueryError> {
    let mut by_tags: BTreeMap<BTreeMap<String, String>, QuerySeries> = BTreeMap::new();
    for batch in batches {
        let schema = batch.schema();
        let value_idx = schema
            .index_of("value")
            .map_err(|_| QueryError::Result("no `value` column".into()))?;
        let values = arrow::compute::cast(batch.column(value_idx), &DataType::Float64)
            .map_err(|e| QueryError::Result(format!("`value` is not numeric: {e}")))?;
        let values = values
            .as_any()
            .downcast_ref::<arrow::array::Float64Array>()
            .expect("cast to f64");
        let ts = match schema.index_of("ts") {
            Ok(i) => Some(ts_millis(batch.column(i))?),
            Err(_) => None,
        };
        let tag_cols: Vec<(String, ArrayRef)> = schema
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| f.name() != "value" && f.name() != "ts")
            .map(|(i, f)| {
                arrow::compute::cast(batch.column(i), &DataType::Utf8)
                    .map(|a| (f.name().clone(), a))
                    .map_err(|e| {
                        QueryError::Result(format!(
                            "column `{}` cannot be used as a tag: {e}",
                            f.name()
                        ))
                    })
            })
            .collect::<Result<_, _>>()?;
        for row in 0..batch.num_rows() {
            let mut tags = BTreeMap::new();
            for (name, col) in &tag_cols {
                let s = col
                    .as_any()
                    .downcast_ref::<arrow::array::StringArray>()
                    .expect("cast to utf8");
                let v = if s.is_null(row) {
                    String::new()
                } else {
                    s.value(row).to_string()
                };
                tags.insert(name.clone(), v);
            }
            let entry = by_tags.entry(tags.clone()).or_insert_with(|| QuerySeries {
                tags,
                ts: Vec::new(),
                values: Vec::new(),
            });
            entry.values.push(if values.is_null(row) {
                f64::NAN
            } else {
                values.value(row)
            });
            entry.ts.push(ts.as_ref().and_then(|t| t[row]));
        }
    }
    // time order within a series when the query returns `ts`
    for s in by_tags.values_mut() {
        if s.ts.iter().all(Option::is_some) && s.ts.windows(2).any(|w| w[0] > w[1]) {
            let mut idx: Vec<usize> = (0..s.ts.len()).collect();
            idx.sort_by_key(|&i| s.ts[i]);
            s.ts = idx.iter().map(|&i| s.ts[i]).collect();
            s.values = idx.iter().map(|&i| s.values[i]).collect();
        }
    }
    Ok(by_tags.into_values().collect())
}

fn ts_millis(col: &ArrayRef) -> Result<Vec<Option<i64>>, QueryError> {
    let ms = arrow::compute::cast(col, &DataType::Timestamp(TimeUnit::Millisecond, None))
        .or_else(|_| arrow::compute::cast(col, &DataType::Int64))
        .map_err(|e| QueryError::Result(format!("`ts` is not a time: {e}")))?;
    let ms = arrow::compute::cast(&ms, &DataType::Int64)
        .map_err(|e| QueryError::Result(e.to_string()))?;
    let a = ms
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .expect("cast to i64");
    Ok((0..a.len())
        .map(|i| (!a.is_null(i)).then(|| a.value(i)))
        .collect())
}
