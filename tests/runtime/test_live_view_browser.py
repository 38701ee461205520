"""The live view in a real headless browser (Debian's chromium + chromium-driver through Selenium): the page
shows the stream and the label; a screenshot is kept for a person to look at (EDGEPORT_SCREENSHOT_DIR)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from .helpers import ROOT
from .services import free_port, wait_port

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def test_page_shows_stream_and_label(export_dir, tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver")
    if not (Path(CHROMIUM).exists() and Path(DRIVER).exists()):
        pytest.skip("Debian's chromium and chromium-driver are not installed (.ci/run installs them)")
    from selenium.webdriver.chrome.service import Service

    from .helpers import shapes, write_video

    model = export_dir / "model_int8.tflite"
    clip = write_video(tmp_path / "clip.mp4", [cv2.resize(img, (320, 240)) for _, img in shapes(10, seed=3)] * 5,
                       fps=25)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "edgeport", "run", str(model), "--source", str(clip), "--loop",
                             "--realtime", "--serve", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=str(ROOT), env=env)
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1100,700"):
        opts.add_argument(arg)
    driver = None
    try:
        wait_port(port, 30)
        driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
        driver.set_page_load_timeout(30)
        driver.get(f"http://127.0.0.1:{port}/")
        deadline = time.monotonic() + 20
        label = ""
        while time.monotonic() < deadline:
            label = driver.find_element("id", "label").text
            width = driver.execute_script("const i = document.getElementById('stream'); "
                                          "return i.complete ? i.naturalWidth : 0")
            if label not in ("", "-") and width == 320:
                break
            time.sleep(0.2)
        assert label.split()[0] in ("circle", "cross", "square", "star", "triangle"), label
        assert width == 320, "the MJPEG stream did not render"
        assert "FPS" in driver.find_element("tag name", "aside").text
        shot = driver.get_screenshot_as_png()
        out = Path(os.environ.get("EDGEPORT_SCREENSHOT_DIR", tmp_path))
        out.mkdir(parents=True, exist_ok=True)
        (out / "live-view.png").write_bytes(shot)
        img = cv2.imdecode(np.frombuffer(shot, np.uint8), cv2.IMREAD_COLOR)
        box = driver.find_element("id", "stream").rect
        x, y, w, h = (int(box[k]) for k in ("x", "y", "width", "height"))
        assert w > 100 and h > 50 and img[y:y + h, x:x + w].std() > 10  # the picture is there, not a blank box
    finally:
        if driver is not None:
            driver.quit()
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
