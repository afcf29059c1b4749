//! `coalmine serve`: the daemon. Wires the store, the query engine, canary configs and
//! runs, the Kafka source, the verdict publisher and the HTTP API, and stops them in order:
//! stop polling Kafka → flush into the store → commit durable offsets → let judgments in
//! flight finish → stop HTTP.

pub mod settings;

use std::future::Future;
use std::net::SocketAddr;
#[cfg(feature = "server")]
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use tokio::sync::watch;

use crate::canary::ConfigStore;
use crate::config::Config;
use crate::error::Error;
use crate::ingest::IngestStats;
use crate::query::Engine;
use crate::runs::{RunListener, RunManager};
use crate::store::Store;

/// A running daemon.
pub struct Daemon {
    pub store: Store,
    pub runs: RunManager,
    pub configs: Arc<ConfigStore>,
    pub ingest: Arc<IngestStats>,
    /// Where the HTTP API listens.
    pub addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    sinks: Arc<crate::sinks::Dispatcher>,
    #[cfg(feature = "kafka")]
    source: Option<crate::ingest::kafka::KafkaSource>,
}

impl Daemon {
    /// Open the store, start ingest, the scheduler and the HTTP API. `extra` listeners are
    /// told about judgments too (the demo's live table, the archive).
    pub async fn start(cfg: Config, extra: Vec<Arc<dyn RunListener>>) -> Result<Daemon, Error> {
        let store = tokio::task::spawn_blocking({
            let sc = cfg.store.clone();
            move || Store::open(sc)
        })
        .await??;
        let engine = Engine::with_limits(store.clone(), cfg.query)
            .map_err(|e| Error::io("cannot start the query threads".to_string(), e))?;
        let configs = Arc::new(ConfigStore::open(&cfg.store.data_dir)?);
        // The sinks, then the caller's listeners (told last: when the demo hears a run has
        // finished, the archive has it), all on the sinks' own thread.
        let mut sinks: Vec<Arc<dyn RunListener>> = Vec::new();
        if let Some(dir) = &cfg.sinks.archive_dir {
            sinks.push(Arc::new(crate::sinks::archive::ArchiveWriter::open(dir)?));
        }
        #[cfg(feature = "kafka")]
        if let Some(topic) = &cfg.sinks.verdicts_topic {
            let v = crate::sinks::kafka::KafkaVerdicts::new(
                &cfg.kafka,
                topic,
                cfg.server.public_url.clone(),
            )
            .map_err(crate::sinks::SinkError::from)?;
            sinks.push(Arc::new(v));
        }
        sinks.extend(extra);
        let dispatcher = crate::sinks::Dispatcher::start(sinks)?;
        #[cfg(feature = "server")]
        let (listener, addr) = crate::api::bind(&cfg.server.listen)
            .await
            .map_err(|e| Error::io(format!("cannot listen on {}", cfg.server.listen), e))?;
        let ingest = Arc::new(IngestStats::default());
        let readiness = if cfg!(feature = "kafka") {
            Some(ingest.caught_up.clone())
        } else {
            None
        };
        let runs = RunManager::open(
            engine.clone(),
            configs.clone(),
            &cfg.store.data_dir,
            &cfg.runs,
            vec![dispatcher.clone() as Arc<dyn RunListener>],
            readiness,
        )?;
        #[cfg(feature = "kafka")]
        let source = {
            let kc = cfg.kafka.clone();
            let (st, stats) = (store.clone(), ingest.clone());
            Some(
                tokio::task::spawn_blocking(move || {
                    crate::ingest::kafka::KafkaSource::start(&kc, st, stats)
                })
                .await??,
            )
        };
        let (stop, stop_rx) = watch::channel(false);
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        #[cfg_attr(not(feature = "server"), allow(unused_mut))]
        let mut tasks = vec![tokio::spawn(
            runs.clone().schedule(stopped(stop_rx.clone())),
        )];
        #[cfg(feature = "server")]
        let addr = {
            let state = crate::api::AppState {
                engine,
                configs: configs.clone(),
                runs: runs.clone(),
                ingest: ingest.clone(),
                token: cfg.server.token.as_deref().map(Arc::from),
                judge_requests: Arc::new(AtomicU64::new(0)),
                limits: Arc::new(crate::api::JudgeLimits::new(cfg.server.limits)),
                public_url: cfg.server.public_url.as_deref().map(Arc::from),
                run_metrics_ttl: cfg.server.run_metrics_ttl,
                #[cfg(feature = "kafka")]
                receiver: crate::ingest::receive::Receiver::new(
                    &cfg.receive,
                    &cfg.kafka,
                    cfg.store.series_limits,
                )
                .map_err(crate::sinks::SinkError::from)?
                .map(Arc::new),
            };
            let shutdown = stopped(stop_rx.clone());
            tasks.push(tokio::spawn(async move {
                if let Err(e) = crate::api::serve(listener, state, shutdown).await {
                    tracing::error!(error = %e, "HTTP server failed");
                }
            }));
            Some(addr)
        };
        #[cfg(not(feature = "server"))]
        let addr = None;
        let topics: Vec<String> = cfg
            .kafka
            .topics
            .iter()
            .map(|t| format!("{} ({})", t.name, t.format.name()))
            .collect();
        tracing::info!(
            data_dir = %cfg.store.data_dir.display(),
            brokers = %cfg.kafka.bootstrap_servers,
            group = %cfg.kafka.group_id,
            topics = %topics.join(", "),
            api = %addr.map(|a| format!("http://{a}")).unwrap_or_default(),
            "coalmine is running"
        );
        Ok(Daemon {
            store,
            runs,
            configs,
            ingest,
            addr,
            stop,
            tasks,
            sinks: dispatcher,
            #[cfg(feature = "kafka")]
            source,
        })
    }

    /// Stop in order; returns when everything accepted is durable and committed.
    pub async fn shutdown(mut self) -> Result<(), Error> {
        tracing::info!("Shutting down");
        #[cfg(feature = "kafka")]
        if let Some(source) = self.source.take() {
            tokio::task::spawn_blocking(move || source.shutdown()).await??;
        }
        let _ = self.stop.send(true);
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        // every judgment made reaches the archive and the verdict topic
        let sinks = self.sinks.clone();
        tokio::task::spawn_blocking(move || sinks.close()).await?;
        let s = self.ingest.snapshot();
        let st = self.store.stats();
        tracing::info!(
            messages = s.messages,
            points = s.points,
            decode_errors = s.decode_errors,
            stored_points = st.segment_points,
            "Stopped cleanly"
        );
        Ok(())
    }
}

/// Run until `shutdown` resolves, then stop in order.
pub async fn run(cfg: Config, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    let d = Daemon::start(cfg, Vec::new()).await?;
    shutdown.await;
    d.shutdown().await
}
