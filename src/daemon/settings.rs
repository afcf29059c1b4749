//! The daemon's own settings: `[server]` (the HTTP API) and `[log]`.

use std::net::SocketAddr;

use crate::settings::{Kind, Setting, Values};

/// The `[server]` settings of `coalmine.toml`.
pub const SERVER_SETTINGS: &[Setting] = &[
    Setting { key: "server.listen", kind: Kind::Str, default: "127.0.0.1:8090", doc: "Address of the HTTP API (Kayenta's port by default; port 0 picks a free one)." },
    Setting { key: "server.token", kind: Kind::OptStr, default: "", doc: "When set, POST/PUT/DELETE on /canaryConfig and /runs need `Authorization: Bearer <token>` (prefer COALMINE__SERVER__TOKEN to keep it out of files)." },
    Setting { key: "server.max-body", kind: Kind::Bytes, default: "16MiB", doc: "Largest request body any endpoint reads; a larger one is refused with 413." },
    Setting { key: "server.judge-concurrency", kind: Kind::Int, default: "4", doc: "`POST /judge` requests judged at once; one more is refused with 503 and `Retry-After`." },
    Setting { key: "server.judge-queue-wait", kind: Kind::Duration, default: "10s", doc: "How long a `POST /judge` waits for a turn when server.judge-concurrency requests are being judged, before 503 with `Retry-After`." },
    Setting { key: "server.judge-memory", kind: Kind::Bytes, default: "512MiB", doc: "Memory all `POST /judge` requests in progress may hold together (estimated as 16 bytes per byte of body, reserved from the declared length before the body is read); a request that does not fit now gets 503 with `Retry-After`, one that never could 413." },
    Setting { key: "server.public-url", kind: Kind::OptStr, default: "", doc: "The API's address as people reach it (e.g. https://coalmine.example.com): the base of `reportUrl` in runs, verdicts and Kafka verdict events (unset: each response uses its request's Host header, and Kafka events carry no link)." },
    Setting { key: "server.run-metrics-ttl", kind: Kind::Duration, default: "1h", doc: "How long a finished run's gauges (coalmine_run_*) stay on /metrics after its last judgment; running runs are always there." },
    Setting { key: "server.judge-max-values", kind: Kind::Int, default: "1000000", doc: "Values (both scopes, all metrics) one `POST /judge` request may carry; more is refused with 413." },
];

/// The `[log]` settings.
pub const LOG_SETTINGS: &[Setting] = &[
    Setting { key: "log.level", kind: Kind::Str, default: "info", doc: "Log filter (error | warn | info | debug | trace, or a tracing directive like coalmine=debug)." },
];

/// `[server]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub listen: String,
    pub token: Option<String>,
    pub limits: RequestLimits,
    /// `server.public-url`, without a trailing `/`.
    pub public_url: Option<String>,
    /// `server.run-metrics-ttl`.
    pub run_metrics_ttl: std::time::Duration,
}

/// What one request, and all `POST /judge` requests together, may cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// `server.max-body`.
    pub max_body: usize,
    /// `server.judge-concurrency`.
    pub judge_concurrency: usize,
    /// `server.judge-queue-wait`.
    pub judge_queue_wait: std::time::Duration,
    /// `server.judge-memory`.
    pub judge_memory: u64,
    /// `server.judge-max-values`.
    pub judge_max_values: usize,
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits {
            max_body: 16 << 20,
            judge_concurrency: 4,
            judge_queue_wait: std::time::Duration::from_secs(10),
            judge_memory: 512 << 20,
            judge_max_values: 1_000_000,
        }
    }
}

impl ServerConfig {
    pub fn from_settings(v: &Values) -> ServerConfig {
        ServerConfig {
            listen: v.string("server.listen").unwrap_or_default(),
            token: v.string("server.token"),
            public_url: v
                .string("server.public-url")
                .map(|u| u.trim_end_matches('/').to_string()),
            run_metrics_ttl: v.duration("server.run-metrics-ttl"),
            limits: RequestLimits {
                max_body: v.bytes("server.max-body").unwrap_or(16 << 20).max(1024) as usize,
                judge_concurrency: v.int("server.judge-concurrency").max(1),
                judge_queue_wait: v.duration("server.judge-queue-wait"),
                judge_memory: v
                    .bytes("server.judge-memory")
                    .unwrap_or(512 << 20)
                    .max(1 << 20),
                judge_max_values: v.int("server.judge-max-values").max(1),
            },
        }
    }

    /// Problems across settings (each names its setting).
    pub fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.listen.parse::<SocketAddr>().is_err() && !self.listen.contains(':') {
            p.push(format!(
                "server.listen: {:?} is not an address like 127.0.0.1:8090",
                self.listen
            ));
        }
        if let Some(u) = &self.public_url {
            if !(u.starts_with("http://") || u.starts_with("https://"))
                || u.contains(char::is_whitespace)
            {
                p.push(format!(
                    "server.public-url: {u:?} is not an http:// or https:// URL"
                ));
            }
        }
        p
    }
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// A `tracing` filter.
    pub level: String,
}

impl LogConfig {
    pub fn from_settings(v: &Values) -> LogConfig {
        LogConfig {
            level: v.string("log.level").unwrap_or_else(|| "info".into()),
        }
    }
}
