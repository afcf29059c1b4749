//! The HTTP API (axum): Kayenta-compatible judging and config CRUD, canary runs, a verdict
//! endpoint for delivery pipelines, health, Prometheus metrics and an OpenAPI document.
//!
//! `POST /api/v1/write` (Prometheus remote-write) and `POST /v1/metrics` (OTLP/HTTP) are
//! receivers: each request goes to a Kafka topic and is acknowledged once Kafka has it
//! (`crate::ingest::receive`).
//!
//! Every error is JSON `{"message": "..."}` with a 4xx/5xx status from the error's kind.
//! When a token is configured, writes (`POST`/`PUT`/`DELETE` on configs and runs) need
//! `Authorization: Bearer <token>`; `POST /judge` computes without storing anything and is
//! open, like the reads.

mod metrics;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::SemaphorePermit;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Query, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::canary::{self, ConfigStore};
use crate::daemon::settings::RequestLimits;
use crate::error::kind::ErrorKind;
use crate::ingest::IngestStats;
use crate::judge::{self, JudgeKind};
use crate::query::Engine;
use crate::runs::RunManager;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    pub configs: Arc<ConfigStore>,
    pub runs: RunManager,
    pub ingest: Arc<IngestStats>,
    pub token: Option<Arc<str>>,
    pub judge_requests: Arc<AtomicU64>,
    pub limits: Arc<JudgeLimits>,
    /// `server.public-url`: the base of `reportUrl` (else the request's Host header).
    pub public_url: Option<Arc<str>>,
    /// `server.run-metrics-ttl`: finished runs leave `/metrics` this long after their last
    /// judgment.
    pub run_metrics_ttl: std::time::Duration,
    /// The remote-write and OTLP/HTTP receivers (`None`: `[receive]` sets no topic).
    #[cfg(feature = "kafka")]
    pub receiver: Option<Arc<crate::ingest::receive::Receiver>>,
}

/// What `POST /judge` may cost: bodies, requests at once, their memory together, values.
pub struct JudgeLimits {
    pub request: RequestLimits,
    slots: tokio::sync::Semaphore,
    /// The memory budget in KiB permits.
    memory_kib: tokio::sync::Semaphore,
}

impl JudgeLimits {
    pub fn new(request: RequestLimits) -> Self {
        JudgeLimits {
            request,
            slots: tokio::sync::Semaphore::new(request.judge_concurrency),
            memory_kib: tokio::sync::Semaphore::new(Self::kib(request.judge_memory) as usize),
        }
    }

    fn kib(bytes: u64) -> u32 {
        bytes.div_ceil(1024).min(u32::MAX as u64 >> 1) as u32
    }

    /// Reserve the memory of judging a body of `body` bytes (declared, before it is read),
    /// or the refusal: 413 when this request alone is beyond the budget, 503 with
    /// `Retry-After` when the budget is in use. The reservation covers the body while it is
    /// read and waits, so bodies in flight are bounded too.
    fn reserve(&self, body: u64) -> ApiResult<SemaphorePermit<'_>> {
        // A parsed JSON value takes up to 16 times its text ("1," becomes a 32-byte value),
        // and the request then holds its values once more as f64.
        let estimate = body.saturating_mul(JUDGE_BYTES_PER_BODY_BYTE);
        if estimate > self.request.judge_memory {
            return Err(ApiError::refused(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "judging this {} body needs about {}, more than server.judge-memory ({}): split the request",
                    human_bytes(body),
                    human_bytes(estimate),
                    human_bytes(self.request.judge_memory)
                ),
            ));
        }
        self.memory_kib
            .try_acquire_many(Self::kib(estimate))
            .map_err(|_| busy("server.judge-memory"))
    }

    /// A turn to judge: waits up to `server.judge-queue-wait` for one of
    /// `server.judge-concurrency`, then 503 with `Retry-After`.
    async fn turn(&self) -> ApiResult<SemaphorePermit<'_>> {
        match tokio::time::timeout(self.request.judge_queue_wait, self.slots.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(busy("server.judge-concurrency")),
        }
    }
}

fn busy(what: &str) -> ApiError {
    ApiError::refused(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("the server is judging as much as {what} allows; retry shortly"),
    )
    .retry_after(1)
}

/// How much memory judging takes per byte of request body, at most.
const JUDGE_BYTES_PER_BODY_BYTE: u64 = 16;

fn human_bytes(b: u64) -> String {
    match b {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} bytes"),
    }
}

fn body_too_large(max: u64) -> ApiError {
    ApiError::refused(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "the request body is larger than server.max-body ({})",
            human_bytes(max)
        ),
    )
}

/// The `Content-Length` a request declares.
fn declared_length(req: &Request) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// The request body, read up to `server.max-body`; beyond it a JSON 413 naming the setting.
pub struct Body(Bytes);

impl FromRequest<AppState> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let max = state.limits.request.max_body;
        let too_large = || body_too_large(max as u64);
        // A declared length over the limit is refused before any of the body is read (a
        // client sending `Expect: 100-continue`, as curl does, gets the 413 cleanly).
        if declared_length(&req).is_some_and(|n| n > max as u64) {
            return Err(too_large());
        }
        match axum::body::to_bytes(req.into_body(), max).await {
            Ok(b) => Ok(Body(b)),
            Err(e) => {
                let over = std::error::Error::source(&e)
                    .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
                Err(if over {
                    too_large()
                } else {
                    ApiError::bad(format!("cannot read the request body: {e}"))
                })
            }
        }
    }
}

/// An error response: `{"message": …}` with the status of the error's kind, logged at the
/// kind's level.
pub struct ApiError {
    kind: ErrorKind,
    status: StatusCode,
    message: String,
    retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        let status =
            StatusCode::from_u16(kind.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        ApiError {
            kind,
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    /// Tell the client when to try again (`Retry-After`, seconds).
    fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// A refusal of the request itself (a route or method that does not exist).
    fn refused(status: StatusCode, message: String) -> Self {
        ApiError {
            kind: ErrorKind::InvalidInput,
            status,
            message,
            retry_after: None,
        }
    }

    fn bad(message: impl Into<String>) -> Self {
        ApiError::new(ErrorKind::InvalidInput, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status;
        match self.kind.log_level() {
            tracing::Level::ERROR => {
                tracing::error!(status = status.as_u16(), message = %self.message, "Request failed")
            }
            tracing::Level::WARN => {
                tracing::warn!(status = status.as_u16(), message = %self.message, "Request failed")
            }
            _ => {
                tracing::debug!(status = status.as_u16(), message = %self.message, "Request refused")
            }
        }
        let mut response = (status, Json(json!({ "message": self.message }))).into_response();
        if let Some(s) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(s));
        }
        response
    }
}

/// Every stage error becomes a response the same way: its kind and its message.
macro_rules! api_error_from {
    ($($t:ty),*) => {$(
        impl From<$t> for ApiError {
            fn from(e: $t) -> Self {
                ApiError::new(e.kind(), e.to_string())
            }
        }
    )*};
}
api_error_from!(
    canary::CanaryError,
    crate::runs::RunError,
    crate::judge::JudgeError
);

type ApiResult<T> = Result<T, ApiError>;

/// The router.
pub fn router(state: AppState) -> Router {
    let routes = Router::new();
    #[cfg(feature = "kafka")]
    let routes = routes
        .route("/api/v1/write", post(remote_write))
        .route("/v1/metrics", post(otlp_metrics));
    routes
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/judges", get(judges))
        .route("/judge", post(judge_request))
        .route("/canaryConfig", get(list_configs).post(create_config))
        .route(
            "/canaryConfig/{id}",
            get(get_config).put(update_config).delete(delete_config),
        )
        .route("/runs", get(list_runs).post(create_run))
        .route("/runs/{id}", get(get_run).delete(stop_run))
        .route("/runs/{id}/verdict", get(verdict))
        .route("/runs/{id}/report", get(run_report))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        // Bodies are read by `Body`, which applies `server.max-body`.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

/// Serve until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Bind `addr` (`127.0.0.1:0` picks a free port).
pub async fn bind(addr: &str) -> std::io::Result<(tokio::net::TcpListener, SocketAddr)> {
    let l = tokio::net::TcpListener::bind(addr).await?;
    let a = l.local_addr()?;
    Ok((l, a))
}

async fn auth(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let writes = matches!(
        *req.method(),
        Method::POST | Method::PUT | Method::DELETE | Method::PATCH
    );
    if let (true, Some(token)) = (writes && req.uri().path() != "/judge", st.token.as_ref()) {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !constant_time_eq(given.as_bytes(), token.as_bytes()) {
            let msg = if given.is_empty() {
                "this endpoint needs Authorization: Bearer <token>"
            } else {
                "invalid token"
            };
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                Json(json!({ "message": msg })),
            )
                .into_response();
        }
    }
    next.run(req).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn not_found(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::refused(
        StatusCode::NOT_FOUND,
        format!("no route for {method} {}", uri.path()),
    )
}

async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::refused(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed on {}", uri.path()),
    )
}

fn json_body(body: &Bytes, what: &str) -> ApiResult<Value> {
    if body.is_empty() {
        return Err(ApiError::bad(format!(
            "the request body is empty (expected {what})"
        )));
    }
    let text = std::str::from_utf8(body)
        .map_err(|e| ApiError::bad(format!("the body is not UTF-8 (byte {})", e.valid_up_to())))?;
    judge::json::parse_text(text, "the request body").map_err(|e| ApiError::bad(e.message))
}

/// A subsystem whose loop has not turned for this long is stuck.
const STUCK_AFTER_MS: i64 = 15_000;

/// `GET /health`: 200 `ok`, or 503 `unhealthy` with the stuck subsystems (the run
/// scheduler, which turns at least every 500 ms, and the Kafka consumer, every poll).
async fn health(State(st): State<AppState>) -> Response {
    let now = crate::store::now_ms();
    let mut problems = Vec::new();
    let mut check = |what: &str, beat: i64| {
        if beat > 0 && now - beat > STUCK_AFTER_MS {
            problems.push(format!(
                "{what} has not turned for {} s",
                (now - beat) / 1000
            ));
        }
    };
    check("the run scheduler", st.runs.heartbeat_ms());
    check(
        "the Kafka consumer",
        st.ingest.heartbeat_ms.load(Ordering::Relaxed),
    );
    let version = env!("CARGO_PKG_VERSION");
    if problems.is_empty() {
        Json(json!({ "status": "ok", "version": version })).into_response()
    } else {
        tracing::warn!(problems = ?problems, "Health check failed");
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unhealthy", "version": version, "problems": problems })),
        )
            .into_response()
    }
}

async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("api/openapi.json"),
    )
        .into_response()
}

async fn judges() -> Json<Value> {
    Json(Value::Array(
        JudgeKind::ALL
            .iter()
            .map(|j| json!({ "name": j.name(), "visible": true }))
            .collect(),
    ))
}

/// `POST /judge`: Kayenta's `RemoteJudge-v1.0` request → `CanaryJudgeResult`.
///
/// Parsing and judging run on a blocking thread, within `server.judge-memory` (reserved from
/// the declared length before the body is read) and `server.judge-concurrency` (a request
/// waits up to `server.judge-queue-wait` for a turn); a request beyond `server.judge-max-values` is refused.
async fn judge_request(
    State(st): State<AppState>,
    Query(q): Query<Vec<(String, String)>>,
    req: Request,
) -> ApiResult<Response> {
    let param = |name: &str| q.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let judge_name = param("judge");
    // `?format=html`: the judgment's report instead of the CanaryJudgeResult
    let html = match param("format").as_deref() {
        None | Some("json") => false,
        Some("html") => true,
        Some(other) => {
            return Err(ApiError::bad(format!(
                "format: {other:?} is not json or html"
            )))
        }
    };
    let max_body = st.limits.request.max_body as u64;
    let declared = declared_length(&req);
    if declared.is_some_and(|n| n > max_body) {
        return Err(body_too_large(max_body));
    }
    // Memory first, from the declared length (or the most a body may be), before reading.
    let _memory = st.limits.reserve(declared.unwrap_or(max_body))?;
    let Body(body) = Body::from_request(req, &st).await?;
    let _turn = st.limits.turn().await?;
    st.judge_requests.fetch_add(1, Ordering::Relaxed);
    let max_values = st.limits.request.judge_max_values;
    let (result, page) = tokio::task::spawn_blocking(move || -> ApiResult<(judge::CanaryJudgeResult, Option<String>)> {
        let value = json_body(&body, "a remote-judge request")?;
        drop(body);
        let request = judge::JudgeRequest::from_value(&value)
            .map_err(|e| ApiError::from(judge::JudgeError::from(e)))?;
        drop(value);
        let values: usize = request
            .metric_set_pair_list
            .iter()
            .map(|p| p.control.len() + p.experiment.len())
            .sum();
        if values > max_values {
            return Err(ApiError::refused(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the request carries {values} values; server.judge-max-values allows {max_values}: split the request"
                ),
            ));
        }
        let result = judge::judge_request(&request, judge_name.as_deref())?;
        let page = html.then(|| {
            crate::report::judgment_html(&request, &result, crate::report::Form::Page)
        });
        Ok((result, page))
    })
    .await
    .map_err(|e| ApiError::new(ErrorKind::Internal, e.to_string()))??;
    if let Some(page) = page {
        return Ok(html_page(page));
    }
    Ok(Json(serde_json::to_value(&result).expect("results serialise")).into_response())
}

/// An HTML report as a response: it may load nothing but its own inline styles and SVG.
fn html_page(page: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; img-src data:",
            ),
        ],
        page,
    )
        .into_response()
}

async fn list_configs(
    State(st): State<AppState>,
    Query(q): Query<Vec<(String, String)>>,
) -> ApiResult<Json<Value>> {
    let apps: Vec<String> = q
        .into_iter()
        .filter(|(k, _)| k == "application")
        .map(|(_, v)| v)
        .collect();
    Ok(Json(Value::Array(st.configs.list(&apps)?)))
}

async fn get_config(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(st.configs.get(&id)?))
}

/// A config body, parsed on a blocking thread (its cost is linear in `server.max-body`).
async fn config_body(headers: &HeaderMap, body: Bytes) -> ApiResult<Value> {
    if body.is_empty() {
        return Err(ApiError::bad(
            "the request body is empty (expected a canary config)",
        ));
    }
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    blocking(move || canary::parse_document(&body, ct.as_deref())).await
}

/// Config writes fsync: off the async runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, canary::CanaryError> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::new(crate::ErrorKind::Internal, e.to_string()))?
        .map_err(ApiError::from)
}

async fn create_config(
    State(st): State<AppState>,
    headers: HeaderMap,
    Body(body): Body,
) -> ApiResult<Json<Value>> {
    let doc = config_body(&headers, body).await?;
    canary::validate(&doc, &st.engine).await?;
    let configs = st.configs.clone();
    let id = blocking(move || configs.create(doc)).await?;
    Ok(Json(json!({ "canaryConfigId": id })))
}

async fn update_config(
    State(st): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Body(body): Body,
) -> ApiResult<Json<Value>> {
    st.configs.get(&id)?;
    let doc = config_body(&headers, body).await?;
    canary::validate(&doc, &st.engine).await?;
    let (configs, key) = (st.configs.clone(), id.clone());
    blocking(move || configs.update(&key, doc)).await?;
    Ok(Json(json!({ "canaryConfigId": id })))
}

async fn delete_config(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let configs = st.configs.clone();
    blocking(move || configs.delete(&id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn create_run(
    State(st): State<AppState>,
    headers: HeaderMap,
    Body(body): Body,
) -> ApiResult<Response> {
    let value = tokio::task::spawn_blocking(move || json_body(&body, "a run request"))
        .await
        .map_err(|e| ApiError::new(ErrorKind::Internal, e.to_string()))??;
    let run = st.runs.create(&value).await?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/runs/{}", run.id))],
        Json(run_json(&st, &headers, &run)),
    )
        .into_response())
}

/// Where the run's report is: `server.public-url`, else the address the request was sent to.
fn report_url(st: &AppState, headers: &HeaderMap, id: &str) -> String {
    let base = match &st.public_url {
        Some(u) => u.to_string(),
        None => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .filter(|h| !h.is_empty() && !h.contains(['/', ' ', '"', '<', '>']))
                .unwrap_or("localhost");
            format!("http://{host}")
        }
    };
    crate::runs::report_url(&base, id)
}

/// A run's JSON with its `reportUrl`.
fn run_json(st: &AppState, headers: &HeaderMap, run: &crate::runs::Run) -> Value {
    let mut v = serde_json::to_value(run).expect("runs serialise");
    v["reportUrl"] = Value::String(report_url(st, headers, &run.id));
    v
}

/// `GET /runs/{id}/report`: the run's HTML report (series queried again from the store).
async fn run_report(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let (run, pairs, note) = st.runs.report_data(&id).await?;
    let page = tokio::task::spawn_blocking(move || {
        let pairs: Vec<judge::MetricSetPair> = pairs.into_iter().map(|p| p.pair).collect();
        crate::report::run_html(&run, &pairs, &note, crate::report::Form::Page)
    })
    .await
    .map_err(|e| ApiError::new(ErrorKind::Internal, e.to_string()))?;
    Ok(html_page(page))
}

async fn list_runs(State(st): State<AppState>) -> Json<Vec<crate::runs::RunSummary>> {
    Json(st.runs.list())
}

async fn get_run(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(run_json(&st, &headers, &st.runs.get(&id)?)))
}

async fn stop_run(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(run_json(&st, &headers, &st.runs.stop(&id).await?)))
}

async fn verdict(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Json<crate::runs::Verdict>> {
    let mut v = st.runs.get(&id)?.verdict();
    v.report_url = Some(report_url(&st, &headers, &id));
    Ok(Json(v))
}

/// The counters, in the OpenMetrics text format.
async fn metrics(State(st): State<AppState>) -> Response {
    let (content_type, text) = metrics::render(&st);
    ([(header::CONTENT_TYPE, content_type)], text).into_response()
}

// ---------------------------------------------------------------------------------------
// Receivers

#[cfg(feature = "kafka")]
fn header_text(headers: &HeaderMap, name: header::HeaderName) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

#[cfg(feature = "kafka")]
fn unsupported(message: String) -> ApiError {
    ApiError::refused(StatusCode::UNSUPPORTED_MEDIA_TYPE, message)
}

#[cfg(feature = "kafka")]
fn from_refused(r: crate::ingest::receive::Refused) -> ApiError {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_REQUEST);
    let e = ApiError::refused(status, r.message);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        e.retry_after(1)
    } else {
        e
    }
}

#[cfg(feature = "kafka")]
async fn receive(
    st: &AppState,
    payload: crate::ingest::receive::Payload,
    body: &[u8],
) -> ApiResult<usize> {
    let Some(receiver) = st.receiver.as_ref() else {
        return Err(from_refused(payload.off()));
    };
    receiver.accept(payload, body).await.map_err(from_refused)
}

/// Count a receiver's answer (every answer of its endpoint, the body-size refusal included).
#[cfg(feature = "kafka")]
fn counted(
    st: &AppState,
    payload: crate::ingest::receive::Payload,
    result: ApiResult<(usize, Response)>,
) -> Response {
    if let Some(r) = &st.receiver {
        r.stats.note(
            payload,
            result
                .as_ref()
                .map(|(n, _)| *n)
                .map_err(|e| e.status.as_u16()),
        );
    }
    match result {
        Ok((_, response)) => response,
        Err(e) => e.into_response(),
    }
}

/// `POST /api/v1/write`: Prometheus remote-write 1.0 (snappy-compressed protobuf
/// `WriteRequest`), answered 204 once Kafka has it.
#[cfg(feature = "kafka")]
async fn remote_write(State(st): State<AppState>, req: Request) -> Response {
    let payload = crate::ingest::receive::Payload::RemoteWrite;
    let result = remote_write_request(&st, req).await;
    counted(&st, payload, result)
}

#[cfg(feature = "kafka")]
async fn remote_write_request(st: &AppState, req: Request) -> ApiResult<(usize, Response)> {
    let headers = req.headers().clone();
    let Body(body) = Body::from_request(req, st).await?;
    let ct = header_text(&headers, header::CONTENT_TYPE);
    let v1 = ct.starts_with("application/x-protobuf")
        && (!ct.contains("proto=") || ct.contains("proto=prometheus.writerequest"));
    if !v1 {
        return Err(unsupported(format!(
            "Content-Type {ct:?}: remote-write 1.0 is application/x-protobuf (a prometheus.WriteRequest); remote-write 2.0 is not supported (set protobuf_message: prometheus.WriteRequest in Prometheus's remote_write)"
        )));
    }
    let enc = header_text(&headers, header::CONTENT_ENCODING);
    if !(enc.is_empty() || enc == "snappy") {
        return Err(unsupported(format!(
            "Content-Encoding {enc:?}: remote-write bodies are snappy"
        )));
    }
    let points = receive(st, crate::ingest::receive::Payload::RemoteWrite, &body).await?;
    Ok((points, StatusCode::NO_CONTENT.into_response()))
}

/// `POST /v1/metrics`: OTLP/HTTP metrics, protobuf or JSON, identity or gzip; answered 200
/// with an empty `ExportMetricsServiceResponse` once Kafka has the request.
#[cfg(feature = "kafka")]
async fn otlp_metrics(State(st): State<AppState>, req: Request) -> Response {
    let result = otlp_request(&st, req).await;
    counted(&st, crate::ingest::receive::Payload::OtlpProto, result)
}

#[cfg(feature = "kafka")]
async fn otlp_request(st: &AppState, req: Request) -> ApiResult<(usize, Response)> {
    use crate::ingest::receive::Payload;
    let headers = req.headers().clone();
    let Body(body) = Body::from_request(req, st).await?;
    let ct = header_text(&headers, header::CONTENT_TYPE);
    let payload = if ct.starts_with("application/x-protobuf") {
        Payload::OtlpProto
    } else if ct.starts_with("application/json") {
        Payload::OtlpJson
    } else {
        return Err(unsupported(format!(
            "Content-Type {ct:?}: OTLP/HTTP is application/x-protobuf or application/json"
        )));
    };
    let enc = header_text(&headers, header::CONTENT_ENCODING);
    let body = crate::ingest::receive::content_decoded(
        Some(enc.as_str()),
        &body,
        st.limits.request.max_body,
    )
    .map_err(from_refused)?;
    let points = receive(st, payload, &body).await?;
    let response = if payload == Payload::OtlpJson {
        ([(header::CONTENT_TYPE, "application/json")], "{}").into_response()
    } else {
        (
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            Vec::<u8>::new(),
        )
            .into_response()
    };
    Ok((points, response))
}
