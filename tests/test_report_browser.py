"""The HTML report in a real browser: headless Chromium renders report.html, every embedded figure decodes,
and the screenshot shows a page (not a blank or single-colour one).

Needs Debian's ``chromium`` (``apt-get install chromium``; .ci/run installs it); skipped without it.
report.html carries a small inline script that sets ``data-figures-ready="true"`` on the body element once
every ``<img>`` is ``complete`` with ``naturalWidth > 0``; ``--dump-dom`` shows whether it did.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from peftlab.report import build_report
from test_report import make_study

CHROMIUM = next((path for path in ("/usr/bin/chromium", shutil.which("chromium") or "") if path and Path(path).is_file()), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium); browser check skipped")


def _chromium(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess:
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
        f"--user-data-dir={profile}", *args, page.as_uri(),
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_report_renders_with_figures(tmp_path):
    study = make_study(tmp_path / "study")
    written = build_report(study)
    page = written["report.html"]
    figures = page.read_text().count("<img ")
    # Every figure the report wrote is embedded once (the count follows the report, e.g. the Pareto front).
    assert figures == sum(1 for name in written if name.endswith(".png")) >= 3

    dom = _chromium(page, tmp_path / "profile-dom", "--dump-dom")
    body = re.search(r"<body[^>]*>", dom.stdout)
    assert body, f"no DOM dumped; chromium said: {dom.stderr[-2000:]}"
    assert f'data-images-loaded="{figures}/{figures}"' in body.group(0), body.group(0)
    assert 'data-figures-ready="true"' in body.group(0)

    shot = tmp_path / "report.png"
    result = _chromium(page, tmp_path / "profile-shot", f"--screenshot={shot}", "--window-size=1200,2000")
    assert shot.is_file(), f"no screenshot; chromium said: {result.stderr[-2000:]}"
    assert shot.stat().st_size > 10_000
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)[..., :3]
    assert pixels.shape[:2] == (2000, 1200)
    colours = np.unique((pixels.reshape(-1, 3) * 255).astype(np.uint8), axis=0)
    assert len(colours) > 50, "the screenshot is (nearly) one colour"
    assert (pixels.mean(axis=2) < 0.9).mean() > 0.02, "the screenshot is almost blank"
