"""The pieces of the daemon tests: `coalmine serve` as a child process with its HTTP API,
and waiting on a condition with a deadline."""

import json
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request


def wait_for(what, condition, timeout, check=lambda: None, interval=0.1, report=lambda: ""):
    """Poll `condition` until it returns something truthy (returned); `check` may raise to
    give up early (a child process died); `report` says more when the time is up."""
    deadline = time.monotonic() + timeout
    while True:
        check()
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{report()}")
        time.sleep(interval)


def stop(proc, sig=signal.SIGTERM, timeout=10):
    if proc.poll() is None:
        proc.send_signal(sig)
    return proc.wait(timeout=timeout)


class Daemon:
    """`coalmine serve` as a child process, and its HTTP API."""

    def __init__(self, coalmine_bin, tmp_path, broker, topic, children, server=""):
        """`server`: more `[server]` settings (TOML lines)."""
        self.log = tmp_path / "serve.log"
        cfg = tmp_path / "coalmine.toml"
        cfg.write_text(
            f'[store]\ndata-dir = "{tmp_path / "data"}"\nflush-interval = "200ms"\n'
            f'[kafka]\nbootstrap-servers = "{broker}"\ngroup-id = "{topic}"\n'
            f'topics = [{{ name = "{topic}", format = "json" }}]\n'
            f'[server]\nlisten = "127.0.0.1:0"\n{server}'
        )
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [coalmine_bin, "serve", "--config", str(cfg)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )
        children.append(self.proc)
        # the API listens on a port of the OS's choosing, logged at start-up
        match = wait_for("the daemon's API address in its log",
                         lambda: re.search(r"api=(http://127\.0\.0\.1:\d+)", self.log.read_text()),
                         30, self.check)
        self.url = match.group(1)

    def check(self):
        assert self.proc.poll() is None, f"coalmine serve exited with {self.proc.returncode}:\n{self.tail()}"

    def tail(self, lines=40):
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def request(self, method, path, body=None):
        """(HTTP status, body parsed as JSON, or text for non-JSON responses)."""
        req = urllib.request.Request(
            self.url + path, method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                status, raw, ctype = resp.status, resp.read(), resp.headers.get("Content-Type", "")
        except urllib.error.HTTPError as e:
            with e:
                status, raw, ctype = e.code, e.read(), e.headers.get("Content-Type", "")
        return status, json.loads(raw) if "json" in ctype else raw.decode()

    def metric(self, name):
        """A counter or gauge from GET /metrics."""
        _, text = self.request("GET", "/metrics")
        m = re.search(rf"^coalmine_{name} (\S+)$", text, re.M)
        assert m, f"coalmine_{name} not in /metrics:\n{text}"
        return float(m.group(1))
