"""Helpers of the `g2d serve` tests (importable as `serve_helpers`): the test key, multipart files, a short video of
a real photo, a real `g2d serve` process."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

import cv2
import numpy as np

from runtime_helpers import read

API_KEY = "test-key-0123456789"
KEY = {"X-API-Key": API_KEY}


def files(photos: List[Path], field: str = "photos") -> list:
    """Multipart files for requests / TestClient."""
    return [(field, (p.name, p.read_bytes(), "image/jpeg")) for p in photos]


def make_clip(path: Path, photo: Path, frames: int = 24, fps: float = 12.0) -> Path:
    """A short video of a real photo sliding across a grey background (MJPG .avi, always writable)."""
    image = cv2.resize(read(photo), (144, 144))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (320, 240))
    assert writer.isOpened()
    for i in range(frames):
        frame = np.full((240, 320, 3), 70, np.uint8)
        x = 20 + 3 * i
        frame[48:192, x:x + 144] = image
        writer.write(frame)
    writer.release()
    return path


class ServerProcess:
    """A real `g2d serve` process; `url` is where it listens."""

    def __init__(self, args: List[str], env: Dict[str, str]) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "g2d_edge", "serve", *args], stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, env=env)
        self.lines: List[str] = []
        self.url = self._wait_for_url(timeout=120)

    def _wait_for_url(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line and self.process.poll() is not None:
                break
            self.lines.append(line)
            match = re.search(r"listening on (http://127\.0\.0\.1:\d+)/", line)
            if match:
                return match.group(1)
        self.stop()
        raise AssertionError("g2d serve did not start:\n" + "".join(self.lines))

    def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode



def in_ci() -> bool:
    """CI sets $CI (as the Triton and Milvus tests read it): there a missing browser fails the test."""
    return bool(os.environ.get("CI"))
