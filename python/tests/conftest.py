import json
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def r_cases():
    """R's wilcox.test reference cases (tests/r/gen_wilcox_cases.R, R 4.2.2)."""
    return json.loads((ROOT / "tests" / "data" / "r_wilcox_cases.json").read_text())["cases"]


@pytest.fixture(scope="session")
def kayenta_vectors():
    return json.loads((ROOT / "tests" / "data" / "kayenta_vectors.json").read_text())[1:]


@pytest.fixture(scope="session")
def coalmine_bin() -> str:
    """The CLI built from this checkout (COALMINE_BIN, else target/debug/coalmine)."""
    candidates = [os.environ.get("COALMINE_BIN"), str(ROOT / "target" / "debug" / "coalmine"), shutil.which("coalmine")]
    for c in candidates:
        if c and Path(c).exists():
            return c
    pytest.fail("the coalmine binary is not built: run `cargo build` first or set COALMINE_BIN")


@pytest.fixture(scope="session")
def broker() -> str:
    """The Kafka broker that scripts/test.sh starts (COALMINE_TEST_KAFKA). Without one the
    test fails under COALMINE_REQUIRE_KAFKA (the full test command) and is skipped otherwise."""
    addr = os.environ.get("COALMINE_TEST_KAFKA")
    if not addr:
        if os.environ.get("COALMINE_REQUIRE_KAFKA"):
            pytest.fail("COALMINE_TEST_KAFKA is not set (scripts/test.sh starts a broker)")
        pytest.skip("no Kafka broker")
    return addr


@pytest.fixture(scope="session")
def create_topic():
    """``create_topic(addr, name, partitions)``: create a topic with confluent-kafka's admin
    client and wait for it."""

    def create(addr: str, name: str, partitions: int) -> None:
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": addr})  # kept alive until the futures resolve
        futures = admin.create_topics([NewTopic(name, num_partitions=partitions)])
        for f in futures.values():
            f.result(timeout=30)

    return create


@pytest.fixture(scope="session")
def store_stats(coalmine_bin):
    """``store_stats(data_dir)``: ``coalmine store stats`` of a data directory (read-only, safe
    beside a running daemon); no points while it cannot be read yet."""
    import subprocess

    def stats(data_dir):
        out = subprocess.run([coalmine_bin, "store", "stats", "--data-dir", str(data_dir)], capture_output=True, text=True)
        return json.loads(out.stdout) if out.returncode == 0 else {"points": 0, "sum": 0.0}

    return stats


@pytest.fixture
def ticks_during():
    """``ticks_during(work, every)``: call ``work()`` while another Python thread ticks every
    ``every`` seconds; returns the ticks that fell inside the call and the call's seconds. While
    the call holds the GIL, the other thread cannot tick."""

    def run(work, every):
        ticks = []
        done = threading.Event()

        def ticker():
            while not done.is_set():
                ticks.append(time.perf_counter())
                time.sleep(every)

        t = threading.Thread(target=ticker)
        t.start()
        try:
            start = time.perf_counter()
            work()
            end = time.perf_counter()
        finally:
            done.set()
            t.join()
        return len([s for s in ticks if start < s < end]), end - start

    return run


@pytest.fixture
def children():
    """Child processes started by the test; whatever is still alive at teardown is killed,
    so that a failed assertion leaves no nginx, hey or daemon behind."""
    procs = []
    yield procs
    for p in reversed(procs):
        if p.poll() is None:
            p.kill()
        p.wait()
