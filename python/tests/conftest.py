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
