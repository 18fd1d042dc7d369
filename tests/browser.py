"""Chromium for the tests: Debian's `chromium` package, fetched and unpacked by tests/debian.py
with whatever libraries this machine lacks (`apt-get -s` says which), run headless and driven
over the DevTools protocol on a pipe (--remote-debugging-pipe: commands on fd 3, replies and
events on fd 4, each a JSON message ended by a NUL byte). No port, no WebDriver, no Python
package: one browser process, and what a page did comes back as the protocol's events.

What `Browser.open` gives back about a page: every console message, uncaught exception and
browser log entry (a failed load, a Content-Security-Policy refusal), every URL it requested,
the size of chosen elements as laid out, and a screenshot of the whole page."""

from __future__ import annotations

import base64
import json
import os
import select
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .debian import UnpackedProgram, debian_program, missing_here

# The browser itself, in Debian's package (usr/bin/chromium is a shell script around it).
CHROMIUM_BINARY = "usr/lib/chromium/chromium"
TIMEOUT_SECONDS = 60.0
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--remote-debugging-pipe", "--no-first-run", "--no-default-browser-check",
         "--disable-extensions", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--mute-audio", "--hide-scrollbars")
# Each element the selector finds, as laid out: its place on the page and size, and for an
# image whether it decoded.
_MEASURE = """Array.from(document.querySelectorAll(%s), element => {
  const box = element.getBoundingClientRect();
  return {tag: element.tagName.toLowerCase(), id: element.id,
          x: box.left + window.scrollX, y: box.top + window.scrollY,
          width: box.width, height: box.height,
          decoded: element.tagName === "IMG" ? element.complete && element.naturalWidth > 0
                                             : null};
})"""


def chromium() -> UnpackedProgram:
    """Chromium from PATH, else from Debian's packages (downloaded once, into .cache)."""
    return debian_program("chromium", lambda: missing_here("chromium"), CHROMIUM_BINARY)


class DevToolsError(Exception):
    pass


@dataclass
class Rendered:
    """What a page did when it was opened, and how it looked."""

    url: str
    elements: list[dict[str, Any]]
    screenshot: bytes
    console: list[dict[str, Any]] = field(default_factory=list)
    exceptions: list[dict[str, Any]] = field(default_factory=list)
    log: list[dict[str, Any]] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def errors(self) -> list[str]:
        """Console errors and assertions, uncaught exceptions, and the browser's errors."""
        found = [f"console.{message['type']}: {message.get('args')}"
                 for message in self.console if message["type"] in ("error", "assert")]
        found += [f"exception: {exception['exceptionDetails']}" for exception in self.exceptions]
        found += [f"log {entry['entry']['source']}: {entry['entry']['text']}"
                  for entry in self.log if entry["entry"]["level"] == "error"]
        return found


class Browser:
    """One headless Chromium; `open` a page in a new tab, as often as needed."""

    def __init__(self, program: UnpackedProgram) -> None:
        self._profile = tempfile.TemporaryDirectory(prefix="chromium-profile-")
        self._stderr = tempfile.TemporaryFile()  # a pipe left unread would fill and stall it
        commands_read, self._commands = os.pipe()
        self._replies, replies_write = os.pipe()
        # The protocol's fds must be 3 and 4 in the browser: bash puts them there (dash takes
        # no fd past 9).
        script = f'exec "$0" "$@" 3<&{commands_read} 4>&{replies_write}'
        self.process = subprocess.Popen(
            ["bash", "-c", script, str(program.binary), *FLAGS,
             f"--user-data-dir={self._profile.name}", "about:blank"],
            pass_fds=(commands_read, replies_write), env=program.env(),
            stdout=subprocess.DEVNULL, stderr=self._stderr)
        os.close(commands_read)
        os.close(replies_write)
        self._buffer = bytearray()
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.call("Browser.close")
        except (DevToolsError, OSError, TimeoutError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._commands)
        os.close(self._replies)
        self._stderr.close()
        self._profile.cleanup()

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        """Sends a command and returns its result; events that come first are kept."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._receive()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise DevToolsError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str) -> dict[str, Any]:
        while True:
            for event in self.events:
                if event.get("method") == method:
                    self.events.remove(event)
                    return event
            self.events.append(self._receive())

    def _receive(self) -> dict[str, Any]:
        deadline = time.monotonic() + TIMEOUT_SECONDS
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._replies], [], [], max(0.0, left))
            if not ready:
                raise TimeoutError(f"Chromium said nothing for {TIMEOUT_SECONDS:g} s"
                                   f"{self._stderr_tail()}")
            chunk = os.read(self._replies, 1 << 20)
            if not chunk:
                raise DevToolsError(f"Chromium closed its pipe (exit {self.process.poll()})"
                                    f"{self._stderr_tail()}")
            self._buffer += chunk
        end = self._buffer.index(b"\0")
        message = json.loads(self._buffer[:end])
        del self._buffer[:end + 1]
        return message

    def _stderr_tail(self) -> str:
        self._stderr.seek(0)
        lines = self._stderr.read().decode("utf-8", "replace").splitlines()
        return ":\n" + "\n".join(lines[-30:]) if lines else ""

    def open(self, page: Path, selector: str, width: int = 1200,
             height: int = 900) -> Rendered:
        """Loads `page` in a new tab of `width` CSS pixels, measures the elements `selector`
        finds, and shoots the whole page."""
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable", session)
        self.call("Emulation.setDeviceMetricsOverride", session, width=width, height=height,
                  deviceScaleFactor=1, mobile=False)
        self.call("Page.navigate", session, url=page.as_uri())
        self.wait_for("Page.loadEventFired")
        measured = self.call("Runtime.evaluate", session, returnByValue=True,
                             expression=_MEASURE % json.dumps(selector))
        if "exceptionDetails" in measured:
            raise DevToolsError(f"measuring {selector}: {measured['exceptionDetails']}")
        size = self.call("Page.getLayoutMetrics", session)["cssContentSize"]
        shot = self.call("Page.captureScreenshot", session, format="png",
                         captureBeyondViewport=True,
                         clip={"x": 0, "y": 0, "width": size["width"],
                               "height": size["height"], "scale": 1})
        rendered = Rendered(page.as_uri(), measured["result"]["value"],
                            base64.b64decode(shot["data"]))
        self._sort_events(session, rendered)
        self.call("Target.closeTarget", targetId=target)
        return rendered

    def _sort_events(self, session: str, rendered: Rendered) -> None:
        kinds = {"Runtime.consoleAPICalled": rendered.console,
                 "Runtime.exceptionThrown": rendered.exceptions, "Log.entryAdded": rendered.log}
        kept = []
        for event in self.events:
            if event.get("sessionId") != session:
                kept.append(event)
            elif event.get("method") in kinds:
                kinds[event["method"]].append(event["params"])
            elif event.get("method") == "Network.requestWillBeSent":
                rendered.requests.append(event["params"]["request"]["url"])
        self.events = kept
