"""Headless Chromium driven over the DevTools protocol: load a page, collect errors, screenshot."""

from __future__ import annotations

import base64
import itertools
import json
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
    "--window-size=1200,2400",
]


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class PageReport:
    def __init__(self) -> None:
        self.errors: list[str] = []
        self.images: list[dict] = []
        self.screenshot: bytes = b""
        self.text: str = ""
        self.title: str = ""
        self.scroll_width = self.viewport_width = 0


def inspect_page(url: str, timeout: float = 60, width: int = 1300) -> PageReport:
    """Open ``url`` ``width`` CSS pixels wide; return console/JS errors, every <img>'s natural
    size, the page's text, title and scroll width, and a screenshot."""
    from websockets.sync.client import connect

    report = PageReport()
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        proc = subprocess.Popen(
            [chromium_path(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            port = None
            deadline = time.monotonic() + timeout
            while port is None and time.monotonic() < deadline:
                line = proc.stderr.readline()
                match = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
                port = int(match.group(1)) if match else None
            assert port, "chromium did not start its DevTools endpoint"
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list") as response:
                page = next(t for t in json.load(response) if t["type"] == "page")
            ids = itertools.count(1)
            with connect(page["webSocketDebuggerUrl"], max_size=64 * 1024 * 1024) as ws:

                def call(method: str, **params) -> dict:
                    call_id = next(ids)
                    ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
                    while True:
                        message = json.loads(ws.recv(timeout=timeout))
                        _collect(message, report)
                        if message.get("id") == call_id:
                            return message.get("result", {})

                for domain in ("Page", "Runtime", "Log"):
                    call(f"{domain}.enable")
                call(
                    "Emulation.setDeviceMetricsOverride",
                    width=width,
                    height=2400,
                    deviceScaleFactor=1,
                    mobile=False,
                )
                call("Page.navigate", url=url)
                while True:
                    message = json.loads(ws.recv(timeout=timeout))
                    _collect(message, report)
                    if message.get("method") == "Page.loadEventFired":
                        break
                result = call(
                    "Runtime.evaluate",
                    expression="JSON.stringify(Array.from(document.images).map(i => "
                    "({src: i.getAttribute('src'), width: i.naturalWidth, complete: i.complete})))",
                    returnByValue=True,
                )
                report.images = json.loads(result["result"]["value"])
                page_facts = call(
                    "Runtime.evaluate",
                    expression="JSON.stringify({text: document.body.innerText, "
                    "title: document.title, scroll: document.documentElement.scrollWidth, "
                    "viewport: window.innerWidth})",
                    returnByValue=True,
                )
                facts = json.loads(page_facts["result"]["value"])
                report.text, report.title = facts["text"], facts["title"]
                report.scroll_width, report.viewport_width = facts["scroll"], facts["viewport"]
                shot = call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
                report.screenshot = base64.b64decode(shot["data"])
        finally:
            proc.kill()
            proc.wait()
    return report


def _collect(message: dict, report: PageReport) -> None:
    method, params = message.get("method"), message.get("params", {})
    if method == "Runtime.exceptionThrown":
        report.errors.append(params["exceptionDetails"].get("text", "exception"))
    elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
        report.errors.append(" ".join(str(a.get("value")) for a in params.get("args", [])))
    elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
        report.errors.append(params["entry"].get("text", ""))
