"""Headless Chromium driven through the DevTools protocol over a pipe (``--remote-debugging-pipe``): no port,
no websocket, no client library. Enough to open a page from disk, run JavaScript in it, click, read what the
console and the network saw, and take a screenshot.

Chromium reads commands from its fd 3 and writes replies and events to its fd 4, one JSON message each,
ended by a NUL byte.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

EXECUTABLE = "chromium"
SKIP_REASON = "headless Chromium is not installed (Debian: apt-get install chromium; .ci/run installs it)"


def available() -> bool:
    return shutil.which(EXECUTABLE) is not None


class BrowserError(RuntimeError):
    """A DevTools command failed, or the browser did not answer in time."""


class Chromium:
    """A headless Chromium process; use as a context manager."""

    def __init__(self, timeout: float = 60.0, width: int = 1280, height: int = 1600) -> None:
        self.timeout = timeout
        self.size = (width, height)
        self.events: list[dict[str, Any]] = []
        self._next = 0
        self._buffer = b""

    def __enter__(self) -> Chromium:
        self._profile = tempfile.TemporaryDirectory(prefix="dfzoo-chromium-")
        to_browser_read, self._write_fd = os.pipe()
        self._read_fd, from_browser_write = os.pipe()

        def child_fds() -> None:  # runs in the child: the pipe ends become its fds 3 and 4
            os.dup2(to_browser_read, 3)
            os.dup2(from_browser_write, 4)

        self.process = subprocess.Popen(
            [
                EXECUTABLE,
                "--headless",
                "--disable-gpu",
                "--no-sandbox",
                "--no-first-run",
                "--remote-debugging-pipe",
                f"--user-data-dir={self._profile.name}",
                f"--window-size={self.size[0]},{self.size[1]}",
            ],
            pass_fds=(3, 4),
            preexec_fn=child_fds,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser_read)
        os.close(from_browser_write)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._write({"id": self._id(), "method": "Browser.close", "params": {}})
            self.process.wait(timeout=10)
        except (OSError, BrowserError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()
        finally:
            os.close(self._write_fd)
            os.close(self._read_fd)
            self._profile.cleanup()

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        """Run one DevTools command and return its result (events that arrive meanwhile go to ``events``)."""
        message_id = self._id()
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self._write(message)
        while True:
            reply = self._read()
            if reply.get("id") == message_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, session: str | None = None) -> dict[str, Any]:
        """The first event ``method`` (of ``session``), waiting for it if it has not arrived."""
        for event in self.events:
            if event.get("method") == method and (session is None or event.get("sessionId") == session):
                return event
        while True:
            event = self._read()
            self.events.append(event)
            if event.get("method") == method and (session is None or event.get("sessionId") == session):
                return event

    def open(self, url: str) -> Tab:
        """A new tab showing ``url``, loaded (its load event fired), with console, log and network recorded."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable", session=session)
        self.send("Page.navigate", {"url": url}, session=session)
        self.wait_for("Page.loadEventFired", session)
        return Tab(self, session)

    def _id(self) -> int:
        self._next += 1
        return self._next

    def _write(self, message: dict[str, Any]) -> None:
        os.write(self._write_fd, json.dumps(message).encode() + b"\0")

    def _read(self) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._read_fd], [], [], left)[0]:
                raise BrowserError(f"no answer from Chromium within {self.timeout:.0f} s")
            chunk = os.read(self._read_fd, 1 << 16)
            if not chunk:
                raise BrowserError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)


class Tab:
    """One page of a :class:`Chromium`."""

    def __init__(self, browser: Chromium, session: str) -> None:
        self.browser = browser
        self.session = session

    def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression (an exception in the page raises :class:`BrowserError`)."""
        result = self.browser.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=self.session
        )
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression!r} raised: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path, max_height: int = 12000) -> Path:
        """A PNG of the whole page (up to ``max_height`` pixels tall)."""
        metrics = self.browser.send("Page.getLayoutMetrics", session=self.session)
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        width, height = int(size["width"]), min(int(size["height"]), max_height)
        clip = {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}
        shot = self.browser.send(
            "Page.captureScreenshot",
            {"format": "png", "clip": clip, "captureBeyondViewport": True},
            session=self.session,
        )
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def _events(self, method: str) -> list[dict[str, Any]]:
        return [
            e["params"] for e in self.browser.events if e.get("method") == method and e.get("sessionId") == self.session
        ]

    def errors(self) -> list[str]:
        """Uncaught exceptions, console errors and log errors the page produced so far."""
        found = [str(e["exceptionDetails"]) for e in self._events("Runtime.exceptionThrown")]
        found += [
            str(e["args"]) for e in self._events("Runtime.consoleAPICalled") if e.get("type") in ("error", "assert")
        ]
        found += [
            e["entry"].get("text", "") for e in self._events("Log.entryAdded") if e["entry"].get("level") == "error"
        ]
        return found

    def requests(self) -> list[str]:
        """Every URL the page asked for."""
        return [e["request"]["url"] for e in self._events("Network.requestWillBeSent")]


__all__ = ["SKIP_REASON", "BrowserError", "Chromium", "Tab", "available"]
