"""`ei-assets report` as people see it: one self-contained file, opened in a real headless
Chromium with the network cut off, every learn block's charts drawn (checked in the DOM and in
the pixels of a screenshot)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from ei_assets.pipeline.data_dir import DataDir
from ei_assets.pipeline.refresh import refresh
from ei_assets.report import report_data
from ei_assets.settings import ApiKey
from ei_assets.simulator import Simulator, WorldConfig
from ei_assets.studio import StudioClient

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SERIES_COLORS = {"float32": (0x1F, 0x77, 0xB4), "int8": (0xD6, 0x27, 0x28)}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DataDir]:
    data = DataDir.open(str(tmp_path_factory.mktemp("report")))
    keys = []
    with Simulator(WorldConfig(profiling_seconds=0.0, predictions=80)) as sim:
        keys = [ApiKey(k, f"#{i}") for i, k in enumerate(sim.api_keys, start=1)]
        for _ in range(2):
            with StudioClient(sim.url) as client:
                assert refresh(client, keys, data.store, max_workers=4).all_refreshed
            data.warehouse.load()
            sim.world.retrain_matching()
    yield data


def write(data: DataDir, out: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EI_")}
    return subprocess.run([sys.executable, "-m", "ei_assets.cli", "report", "--out", str(out)],
                          env=env | {"EI_DATA_DIR": data.store.data_dir}, capture_output=True,
                          text=True, timeout=120)


def expected_charts(blocks: list[dict[str, Any]]) -> int:
    """Accuracy, flips where a non-float32 type exists, latency/RAM/ROM where profiled."""
    return sum(1 + bool(b["flips"]) + 3 * bool(b["targets"]) for b in blocks)


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM, "the report test needs Debian's chromium: apt-get install chromium"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--proxy-server=127.0.0.1:9",  # no network at all
             "--proxy-bypass-list=<-loopback>", "--virtual-time-budget=10000",
             "--window-size=1280,2400", "--hide-scrollbars"]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=180)


def test_the_report_is_one_self_contained_file(data: DataDir, tmp_path: Path) -> None:
    out = tmp_path / "new" / "folder" / "report.html"
    result = write(data, out)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"report of 8 learn blocks: {out}"
    page = out.read_text()
    assert len(page) < 3_000_000
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)  # nothing fetched
    assert "uPlot" in page and 'id="report-data"' in page
    for block in report_data(data.warehouse):
        assert f'id="block-{block["key"]}"' in page
        assert f"project {block['project_id']}" in page and f"learn block {block['learn_id']}" in page


def test_every_chart_is_drawn_in_headless_chromium(data: DataDir, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    assert write(data, out).returncode == 0
    blocks = report_data(data.warehouse)
    dom = chromium("--dump-dom", out.as_uri(), profile=tmp_path / "profile-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    drawn = re.search(r'data-charts="(\d+)"', dom.stdout)
    assert drawn, "the report's script did not finish: " + dom.stderr[-2000:]
    assert int(drawn.group(1)) == expected_charts(blocks)
    assert dom.stdout.count('class="uplot') == expected_charts(blocks)


def test_a_screenshot_shows_the_series(data: DataDir, tmp_path: Path) -> None:
    """Fails when the charts do not render: the series colors must be painted."""
    out = tmp_path / "report.html"
    assert write(data, out).returncode == 0
    shot = tmp_path / "report.png"
    result = chromium(f"--screenshot={shot}", out.as_uri(), profile=tmp_path / "profile-shot")
    assert result.returncode == 0 and shot.exists(), result.stderr[-2000:]
    pixels = Image.open(shot).convert("RGB")
    colors = {color for _, color in pixels.getcolors(maxcolors=1 << 20) or []}
    for model_type, rgb in SERIES_COLORS.items():
        assert any(all(abs(c - e) <= 12 for c, e in zip(color, rgb, strict=True)) for color in colors), \
            f"no {model_type} line in the screenshot"
