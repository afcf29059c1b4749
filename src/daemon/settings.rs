//! The daemon's own settings: `[server]` (the HTTP API) and `[log]`.

use std::net::SocketAddr;

use crate::settings::{Kind, Setting, Values};

/// The `[server]` settings of `coalmine.toml`.
pub const SERVER_SETTINGS: &[Setting] = &[
    Setting { key: "server.listen", kind: Kind::Str, default: "127.0.0.1:8090", doc: "Address of the HTTP API (Kayenta's port by default; port 0 picks a free one)." },
    Setting { key: "server.token", kind: Kind::OptStr, default: "", doc: "When set, POST/PUT/DELETE on /canaryConfig and /runs need `Authorization: Bearer <token>` (prefer COALMINE__SERVER__TOKEN to keep it out of files)." },
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
}

impl ServerConfig {
    pub fn from_settings(v: &Values) -> ServerConfig {
        ServerConfig {
            listen: v.string("server.listen").unwrap_or_default(),
            token: v.string("server.token"),
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
