"""Open a generated report.html in headless Chromium and check what a reader would see.

Chromium is driven over the DevTools protocol with a minimal WebSocket client (standard library
only): every <img> must have decoded (naturalWidth > 0), the console must stay free of errors and
the page must not request anything outside the file (it has to open from disk, offline). A
full-page screenshot is saved to $REPORT_SCREENSHOT, or into the test's temporary folder.

Skipped only where Chromium is absent and CI is not set: in CI a missing browser fails the test.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from study.report import build_context, write_report

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists() and not os.environ.get("CI"),
        reason="needs headless Chromium at /usr/bin/chromium (apt-get install chromium)",
    ),
]


class WebSocket:
    """Just enough of RFC 6455 for the DevTools protocol: masked text frames out, frames in."""

    def __init__(self, url: str, timeout: float = 60.0) -> None:
        assert url.startswith("ws://"), url
        host_port, _, path = url[len("ws://") :].partition("/")
        host, _, port = host_port.partition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET /{path} HTTP/1.1\r\nHost: {host_port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("DevTools closed the connection during the handshake")
            response += chunk
        head, _, self.buffer = response.partition(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise ConnectionError(f"WebSocket handshake refused: {head[:200]!r}")

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buffer)))
            if not chunk:
                raise ConnectionError("DevTools closed the connection")
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        header = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 1 << 16:
            header += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)  # clients must mask every frame
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def send(self, text: str) -> None:
        self._send_frame(0x1, text.encode())

    def recv(self) -> str:
        message = b""
        while True:
            first, second = self._read(2)
            opcode, n = first & 0x0F, second & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._read(8))[0]
            mask = self._read(4) if second & 0x80 else b""
            payload = self._read(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == 0x9:  # ping
                self._send_frame(0xA, payload)
                continue
            if opcode == 0x8:
                raise ConnectionError("DevTools closed the WebSocket")
            message += payload
            if first & 0x80:  # final fragment
                return message.decode()

    def close(self) -> None:
        self.sock.close()


class DevTools:
    """Commands to one page target; events are collected while waiting for replies."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.next_id = 0
        self.events: list[dict] = []

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, method: str, timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events:
                if event.get("method") == method:
                    return event
            self.events.append(json.loads(self.ws.recv()))
        raise TimeoutError(f"no {method} within {timeout} s")


@pytest.fixture
def chromium(tmp_path):
    """A headless Chromium with remote debugging; yields a DevTools session on a blank page."""
    if not CHROMIUM.exists():
        pytest.fail("CI is set but /usr/bin/chromium is missing: install the chromium package")
    profile = tmp_path / "profile"
    args = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
        "--window-size=1200,900",
        "about:blank",
    ]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ws = None
    try:
        # Chromium writes the port it picked into the profile once DevTools listens.
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode(errors="replace") if proc.poll() is not None else ""
                pytest.fail(f"Chromium did not start DevTools: {err[-2000:]}")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30) as r:
            targets = json.load(r)
        page = next(t for t in targets if t.get("type") == "page")
        ws = WebSocket(page["webSocketDebuggerUrl"])
        yield DevTools(ws)
    finally:
        if ws is not None:
            ws.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def report_html(tmp_path_factory):
    from test_figures import build_study

    from study.figures import make_figures

    if os.environ.get("REPORT_HTML"):  # a report already written, e.g. a smoke study's
        return Path(os.environ["REPORT_HTML"])
    root = tmp_path_factory.mktemp("browser")
    scale_dir, ablations = build_study(root)
    for ablation in ablations.values():
        make_figures(scale_dir, ablation)
    out = root / "paper"
    write_report(build_context(scale_dir, ablations, scale="smoke", repo=root), out)
    return out / "report.html"


def test_report_renders_in_chromium(chromium, report_html, tmp_path):
    dt = chromium
    for domain in ("Page", "Runtime", "Log", "Network"):
        dt.call(f"{domain}.enable")
    dt.call("Page.navigate", url=report_html.resolve().as_uri())
    dt.wait_for("Page.loadEventFired")

    images = dt.call(
        "Runtime.evaluate",
        expression="""Promise.all(Array.from(document.images).map(img =>
            img.decode().catch(() => null).then(() => ({
                alt: img.alt, complete: img.complete, width: img.naturalWidth}))))""",
        awaitPromise=True,
        returnByValue=True,
    )["result"]["value"]
    assert len(images) >= 10
    broken = [img["alt"] for img in images if not (img["complete"] and img["width"] > 0)]
    assert not broken, f"images that did not load: {broken}"

    sections = dt.call(
        "Runtime.evaluate",
        expression="Array.from(document.querySelectorAll('h2')).map(h => h.textContent)",
        returnByValue=True,
    )["result"]["value"]
    for expected in ("Abstract", "Method", "Claims and verdicts", "Regularization",
                     "Discussion", "Limitations", "References", "Appendix"):  # fmt: skip
        assert expected in sections

    # Screenshot of the whole page at a reading width.
    dt.call(
        "Emulation.setDeviceMetricsOverride",
        width=1200,
        height=900,
        deviceScaleFactor=1,
        mobile=False,
    )
    size = dt.call("Page.getLayoutMetrics")["cssContentSize"]
    height = min(int(size["height"]), 30000)
    shot = dt.call(
        "Page.captureScreenshot",
        format="png",
        captureBeyondViewport=True,
        clip={"x": 0, "y": 0, "width": 1200, "height": height, "scale": 1},
    )
    target = Path(os.environ.get("REPORT_SCREENSHOT") or tmp_path / "report.png")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(base64.b64decode(shot["data"]))
    assert target.stat().st_size > 10_000

    errors = []
    for event in dt.events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            errors.append(("console", params.get("args")))
        elif method == "Runtime.exceptionThrown":
            errors.append(("exception", params.get("exceptionDetails", {}).get("text")))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            errors.append(("log", params["entry"].get("text"), params["entry"].get("url")))
        elif method == "Network.requestWillBeSent":
            url = params.get("request", {}).get("url", "")
            # The report must open offline: only the file itself and its data: URIs.
            if not url.startswith(("file:", "data:")):
                errors.append(("external request", url))
        elif method == "Network.loadingFailed":
            errors.append(("failed load", params.get("errorText")))
    assert not errors, errors
