//! `coalmine serve`: the daemon. Wires the store, the Kafka source and (later stages) the
//! scheduler and the HTTP API, and shuts them down in order.

use std::future::Future;
use std::sync::Arc;

use crate::config::Config;
use crate::error::Error;
use crate::ingest::IngestStats;
use crate::store::Store;

/// Run until `shutdown` resolves, then stop polling Kafka, append and flush everything
/// received, commit the durable offsets and return.
pub async fn run(cfg: Config, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    let store = tokio::task::spawn_blocking({
        let sc = cfg.store.clone();
        move || Store::open(sc)
    })
    .await
    .map_err(|e| Error::InvalidInput(format!("store task failed: {e}")))??;
    let stats = Arc::new(IngestStats::default());
    #[cfg(feature = "kafka")]
    let source = {
        let kc = cfg.kafka.clone();
        let (store, stats) = (store.clone(), stats.clone());
        tokio::task::spawn_blocking(move || crate::ingest::kafka::KafkaSource::start(&kc, store, stats))
            .await
            .map_err(|e| Error::InvalidInput(format!("ingest task failed: {e}")))?
            .map_err(|e| Error::Ingest(e.to_string(), e.kind()))?
    };
    let topics: Vec<String> = cfg.kafka.topics.iter().map(|t| format!("{} ({})", t.name, t.format.name())).collect();
    tracing::info!(
        data_dir = %cfg.store.data_dir.display(),
        brokers = %cfg.kafka.bootstrap_servers,
        group = %cfg.kafka.group_id,
        topics = %topics.join(", "),
        "coalmine is running"
    );
    shutdown.await;
    tracing::info!("Shutting down");
    #[cfg(feature = "kafka")]
    tokio::task::spawn_blocking(move || source.shutdown())
        .await
        .map_err(|e| Error::InvalidInput(format!("ingest task failed: {e}")))?
        .map_err(|e| Error::Ingest(e.to_string(), e.kind()))?;
    let s = stats.snapshot();
    let st = store.stats();
    tracing::info!(
        messages = s.messages,
        points = s.points,
        decode_errors = s.decode_errors,
        stored_points = st.segment_points,
        "Stopped cleanly"
    );
    Ok(())
}
