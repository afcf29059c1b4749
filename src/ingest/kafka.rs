//! The Kafka source: a consumer-group member that feeds the store and commits offsets only
//! for points the store has made durable.
//!
//! Threads:
//! * **consumer** — polls, copies payloads into a batch arena (one copy per message, no
//!   per-point work), hands batches to the decoder, and commits offsets it is told are
//!   durable. On a partition revocation it drains the decoder, flushes the store and
//!   commits synchronously before giving the partitions up.
//! * **decoder** — decodes batches, skips messages the store already holds (offset below
//!   the durable mark: replays after a crash), appends points, dead-letters bad messages.
//! * **flusher** — flushes the store every `flush-interval` and passes the durable offsets
//!   back for commit.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::decode::{Decoder, Format};
use super::KafkaConfig;
use super::{BurstLog, IngestStats, Intake};
use crate::error::kind::ErrorKind;
use crate::store::manifest::Durable;
use crate::store::segment::{OffsetRange, Offsets, PointColumns};
use crate::store::Store;

/// Errors starting or stopping the Kafka source.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("Kafka client: {0}")]
    Kafka(#[from] KafkaError),
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("{0}")]
    Thread(String),
}

impl IngestError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            IngestError::Kafka(_) => ErrorKind::Unavailable,
            IngestError::Store(e) => e.kind(),
            IngestError::Thread(_) => ErrorKind::Internal,
        }
    }
}

/// Messages copied out of librdkafka: one arena, one small record per message.
#[derive(Default)]
struct MessageBatch {
    data: Vec<u8>,
    msgs: Vec<Msg>,
    started: Option<Instant>,
}

struct Msg {
    topic: u16,
    partition: i32,
    offset: i64,
    ts_ms: Option<i64>,
    start: u32,
    len: u32,
    /// No payload at all (a tombstone).
    null: bool,
}

impl MessageBatch {
    fn payload(&self, m: &Msg) -> &[u8] {
        &self.data[m.start as usize..(m.start + m.len) as usize]
    }
}

enum Work {
    Batch(MessageBatch),
    /// Nothing was waiting at this time (epoch ms): once appended, ingest is caught up to it.
    CaughtUp(i64),
    /// Reply once everything sent before has been appended to the store.
    Barrier(SyncSender<()>),
    /// The partition's log starts again below the store's mark ([`Store::reset_partition`]).
    LogReset {
        topic: u16,
        partition: i32,
        /// Where the new log starts (the first offset consumed from it).
        from: i64,
        /// The broker's high watermark when it was seen.
        high: i64,
    },
}

/// The consumer context: rebalance handling needs the pipeline and the store.
struct Ctx {
    topics: Vec<String>,
    pending: Mutex<MessageBatch>,
    work: SyncSender<Work>,
    store: Store,
    stats: Arc<IngestStats>,
}

impl ClientContext for Ctx {}

impl ConsumerContext for Ctx {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => {
                self.stats.assigned.store(false, Ordering::Release);
                tracing::info!(partitions = %describe(tpl), "Partitions revoked: flushing and committing what is durable");
                if let Err(e) = self.drain() {
                    tracing::error!(error = %e, "Could not drain the decoder before a revocation");
                    return;
                }
                match self.store.flush() {
                    Ok(durable) => {
                        self.stats.flushes.fetch_add(1, Ordering::Relaxed);
                        let revoked: Vec<(String, i32)> = tpl
                            .elements()
                            .iter()
                            .map(|e| (e.topic().to_string(), e.partition()))
                            .collect();
                        commit(
                            consumer,
                            &durable,
                            Some(&revoked),
                            CommitMode::Sync,
                            &self.stats,
                        );
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "Flush before revocation failed; uncommitted messages will be re-read")
                    }
                }
            }
            Rebalance::Assign(tpl) => {
                self.stats
                    .assigned
                    .store(tpl.count() > 0, Ordering::Release);
                tracing::info!(partitions = %describe(tpl), "Partitions assigned")
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "Rebalance error"),
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => self.store.mark_committed(&committed_of(offsets)),
            Err(e) => {
                tracing::warn!(error = %e, "Offset commit failed; it is retried with the next flush")
            }
        }
    }
}

impl Ctx {
    /// Hand the pending batch to the decoder and wait until it has been appended.
    fn drain(&self) -> Result<(), String> {
        let batch = std::mem::take(&mut *self.pending.lock().expect("pending lock"));
        if !batch.msgs.is_empty() {
            self.work
                .send(Work::Batch(batch))
                .map_err(|_| "decoder stopped".to_string())?;
        }
        let (tx, rx) = sync_channel(1);
        self.work
            .send(Work::Barrier(tx))
            .map_err(|_| "decoder stopped".to_string())?;
        rx.recv().map_err(|_| "decoder stopped".to_string())
    }
}

fn describe(tpl: &TopicPartitionList) -> String {
    tpl.elements()
        .iter()
        .map(|e| format!("{}/{}", e.topic(), e.partition()))
        .collect::<Vec<_>>()
        .join(",")
}

/// The offsets of a commit, as the store records them.
fn committed_of(tpl: &TopicPartitionList) -> Durable {
    let mut d = Durable::new();
    for e in tpl.elements() {
        if let Offset::Offset(next) = e.offset() {
            d.entry(e.topic().to_string())
                .or_default()
                .insert(e.partition(), next);
        }
    }
    d
}

/// A producer's settings for the brokers of `cfg`: the consumer's security settings
/// (`security.*`, `sasl.*`, `ssl.*` of `kafka.client`) apply to producers too.
pub fn producer_config(cfg: &KafkaConfig) -> ClientConfig {
    let mut pc = ClientConfig::new();
    pc.set("bootstrap.servers", &cfg.bootstrap_servers);
    for (k, v) in &cfg.client {
        if k.starts_with("security.") || k.starts_with("sasl.") || k.starts_with("ssl.") {
            pc.set(k, v);
        }
    }
    pc
}

/// Commit durable offsets of the assigned (or the given) partitions.
fn commit(
    consumer: &BaseConsumer<Ctx>,
    durable: &Durable,
    only: Option<&[(String, i32)]>,
    mode: CommitMode,
    stats: &IngestStats,
) {
    let partitions: Vec<(String, i32)> = match only {
        Some(p) => p.to_vec(),
        None => match consumer.assignment() {
            Ok(a) => a
                .elements()
                .iter()
                .map(|e| (e.topic().to_string(), e.partition()))
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "Cannot read the assignment; commit skipped");
                return;
            }
        },
    };
    let mut tpl = TopicPartitionList::new();
    for (topic, p) in partitions {
        if let Some(&next) = durable.get(&topic).and_then(|d| d.get(&p)) {
            if let Err(e) = tpl.add_partition_offset(&topic, p, Offset::Offset(next)) {
                tracing::warn!(error = %e, topic, partition = p, "Cannot add an offset to commit");
            }
        }
    }
    if tpl.count() == 0 {
        return;
    }
    match consumer.commit(&tpl, mode) {
        Ok(()) => {
            stats.commits.fetch_add(1, Ordering::Relaxed);
            if matches!(mode, CommitMode::Sync) {
                consumer.context().store.mark_committed(&committed_of(&tpl));
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "Offset commit failed; it is retried with the next flush")
        }
    }
}

/// A running Kafka source.
pub struct KafkaSource {
    stop: Arc<AtomicBool>,
    consumer: Option<JoinHandle<Result<(), IngestError>>>,
    stats: Arc<IngestStats>,
}

impl KafkaSource {
    /// Connect, subscribe and start the threads.
    pub fn start(
        cfg: &KafkaConfig,
        store: Store,
        stats: Arc<IngestStats>,
    ) -> Result<KafkaSource, IngestError> {
        let topics: Vec<String> = cfg.topics.iter().map(|t| t.name.clone()).collect();
        let formats: Vec<Format> = cfg.topics.iter().map(|t| t.format).collect();
        let (work_tx, work_rx) = sync_channel::<Work>(4);
        let (commit_tx, commit_rx) = channel::<Durable>();
        let ctx = Ctx {
            topics: topics.clone(),
            pending: Mutex::new(MessageBatch::default()),
            work: work_tx.clone(),
            store: store.clone(),
            stats: stats.clone(),
        };
        let mut cc = ClientConfig::new();
        cc.set("bootstrap.servers", &cfg.bootstrap_servers)
            .set("group.id", &cfg.group_id)
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "1000")
            // librdkafka pauses a partition's fetches for this long whenever its local queue
            // is over `queued.min.messages`; its 1 s default halved single-point-message
            // throughput (150 k → 300 k msg/s in benches/ingest_e2e.py).
            .set("fetch.queue.backoff.ms", "10");
        for (k, v) in &cfg.client {
            cc.set(k, v);
        }
        // Offsets are committed by coalmine, after the points are durable.
        cc.set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false");
        let consumer: BaseConsumer<Ctx> = cc.create_with_context(ctx)?;
        // Retention must not remove what the group has not committed yet.
        store.guard_uncommitted();
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe(&names)?;
        let dead = DeadLetters::new(cfg, stats.clone())?;
        let stop = Arc::new(AtomicBool::new(false));
        let decoder = {
            let store = store.clone();
            let stats = stats.clone();
            let commit_tx = commit_tx.clone();
            let topics = topics.clone();
            let max = cfg.max_message_bytes;
            std::thread::Builder::new()
                .name("coalmine-decode".into())
                .spawn(move || {
                    decode_loop(work_rx, store, stats, commit_tx, topics, formats, max, dead)
                })
                .map_err(|e| IngestError::Thread(e.to_string()))?
        };
        let flusher = {
            let store = store.clone();
            let stats = stats.clone();
            let stop = stop.clone();
            let interval = store.config().flush_interval;
            std::thread::Builder::new()
                .name("coalmine-flush".into())
                .spawn(move || {
                    let mut last = Instant::now();
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(interval.min(Duration::from_millis(100)));
                        if !stop.load(Ordering::Relaxed) && last.elapsed() >= interval {
                            last = Instant::now();
                            flush_and_commit(&store, &stats, &commit_tx);
                        }
                    }
                })
                .map_err(|e| IngestError::Thread(e.to_string()))?
        };
        let poll_batch = cfg.poll_batch;
        let consumer_thread = {
            let stop = stop.clone();
            let stats = stats.clone();
            std::thread::Builder::new()
                .name("coalmine-consume".into())
                .spawn(move || {
                    consume_loop(
                        consumer, stop, stats, commit_rx, poll_batch, decoder, flusher, store,
                    )
                })
                .map_err(|e| IngestError::Thread(e.to_string()))?
        };
        Ok(KafkaSource {
            stop,
            consumer: Some(consumer_thread),
            stats,
        })
    }

    pub fn stats(&self) -> &Arc<IngestStats> {
        &self.stats
    }

    /// Stop polling, append everything received, flush, commit, leave the group.
    pub fn shutdown(mut self) -> Result<(), IngestError> {
        self.stop.store(true, Ordering::Relaxed);
        match self.consumer.take().map(|h| h.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(IngestError::Thread("the consumer thread panicked".into())),
            None => Ok(()),
        }
    }
}

impl Drop for KafkaSource {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn flush_and_commit(store: &Store, stats: &IngestStats, commit_tx: &Sender<Durable>) {
    match store.flush() {
        Ok(durable) => {
            stats.flushes.fetch_add(1, Ordering::Relaxed);
            let _ = commit_tx.send(durable);
        }
        Err(e) => {
            tracing::error!(error = %e, "Flush failed; points stay buffered and the flush is retried")
        }
    }
}

/// How long the consumer waits to fill a batch before handing it over.
const BATCH_WAIT: Duration = Duration::from_millis(5);

#[allow(clippy::too_many_arguments)]
fn consume_loop(
    consumer: BaseConsumer<Ctx>,
    stop: Arc<AtomicBool>,
    stats: Arc<IngestStats>,
    commits: Receiver<Durable>,
    poll_batch: usize,
    decoder: JoinHandle<()>,
    flusher: JoinHandle<()>,
    store: Store,
) -> Result<(), IngestError> {
    let errors = BurstLog::new(Duration::from_secs(10));
    let ctx = consumer.context();
    let topic_index: HashMap<String, u16> = ctx
        .topics
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u16))
        .collect();
    let mut last_mark = 0i64;
    let mut was_caught_up = false;
    // The last offset consumed per partition: an offset at or below it (or a partition's
    // first message) is checked for a log reset.
    let mut last_offset: HashMap<(u16, i32), i64> = HashMap::new();
    while !stop.load(Ordering::Relaxed) {
        stats
            .heartbeat_ms
            .store(crate::store::now_ms(), Ordering::Relaxed);
        // Commit what the flusher made durable (latest wins).
        if let Some(durable) = commits.try_iter().last() {
            commit(&consumer, &durable, None, CommitMode::Async, &stats);
        }
        match consumer.poll(Duration::from_millis(20)) {
            None => {
                // Caught up: tell the decoder, which marks it once what came before is stored.
                let now = crate::store::now_ms();
                if stats.assigned.load(Ordering::Acquire) && now - last_mark >= 50 {
                    let batch = std::mem::take(&mut *ctx.pending.lock().expect("pending lock"));
                    if !batch.msgs.is_empty() && ctx.work.send(Work::Batch(batch)).is_err() {
                        return Err(IngestError::Thread("the decoder thread stopped".into()));
                    }
                    let up = read_to_high_watermarks(&consumer, &store);
                    if up != was_caught_up {
                        // One line per change of state, not per poll.
                        if up {
                            tracing::info!(
                                "Ingest caught up: every assigned partition is read to its end"
                            );
                        } else {
                            tracing::info!("Ingest is reading a backlog");
                        }
                        was_caught_up = up;
                    }
                    if up && ctx.work.send(Work::CaughtUp(now)).is_err() {
                        return Err(IngestError::Thread("the decoder thread stopped".into()));
                    }
                    last_mark = now;
                }
            }
            Some(Err(e)) => {
                if let Some(suppressed) = errors.admit() {
                    tracing::warn!(error = %e, suppressed, "Kafka consumer error");
                }
            }
            Some(Ok(m)) => {
                let Some(&topic) = topic_index.get(m.topic()) else {
                    continue;
                };
                let (partition, offset) = (m.partition(), m.offset());
                let last = last_offset.insert((topic, partition), offset);
                if last.is_none_or(|l| offset <= l) {
                    if let Some(high) = log_reset(&consumer, &store, m.topic(), partition, offset) {
                        let batch = std::mem::take(&mut *ctx.pending.lock().expect("pending lock"));
                        let reset = Work::LogReset {
                            topic,
                            partition,
                            from: offset,
                            high,
                        };
                        if (!batch.msgs.is_empty() && ctx.work.send(Work::Batch(batch)).is_err())
                            || ctx.work.send(reset).is_err()
                        {
                            return Err(IngestError::Thread("the decoder thread stopped".into()));
                        }
                    }
                }
                let mut b = ctx.pending.lock().expect("pending lock");
                let payload = m.payload();
                let start = b.data.len() as u32;
                if let Some(p) = payload {
                    b.data.extend_from_slice(p);
                }
                b.msgs.push(Msg {
                    topic,
                    partition: m.partition(),
                    offset: m.offset(),
                    ts_ms: m.timestamp().to_millis(),
                    start,
                    len: payload.map_or(0, |p| p.len() as u32),
                    null: payload.is_none(),
                });
                b.started.get_or_insert_with(Instant::now);
            }
        }
        let send = {
            let b = ctx.pending.lock().expect("pending lock");
            b.msgs.len() >= poll_batch || b.started.is_some_and(|s| s.elapsed() >= BATCH_WAIT)
        };
        if send {
            let batch = std::mem::take(&mut *ctx.pending.lock().expect("pending lock"));
            if ctx.work.send(Work::Batch(batch)).is_err() {
                return Err(IngestError::Thread("the decoder thread stopped".into()));
            }
        }
    }
    // Graceful stop: everything polled is appended, made durable and committed.
    tracing::info!("Stopping ingest: draining, flushing and committing");
    let drained = ctx.drain();
    let _ = flusher.join();
    if let Err(e) = drained {
        tracing::error!(error = %e, "Decoder did not drain");
    }
    let result = store.flush();
    if let Ok(durable) = &result {
        stats.flushes.fetch_add(1, Ordering::Relaxed);
        commit(&consumer, durable, None, CommitMode::Sync, &stats);
    }
    consumer.unsubscribe();
    // Dropping the consumer closes it (leaving the group); the decoder ends when its
    // channel closes with it.
    drop(consumer);
    let _ = decoder.join();
    result.map(|_| ()).map_err(IngestError::from)
}

/// Whether every assigned partition has been read up to its high watermark (as of the
/// broker's last fetch response). An empty poll alone only says nothing is queued locally at
/// this instant: after a restart, one partition can still be catching up while another is
/// idle, and a run judged then would miss that partition's points.
///
/// A partition nothing was consumed from since its assignment has no position yet; it is
/// caught up when the store already holds everything before its high watermark (an idle
/// partition after a restart: the group resumes where the store's durable offset is), or
/// when it is empty.
fn read_to_high_watermarks<C: ConsumerContext>(consumer: &BaseConsumer<C>, store: &Store) -> bool {
    let Ok(positions) = consumer.position() else {
        return false;
    };
    positions.elements().iter().all(|e| {
        let Some((low, high)) = cached_watermarks(consumer, e.topic(), e.partition()) else {
            return false;
        };
        if high < 0 {
            return false; // no fetch response yet
        }
        match e.offset() {
            Offset::Offset(next) => next >= high,
            _ => {
                high <= low
                    || store
                        .durable_offset(e.topic(), e.partition())
                        .is_some_and(|next| next >= high)
            }
        }
    })
}

/// Whether a message at `offset` comes from a log that started again: the store holds the
/// partition up to a mark beyond the broker's whole log (its high watermark), so the offset
/// cannot be a replay of a message already stored. Returns that high watermark.
fn log_reset<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    store: &Store,
    topic: &str,
    partition: i32,
    offset: i64,
) -> Option<i64> {
    let mark = store.durable_offset(topic, partition)?;
    let (_, high) = cached_watermarks(consumer, topic, partition)?;
    (offset < mark && high >= 0 && high < mark).then_some(high)
}

/// A partition's `(low, high)` watermarks as the last fetch response reported them (no
/// network round trip; `rd_kafka_get_watermark_offsets`, which rust-rdkafka does not wrap).
fn cached_watermarks<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partition: i32,
) -> Option<(i64, i64)> {
    let topic = std::ffi::CString::new(topic).ok()?;
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the client pointer is valid for the consumer's lifetime; the topic is a
    // NUL-terminated string that outlives the call; low/high are valid out-pointers.
    let err = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (err == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR)
        .then_some((low, high))
}

#[allow(clippy::too_many_arguments)]
fn decode_loop(
    work: Receiver<Work>,
    store: Store,
    stats: Arc<IngestStats>,
    commit_tx: Sender<Durable>,
    topics: Vec<String>,
    formats: Vec<Format>,
    max_message_bytes: usize,
    dead: Option<DeadLetters>,
) {
    let mut decoders: Vec<Decoder> = formats
        .iter()
        .map(|&f| Decoder::new(f, max_message_bytes).with_limits(store.config().series_limits))
        .collect();
    let mut points = PointColumns::default();
    let mut offsets = Offsets::new();
    let errors = BurstLog::new(Duration::from_secs(10));
    let refusals = BurstLog::new(Duration::from_secs(10));
    let intake = Intake::new(store.config());
    let flush_points = store.config().flush_points;
    while let Ok(w) = work.recv() {
        let batch = match w {
            Work::Barrier(reply) => {
                let _ = reply.send(());
                continue;
            }
            Work::LogReset {
                topic,
                partition,
                from,
                high,
            } => {
                let name = &topics[topic as usize];
                match store.reset_partition(name, partition, from) {
                    Ok(mark) => {
                        tracing::warn!(topic = %name, partition, stored_up_to = ?mark, broker_high_watermark = high, from,
                        "The partition's log starts again below what the store holds (topic recreated, or the broker lost its log): reading the new log from its start")
                    }
                    Err(e) => tracing::error!(topic = %name, partition, error = %e,
                        "A log reset could not be recorded: the new log's first messages are skipped as replays"),
                }
                continue;
            }
            Work::CaughtUp(t) => {
                stats.caught_up.advance(t);
                if let Some(d) = &dead {
                    d.producer.poll(Duration::ZERO); // delivery reports
                }
                continue;
            }
            Work::Batch(b) => b,
        };
        let mut durable: HashMap<(u16, i32), Option<i64>> = HashMap::new();
        let now = crate::store::now_ms();
        {
            let mut reg = store.registry_mut();
            for m in &batch.msgs {
                let topic = &topics[m.topic as usize];
                let mark = *durable
                    .entry((m.topic, m.partition))
                    .or_insert_with(|| store.durable_offset(topic, m.partition));
                if mark.is_some_and(|next| m.offset < next) {
                    stats.duplicates_skipped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                stats.messages.fetch_add(1, Ordering::Relaxed);
                let before = points.len();
                let result = if m.null {
                    Err(super::decode::DecodeError {
                        reason: "message has no payload".into(),
                    })
                } else {
                    decoders[m.topic as usize].decode(
                        batch.payload(m),
                        m.ts_ms,
                        &mut reg,
                        &mut points,
                    )
                };
                let refused = result.as_ref().ok().and_then(|_| {
                    let (i, why, reason) = intake.check(now, &points.ts[before..])?;
                    let metric = reg
                        .key(points.series[before + i])
                        .map_or_else(String::new, |k| format!("metric '{}': ", k.metric));
                    Some((why, format!("{metric}{reason}")))
                });
                match (result, refused) {
                    (Ok(n), Some((why, reason))) => {
                        points.truncate(before);
                        stats.refused_messages[why as usize].fetch_add(1, Ordering::Relaxed);
                        stats.refused_points[why as usize].fetch_add(n as u64, Ordering::Relaxed);
                        if let Some(suppressed) = refusals.admit() {
                            tracing::warn!(topic, partition = m.partition, offset = m.offset, points = n, %reason, suppressed,
                                "Message refused: the store would not keep its points{}", if dead.is_some() { "; sent to the dead-letter topic" } else { "" });
                        }
                        if let Some(d) = &dead {
                            d.send(topic, m, batch.payload(m), why.label(), &reason);
                        }
                    }
                    (Ok(n), None) => {
                        stats.points.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    (Err(e), _) => {
                        stats.decode_errors.fetch_add(1, Ordering::Relaxed);
                        if let Some(suppressed) = errors.admit() {
                            tracing::warn!(topic, partition = m.partition, offset = m.offset, reason = %e.reason, suppressed,
                                "Undecodable message{}", if dead.is_some() { " sent to the dead-letter topic" } else { " skipped" });
                        }
                        if let Some(d) = &dead {
                            d.send(topic, m, batch.payload(m), "undecodable", &e.reason);
                        }
                    }
                }
                let r = offsets
                    .entry(topic.clone())
                    .or_default()
                    .entry(m.partition)
                    .or_insert(OffsetRange {
                        first: m.offset,
                        next: m.offset + 1,
                    });
                r.first = r.first.min(m.offset);
                r.next = r.next.max(m.offset + 1);
            }
        }
        let buffered = store.append(&points, &offsets);
        points.clear();
        offsets.clear();
        if buffered >= flush_points {
            flush_and_commit(&store, &stats, &commit_tx);
        }
        if let Some(d) = &dead {
            d.producer.poll(Duration::ZERO);
        }
    }
    if let Some(d) = dead {
        if let Err(e) = d.producer.flush(Duration::from_secs(10)) {
            tracing::warn!(error = %e, "Dead-letter messages may not all have been delivered");
        }
    }
}

/// Where bad messages go: every one is sent, whatever its size (a payload beyond
/// `kafka.dead-letter-max-bytes` is cut, the headers describe the whole message), and a
/// send the broker refuses is logged and counted, not dropped silently.
struct DeadLetters {
    producer: BaseProducer<DeliveryLog>,
    topic: String,
    max_bytes: usize,
}

/// The dead-letter producer's context: counts deliveries and failures.
struct DeliveryLog {
    stats: Arc<IngestStats>,
    failures: BurstLog,
}

impl ClientContext for DeliveryLog {}

impl rdkafka::producer::ProducerContext for DeliveryLog {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &rdkafka::message::DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, m)) => {
                self.stats
                    .dead_letter_failures
                    .fetch_add(1, Ordering::Relaxed);
                if let Some(suppressed) = self.failures.admit() {
                    tracing::error!(error = %e, topic = m.topic(), bytes = m.payload_len(), suppressed,
                        "A dead letter was not delivered (the message is still in its source topic at the offset in the log above)");
                }
            }
        }
    }
}

/// A reason header longer than this is cut (it names a point, not a payload).
const MAX_REASON_BYTES: usize = 2048;

impl DeadLetters {
    fn new(cfg: &KafkaConfig, stats: Arc<IngestStats>) -> Result<Option<Self>, IngestError> {
        let Some(topic) = cfg.dead_letter_topic.clone() else {
            return Ok(None);
        };
        let producer = producer_config(cfg).create_with_context(DeliveryLog {
            stats,
            failures: BurstLog::new(Duration::from_secs(10)),
        })?;
        Ok(Some(DeadLetters {
            producer,
            topic,
            max_bytes: cfg.dead_letter_max_bytes,
        }))
    }

    fn send(&self, source: &str, m: &Msg, payload: &[u8], kind: &str, reason: &str) {
        let partition = m.partition.to_string();
        let offset = m.offset.to_string();
        let size = payload.len().to_string();
        let crc = format!("{:08x}", crc32fast::hash(payload));
        let cut = payload.len() > self.max_bytes;
        let reason = truncate_str(reason, MAX_REASON_BYTES);
        let mut headers = OwnedHeaders::new();
        for (key, value) in [
            ("coalmine-source-topic", source),
            ("coalmine-source-partition", &partition),
            ("coalmine-source-offset", &offset),
            ("coalmine-error-kind", kind),
            ("coalmine-error", reason),
            ("coalmine-original-bytes", &size),
            ("coalmine-original-crc32", &crc),
        ] {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
        if cut {
            headers = headers.insert(Header {
                key: "coalmine-truncated",
                value: Some("true"),
            });
        }
        let body = &payload[..payload.len().min(self.max_bytes)];
        let mut record: BaseRecord<'_, [u8], [u8], ()> =
            BaseRecord::to(&self.topic).payload(body).headers(headers);
        for _ in 0..100 {
            match self.producer.send(record) {
                Ok(()) => return,
                Err((
                    KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                    r,
                )) => {
                    self.producer.poll(Duration::from_millis(10));
                    record = r;
                }
                Err((e, _)) => {
                    self.producer
                        .context()
                        .stats
                        .dead_letter_failures
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, topic = source, partition = m.partition, offset = m.offset,
                        "Cannot send to the dead-letter topic (the message is still in its source topic)");
                    return;
                }
            }
        }
        tracing::error!("Dead-letter queue full for a second; message not dead-lettered");
    }
}

/// `s` cut to at most `max` bytes, at a character boundary.
fn truncate_str(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
