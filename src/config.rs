//! `coalmine.toml`: the daemon's settings, gathered from the stages that own them — each
//! stage declares its [`Setting`] table and builds its config beside its code
//! ([`StoreConfig`] in `store`, [`KafkaConfig`] in `ingest`, [`RunsConfig`] in `runs`,
//! [`SinksConfig`] in `sinks`, [`ServerConfig`] and [`LogConfig`] in `daemon`). The loader,
//! with its layering (defaults < file < `COALMINE__SECTION__KEY`) and its report of every
//! problem with file, line and column, is [`crate::settings`].

use std::collections::BTreeMap;
use std::path::Path;

pub use crate::daemon::settings::{LogConfig, ServerConfig};
pub use crate::ingest::{KafkaConfig, TopicConfig};
pub use crate::runs::RunsConfig;
pub use crate::settings::{parse_bytes, parse_duration, ConfigError, Kind, Setting};
pub use crate::sinks::SinksConfig;
use crate::store::StoreConfig;

/// Every section, in `--help` order, with its settings.
pub const SECTIONS: &[(&str, &[Setting])] = &[
    ("store", crate::store::SETTINGS),
    ("kafka", crate::ingest::SETTINGS),
    ("server", crate::daemon::settings::SERVER_SETTINGS),
    ("receive", crate::ingest::receive::SETTINGS),
    ("runs", crate::runs::SETTINGS),
    ("query", crate::query::limits::SETTINGS),
    ("verdicts", crate::sinks::VERDICTS_SETTINGS),
    ("archive", crate::sinks::ARCHIVE_SETTINGS),
    ("log", crate::daemon::settings::LOG_SETTINGS),
];

/// Every setting, in `--help` order.
pub fn settings() -> impl Iterator<Item = &'static Setting> {
    SECTIONS.iter().flat_map(|(_, s)| s.iter())
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub store: StoreConfig,
    pub kafka: KafkaConfig,
    pub server: ServerConfig,
    pub receive: crate::ingest::receive::ReceiveConfig,
    pub runs: RunsConfig,
    pub query: crate::query::QueryLimits,
    pub sinks: SinksConfig,
    pub log: LogConfig,
    /// Where it came from, for messages.
    pub source: String,
}

impl Config {
    /// The embedded defaults.
    pub fn defaults() -> Config {
        Config::from_text("", "defaults", &BTreeMap::new()).expect("the defaults are valid")
    }

    /// Load `path` (or only the defaults when `None`), then the environment.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let env: BTreeMap<String, String> = std::env::vars()
            .filter(|(k, _)| k.starts_with("COALMINE__"))
            .collect();
        match path {
            None => Config::from_text("", "defaults", &env),
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| ConfigError(vec![format!("cannot read {}: {e}", p.display())]))?;
                Config::from_text(&text, &p.display().to_string(), &env)
            }
        }
    }

    /// Build from TOML text and `COALMINE__…` variables; every problem is reported.
    pub fn from_text(
        text: &str,
        origin: &str,
        env: &BTreeMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let v = crate::settings::load(text, origin, env, SECTIONS)?;
        let store = StoreConfig::from_settings(&v);
        let sinks = SinksConfig::from_settings(&v, &store.data_dir);
        let cfg = Config {
            kafka: KafkaConfig::from_settings(&v),
            server: ServerConfig::from_settings(&v),
            receive: crate::ingest::receive::ReceiveConfig::from_settings(&v),
            runs: RunsConfig::from_settings(&v),
            query: crate::query::QueryLimits::from_settings(&v),
            log: LogConfig::from_settings(&v),
            sinks,
            store,
            source: origin.to_string(),
        };
        let mut problems = cfg.store.validate();
        problems.extend(cfg.kafka.validate());
        problems.extend(cfg.server.validate());
        problems.extend(cfg.receive.validate(&cfg.kafka));
        // across stages
        if let Some(v) = &cfg.sinks.verdicts_topic {
            if cfg.kafka.topics.iter().any(|t| &t.name == v) {
                problems.push("verdicts.topic: is also a consumed topic".into());
            }
        }
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigError(problems))
        }
    }
}

/// Text for `coalmine serve --help`: every setting with its default.
pub fn settings_help() -> String {
    crate::settings::help(settings())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::decode::Format;
    use std::path::PathBuf;
    use std::time::Duration;

    #[test]
    fn defaults_and_overrides() {
        let c = Config::defaults();
        assert_eq!(c.store.flush_interval, Duration::from_secs(1));
        assert_eq!(
            c.kafka.topics,
            vec![TopicConfig {
                name: "metrics".into(),
                format: Format::Json
            }]
        );
        let text = "[store]\ndata-dir = \"/tmp/x\"\nmax-bytes = \"1GiB\"\n[kafka]\ntopics = [{ name = \"a\", format = \"influx\" }, { name = \"b\" }]\nclient = { \"session.timeout.ms\" = 6000 }\n";
        let env: BTreeMap<String, String> =
            [("COALMINE__STORE__FLUSH_INTERVAL".into(), "250ms".into())].into();
        let c = Config::from_text(text, "t.toml", &env).unwrap();
        assert_eq!(c.store.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.store.max_bytes, Some(1 << 30));
        assert_eq!(c.store.flush_interval, Duration::from_millis(250));
        assert_eq!(c.kafka.topics[0].format, Format::Influx);
        assert_eq!(c.kafka.topics[1].format, Format::Json);
        assert_eq!(c.kafka.client["session.timeout.ms"], "6000");
    }

    #[test]
    fn every_problem_with_its_line() {
        let text = "[store]\nflush-interval = \"1x\"\nflush-points = -3\ndata-dri = \"/x\"\n[kafka]\ntopics = [{ name = \"a\", format = \"xml\" }]\n[bogus]\n";
        let env: BTreeMap<String, String> =
            [("COALMINE__STORE__RETENTON".into(), "1d".into())].into();
        let e = Config::from_text(text, "c.toml", &env).unwrap_err();
        let all = e.to_string();
        assert!(
            all.contains("c.toml:2:18: store.flush-interval: \"1x\" is not a duration"),
            "{all}"
        );
        assert!(
            all.contains("c.toml:3:16: store.flush-points: must not be negative"),
            "{all}"
        );
        assert!(
            all.contains(
                "c.toml:4:1: unknown setting `store.data-dri` (did you mean `store.data-dir`?)"
            ),
            "{all}"
        );
        assert!(
            all.contains("kafka.topics: [0].format: unknown format \"xml\""),
            "{all}"
        );
        assert!(all.contains("c.toml:7:2: unknown section `bogus`"), "{all}");
        assert!(all.contains("COALMINE__STORE__RETENTON: unknown setting `store.retenton` (did you mean `store.retention`?)"), "{all}");
        assert_eq!(e.0.len(), 6, "{all}");
        let e = Config::from_text("[store\n", "s.toml", &BTreeMap::new()).unwrap_err();
        assert!(e.0[0].starts_with("s.toml:1:"), "{e}");
    }

    #[test]
    fn cross_field_checks() {
        let e = Config::from_text(
            "[kafka]\ntopics = []\nclient = { \"group.id\" = \"x\" }\n",
            "c",
            &BTreeMap::new(),
        )
        .unwrap_err();
        assert!(e.0.iter().any(|p| p.contains("at least one topic")));
        assert!(e
            .0
            .iter()
            .any(|p| p.contains("\"group.id\" is set by coalmine")));
    }
}
