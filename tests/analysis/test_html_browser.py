"""The HTML report in a real browser: Debian's headless Chromium, driven over its DevTools pipe.

The report is rendered by the real CLI from a real store, opened from a file with the network
blocked, and read back through the DevTools protocol (``--remote-debugging-pipe``: JSON messages
on file descriptors 3 and 4, so no websocket library and no browser-automation dependency). The
page's own console, its uncaught exceptions and the browser's log (CSP refusals, failed loads) are
all collected: a report that logs any error there fails. A screenshot of the whole page is kept in
the test's tmp dir and copied to ``tests/_artifacts/report.png`` (gitignored) for people to look at.

Without chromium the test is skipped on a developer's machine, and fails in CI (``CI`` set):
.ci/run installs Debian's chromium, so a missing browser there is a broken CI, not a reason to skip.
"""

from __future__ import annotations

import base64
import datetime as dt
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from otel_shadow.store import Store

from ..rollout.ramp_data import write_cohorts
from .helpers import lognormal_pairs, report_of, write_pairs

ARTIFACTS = Path(__file__).resolve().parents[1] / "_artifacts"
WIDTH = 1280

# headless Chromium as root, with nothing started that would reach the network on its own
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--mute-audio",
    "--host-resolver-rules=MAP * ~NOTFOUND",
)


def chromium_binary() -> str:
    """Debian's chromium; skipped without it, except in CI where the test is required."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(
            "chromium is not installed but CI is set: .ci/run must install Debian's chromium (apt-get install chromium)"
        )
    pytest.skip("chromium is not installed (apt-get install chromium); required in CI")


def _above_nine(fd: int) -> int:
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


class Browser:
    """One headless Chromium process and one page, over the DevTools protocol on a pipe."""

    def __init__(self, binary: str, profile: Path) -> None:
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # the child's ends are moved above 9 so that 3<& and 4>& cannot overwrite them (bash: dash takes one-digit fds only)
        to_browser_r, from_browser_w = (_above_nine(fd) for fd in (to_browser_r, from_browser_w))
        # the browser reads commands on fd 3 and writes replies and events on fd 4
        command = f'exec "$0" "$@" 3<&{to_browser_r} 4>&{from_browser_w} {to_browser_r}<&- {from_browser_w}>&-'
        # the browser's own log goes to a file: a pipe nobody reads would fill and stall it
        self.log = profile.with_name("chromium.log")
        self._log = self.log.open("wb")
        self.process = subprocess.Popen(
            [
                "bash",
                "-c",
                command,
                binary,
                *FLAGS,
                "--remote-debugging-pipe",
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            pass_fds=(to_browser_r, from_browser_w),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._id = 0
        self.events: list[dict[str, Any]] = []
        try:
            target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime", "Log", "Network"):
                self.send(f"{domain}.enable", session=True)
        except BaseException:
            self.close()
            raise

    def _read(self, deadline: float) -> dict[str, Any] | None:
        """The next message, or None when the deadline passes first."""
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                return None
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                log = self.log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"chromium closed its DevTools pipe (exit {self.process.poll()}); {self.log}: {log}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(
        self, method: str, params: dict[str, Any] | None = None, session: bool = False, timeout: float = 60.0
    ) -> dict[str, Any]:
        self._id += 1
        message: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self._to_browser, data) :]
        deadline = time.monotonic() + timeout
        while (reply := self._read(deadline)) is not None:
            if reply.get("id") != self._id:
                self.events.append(reply)
            elif "error" in reply:
                raise RuntimeError(f"DevTools {method} failed: {reply['error']}")
            else:
                return reply.get("result", {})
        raise TimeoutError(f"DevTools {method}: no reply within {timeout:.0f} s")

    def wait_for(self, event: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == event for e in self.events):
            message = self._read(deadline)
            if message is None:
                raise TimeoutError(f"DevTools: no {event} within {timeout:.0f} s")
            self.events.append(message)

    def open(self, url: str) -> None:
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": WIDTH, "height": 900, "deviceScaleFactor": 1, "mobile": False},
            session=True,
        )
        self.send("Page.navigate", {"url": url}, session=True)
        self.wait_for("Page.loadEventFired")
        self.evaluate("0")  # a round trip: what the page logged while loading has arrived by now

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def errors(self) -> list[str]:
        """Everything the page or the browser reported as an error: console, exceptions, browser log."""
        found = []
        for e in self.events:
            params = e.get("params", {})
            if e.get("method") == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                found.append("uncaught: " + str(details.get("exception", {}).get("description") or details.get("text")))
            elif e.get("method") == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append(
                    "console."
                    + params["type"]
                    + ": "
                    + " ".join(str(a.get("value", a.get("description"))) for a in params.get("args", []))
                )
            elif e.get("method") == "Log.entryAdded" and params["entry"].get("level") == "error":
                found.append(f"{params['entry'].get('source')}: {params['entry'].get('text')}")
        return found

    def requested_urls(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events if e.get("method") == "Network.requestWillBeSent"]

    def screenshot(self) -> bytes:
        """The whole page, not just the window."""
        size = self.send("Page.getLayoutMetrics", session=True)["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": WIDTH, "height": size["height"], "scale": 1}
        shot = self.send(
            "Page.captureScreenshot", {"format": "png", "clip": clip, "captureBeyondViewport": True}, session=True
        )
        return base64.b64decode(shot["data"])

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)
        self._log.close()


@pytest.fixture
def browser(tmp_path: Path) -> Any:
    b = Browser(chromium_binary(), tmp_path / "chromium-profile")
    try:
        yield b
    finally:
        b.close()


def test_the_browser_check_sees_console_errors_and_uncaught_exceptions(tmp_path: Path, browser: Browser) -> None:
    """The harness itself: a page that logs errors is caught, so a quiet report means something."""
    page = tmp_path / "noisy.html"
    page.write_text(
        "<!DOCTYPE html><html><body><p>noisy</p>"
        "<script>console.error('canary-console')</script><script>throw new Error('canary-throw')</script>"
        "</body></html>"
    )
    browser.open(page.as_uri())
    errors = "\n".join(browser.errors())
    assert "canary-console" in errors and "canary-throw" in errors, errors


def test_the_html_report_shows_each_verdict_in_chromium_offline_without_console_errors(
    tmp_path: Path, browser: Browser
) -> None:
    db = tmp_path / "s.duckdb"
    routes = ["/a" if i % 3 else "/b" for i in range(3000)]
    p, c = lognormal_pairs(3000, seed=3)
    write_pairs(db, p, c, experiment="checkout", routes=routes)
    p, c = lognormal_pairs(3000, seed=4, slowdown=1.4)
    write_pairs(db, p, c, experiment="search", routes=routes)
    assert {x.experiment: x.verdict for x in report_of(db).candidates} == {"checkout": "PASS", "search": "FAIL"}
    with Store.open(db) as store:  # and a canary cohort: its own section, after the candidates
        write_cohorts(
            store, "chat", canary=300, primary=300, at=dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc), seed=5
        )

    rendered = subprocess.run(
        [
            sys.executable,
            "-m",
            "otel_shadow",
            "report",
            "--format",
            "html",
            "--db",
            str(db),
            "--segment-by",
            "http.route",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert rendered.returncode == 0, rendered.stderr
    page = tmp_path / "report.html"
    page.write_text(rendered.stdout, encoding="utf-8")

    browser.open(page.as_uri())
    assert browser.errors() == []
    # offline: the only thing the page loaded is itself
    assert browser.requested_urls() == [page.as_uri()]
    # each candidate's heading shows its verdict, in the order of the report, as rendered text
    headings = browser.evaluate("Array.from(document.querySelectorAll('h2:not(#canary)')).map(h => h.innerText)")
    assert [h.split(" · ")[0] for h in headings] == ["checkout", "search"], headings
    assert headings[0].endswith("PASS") and headings[1].endswith("FAIL"), headings
    assert browser.evaluate("document.title") == "otel-shadow report: FAIL"
    # the plots are drawn: every figure has a visible size
    sizes = browser.evaluate(
        "Array.from(document.querySelectorAll('svg')).map(s => { const r = s.getBoundingClientRect(); return [r.width, r.height]; })"
    )
    assert len(sizes) >= 4 and all(w > 100 and h > 50 for w, h in sizes), sizes
    assert "p95 latency" in browser.evaluate("document.body.innerText")
    canary = browser.evaluate("Array.from(document.querySelectorAll('#canary, h3.canary')).map(h => h.innerText)")
    assert canary[0] == "Canary (unpaired)" and canary[1].startswith("chat · canary C vs primary P "), canary
    # the verdict over time: one cell per cut-off, for each candidate
    cells = browser.evaluate(
        "Array.from(document.querySelectorAll('svg[aria-label=\"verdict over time\"]')).map(s => s.querySelectorAll('rect').length)"
    )
    assert cells == [6, 6], cells
    # per segment: each gate's intervals, one row for all pairs and one per route, for each candidate
    segment_rows = browser.evaluate(
        "Array.from(document.querySelectorAll('svg[aria-label=\"latency_p95 per segment\"]')).map(s => s.querySelectorAll('circle').length)"
    )
    assert segment_rows == [3, 3], segment_rows

    png = browser.screenshot()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    shot = tmp_path / "report.png"
    shot.write_bytes(png)
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copyfile(shot, ARTIFACTS / "report.png")
    print(f"screenshot of the HTML report: {ARTIFACTS / 'report.png'} ({len(png):,} bytes)")
