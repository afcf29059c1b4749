//! Helpers for tests against a real Kafka-protocol broker (Tansu, started by
//! `scripts/test.sh`; its address is in `COALMINE_TEST_KAFKA`) and a real `coalmine serve`
//! child process.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use coalmine::store::Store;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

/// The broker's address (`COALMINE_TEST_KAFKA`). The tests that need it are `#[ignore]`d
/// with that reason, so a plain `cargo test` lists them as ignored, visibly;
/// `scripts/test.sh` starts a broker and runs them with `--include-ignored`. Run without a
/// broker, they fail here instead of passing without testing anything.
pub fn broker() -> String {
    match std::env::var("COALMINE_TEST_KAFKA") {
        Ok(a) if !a.is_empty() => a,
        _ => panic!(
            "COALMINE_TEST_KAFKA is not set: this test needs a Kafka broker (scripts/test.sh starts one and sets it)"
        ),
    }
}

/// A whole second an hour ago: test points must lie inside the store's retention (7 days by
/// default) on whatever day the tests run, so they are placed relative to now.
pub fn recent_ms() -> i64 {
    (coalmine::store::now_ms() - 3_600_000).div_euclid(1000) * 1000
}

/// `ms` as RFC 3339 text (`2026-11-21T23:00:00.123Z`).
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// A name unique to this test process and call (Tansu: one topic/group per test).
pub fn unique(prefix: &str) -> String {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    format!("{prefix}-{}-{t}-{n}", std::process::id())
}

pub fn create_topic(addr: &str, name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .create()
        .expect("admin client");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    let res = rt
        .block_on(admin.create_topics([&topic], &AdminOptions::new()))
        .expect("create_topics");
    for r in res {
        r.unwrap_or_else(|(t, e)| panic!("cannot create topic {t}: {e}"));
    }
}

/// A new topic of `partitions` partitions, named from `prefix` (unique to this call).
pub fn new_topic(addr: &str, prefix: &str, partitions: i32) -> String {
    let topic = unique(prefix);
    create_topic(addr, &topic, partitions);
    topic
}

pub fn producer(addr: &str) -> ThreadedProducer<DefaultProducerContext> {
    ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("producer")
}

/// Send and wait until everything is acknowledged.
pub fn produce_all(
    p: &ThreadedProducer<DefaultProducerContext>,
    topic: &str,
    messages: &[(Option<String>, Vec<u8>)],
) {
    for (key, payload) in messages {
        let mut rec: BaseRecord<'_, str, [u8]> = BaseRecord::to(topic).payload(payload);
        if let Some(k) = key {
            rec = rec.key(k.as_str());
        }
        let mut rec = rec;
        loop {
            match p.send(rec) {
                Ok(()) => break,
                Err((_, r)) => {
                    rec = r;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }
    p.flush(Duration::from_secs(60)).expect("produce flush");
}

/// A message read back: key, payload, headers.
pub struct Consumed {
    pub key: String,
    pub payload: Vec<u8>,
    pub headers: BTreeMap<String, String>,
}

/// Up to `n` messages of `topic` from its beginning (waiting up to a minute).
pub fn consume(addr: &str, topic: &str, n: usize) -> Vec<Consumed> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{Headers, Message};
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("group.id", unique("reader"))
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .create()
        .unwrap();
    c.subscribe(&[topic]).unwrap();
    let mut out = Vec::new();
    let start = Instant::now();
    while out.len() < n && start.elapsed() < Duration::from_secs(60) {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            out.push(Consumed {
                key: text(m.key().unwrap_or_default()),
                payload: m.payload().unwrap_or_default().to_vec(),
                headers: m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|x| (x.key.to_string(), text(x.value.unwrap_or_default())))
                            .collect()
                    })
                    .unwrap_or_default(),
            });
        }
    }
    out
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let p = std::env::temp_dir().join(unique(prefix));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A `coalmine serve` child process.
pub struct Daemon {
    pub child: Child,
    /// Log bytes written by earlier lives of this daemon.
    log_offset: usize,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    config: PathBuf,
    /// A directory the daemon owns (removed after the daemon is stopped).
    owned_dir: Option<TempDir>,
}

impl Daemon {
    /// A daemon in a new temporary directory, consuming a new JSON topic of `partitions`
    /// partitions on the test broker (`extra` as in [`Daemon::start`]); returns it with the
    /// broker's address and the topic.
    pub fn on_new_topic(name: &str, partitions: i32, extra: &str) -> (Daemon, String, String) {
        let addr = broker();
        let dir = TempDir::new(name);
        let topic = new_topic(&addr, name, partitions);
        let mut d = Daemon::on_topic(&dir.0, &addr, &topic, extra);
        d.owned_dir = Some(dir);
        (d, addr, topic)
    }

    /// Write a config (`extra` is appended verbatim) and start the daemon.
    pub fn start(
        dir: &Path,
        name: &str,
        addr: &str,
        group: &str,
        topics: &[(&str, &str)],
        extra: &str,
    ) -> Daemon {
        Self::start_with_store(dir, name, addr, group, topics, "", extra)
    }

    /// A daemon named `d` in `dir`, consuming the JSON topic `topic` in a new group.
    pub fn on_topic(dir: &Path, addr: &str, topic: &str, extra: &str) -> Daemon {
        Self::start(dir, "d", addr, &unique("g"), &[(topic, "json")], extra)
    }

    /// [`Daemon::start`] with more `[store]` settings (`store_extra`, verbatim).
    pub fn start_with_store(
        dir: &Path,
        name: &str,
        addr: &str,
        group: &str,
        topics: &[(&str, &str)],
        store_extra: &str,
        extra: &str,
    ) -> Daemon {
        let data_dir = dir.join(format!("{name}-data"));
        let topics: Vec<String> = topics
            .iter()
            .map(|(t, f)| format!("{{ name = \"{t}\", format = \"{f}\" }}"))
            .collect();
        let config = dir.join(format!("{name}.toml"));
        // parallel tests: never the default port
        let server = if extra.contains("[server]") {
            ""
        } else {
            "\n[server]\nlisten = \"127.0.0.1:0\"\n"
        };
        std::fs::write(
            &config,
            format!(
                "[store]\ndata-dir = \"{}\"\nflush-interval = \"200ms\"\n{store_extra}\n\n[kafka]\nbootstrap-servers = \"{addr}\"\ngroup-id = \"{group}\"\ntopics = [{}]\n{extra}\n{server}",
                data_dir.display(),
                topics.join(", ")
            ),
        )
        .unwrap();
        let log = dir.join(format!("{name}.log"));
        let mut d = Daemon {
            child: spawn(&config, &log),
            log_offset: 0,
            data_dir,
            log,
            config,
            owned_dir: None,
        };
        d.wait_for_log("coalmine is running", Duration::from_secs(30));
        d
    }

    /// Start the same daemon again (after a crash).
    pub fn restart(&mut self) {
        self.log_offset = std::fs::metadata(&self.log).map_or(0, |m| m.len() as usize);
        self.child = spawn(&self.config, &self.log);
    }

    /// The daemon's exit status, if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// The log of the current life only.
    fn current_log(&self) -> String {
        let all = self.log_text();
        all.get(self.log_offset.min(all.len())..)
            .unwrap_or("")
            .to_string()
    }

    /// The HTTP API's address, from the start-up log line.
    pub fn api(&mut self) -> String {
        self.wait_for_log("api=http://", Duration::from_secs(30));
        let log = self.current_log();
        let line = log
            .lines()
            .rev()
            .find(|l| l.contains("api=http://"))
            .unwrap();
        let a = line.split("api=http://").nth(1).unwrap();
        a.split_whitespace().next().unwrap().to_string()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) {
        self.wait_for_log_count(needle, 1, timeout)
    }

    /// Wait until the current life's log holds `needle` at least `n` times.
    pub fn wait_for_log_count(&mut self, needle: &str, n: usize, timeout: Duration) {
        let start = Instant::now();
        while self.current_log().matches(needle).count() < n {
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!(
                    "daemon exited ({st}) before logging {needle:?}:\n{}",
                    self.log_text()
                );
            }
            assert!(
                start.elapsed() < timeout,
                "no {needle:?} after {timeout:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Durable points and their sum, read from the data directory.
    pub fn durable(&self) -> (u64, f64) {
        match Store::open_read_only(&self.data_dir) {
            Ok(s) => s.count_and_sum().expect("read store"),
            Err(_) => (0, 0.0),
        }
    }

    pub fn durable_offsets(&self) -> BTreeMap<String, BTreeMap<i32, i64>> {
        Store::open_read_only(&self.data_dir)
            .map(|s| s.durable_offsets())
            .unwrap_or_default()
    }

    /// Wait until the durable point count reaches `n` (panics on timeout or exit).
    pub fn wait_for_points(&mut self, n: u64, timeout: Duration) -> (u64, f64) {
        let start = Instant::now();
        loop {
            let got = self.durable();
            if got.0 >= n {
                return got;
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!(
                    "daemon exited ({st}) at {} of {n} points:\n{}",
                    got.0,
                    self.log_text()
                );
            }
            assert!(
                start.elapsed() < timeout,
                "only {} of {n} points after {timeout:?}:\n{}",
                got.0,
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn kill9(&mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }

    /// SIGTERM and wait for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        // SAFETY: sending a signal to our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let start = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "daemon did not stop after SIGTERM:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(config: &Path, log: &Path) -> Child {
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_coalmine"))
        .args(["serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .spawn()
        .expect("coalmine serve starts")
}
