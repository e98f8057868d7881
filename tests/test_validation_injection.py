"""Smoke test of the injection validation (validation/scripts/04_injection.py, --quick).

Runs the whole chain on the real HorseHead plate -- crowdsource on the image, injection of
stars with the fitted PSF, crowdsource again on the injection image, matching, cloudcov --
and checks results that must hold even with one small injection image: enough matches,
finite statistics, and LPI Z-scores much closer to unit width than the conventional ones
(the plate grain is spatially correlated, which crowdsource's dflux ignores).
About 15-25 s on 2 cores.
"""
from __future__ import annotations

import json
import math
import pathlib
import subprocess
import sys

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = REPO / "validation" / "scripts" / "04_injection.py"


@pytest.fixture(scope="module")
def quick_run(real_dir, tmp_path_factory):
    pytest.importorskip("crowdsource.crowdsource_base")
    pytest.importorskip("matplotlib")
    out = tmp_path_factory.mktemp("injection")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--field", "horsehead", "--quick",
                           "--seed", "0", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(out / "injection.json") as f:
        data = json.load(f)
    return out, data


def test_outputs_written(quick_run):
    out, data = quick_run
    for name in ("injection.json", "injection_data.npz", "injection_zpdf.png",
                 "injection_fb_vs_err.png", "injection_zmap_horsehead.png"):
        assert (out / name).stat().st_size > 0, name
    assert data["quick"] is True
    assert list(data["fields"]) == ["horsehead"]


def test_injection_and_matching(quick_run):
    _, data = quick_run
    res = data["fields"]["horsehead"]
    img = res["per_image"][0]
    assert res["config"]["n_detected"] > 100
    assert img["n_injected"] >= 50
    # most injected stars are recovered within 1 px, and the headline sample is large enough
    assert img["n_matched"] >= 0.6 * img["n_injected"]
    assert res["summary"]["clean/isolated"]["n"] >= 40


def test_lpi_z_closer_to_unit_width(quick_run):
    _, data = quick_run
    p = data["fields"]["horsehead"]["summary"]["clean/isolated"]
    conv, lpi = p["conventional"]["iqr_sigma"], p["lpi"]["iqr_sigma"]
    assert math.isfinite(conv) and math.isfinite(lpi)
    assert abs(lpi - 1) < abs(conv - 1)
    # the plate grain is correlated: crowdsource's dflux is far too small (full run 2.8;
    # seeds 0-3 of the quick run 2.27-2.91)
    assert conv > 2.0
    # LPI near unit width: ~70 stars give IQR/1.349 a standard error ~0.11 (seeds 0-3:
    # 0.96, 0.98, 1.31, 1.13)
    assert 0.8 < lpi < 1.4
    # target: |Z| > 3 for at most 0.4% of stars, i.e. < 0.3 of ~70 expected; the quick run
    # holds at most 2 (seeds 0-3: 2, 0, 2, 0; conventional 14-28)
    assert p["lpi"]["n_abs_gt3"] <= 2
    assert p["lpi"]["frac_abs_gt3"] < p["conventional"]["frac_abs_gt3"] / 4


def test_eq11_ratio_nebulous(quick_run):
    """Eq. 11 on the nebulous plate: the paper finds 0.95 (uncrowded fields 0.23, <= 0.3 is
    the target there), i.e. the LPI correction f^b is a large part of the flux error. With
    ~70 stars the ratio scatters by ~0.1-0.15 per quick run (seeds 0-3: std 0.69, 0.80, 0.49,
    0.65; robust 0.49, 0.51, 0.42, 0.61): held above the uncrowded regime and below ~1."""
    _, data = quick_run
    p = data["fields"]["horsehead"]["summary"]["clean/isolated"]
    assert 0.35 < p["eq11_std"] < 1.1, p["eq11_std"]
    assert 0.3 < p["eq11_robust"] < 1.1, p["eq11_robust"]


def test_per_star_arrays_consistent(quick_run):
    out, data = quick_run
    with np.load(out / "injection_data.npz") as z:
        m = z["horsehead/matched"]
        assert m.sum() == data["fields"]["horsehead"]["per_image"][0]["n_matched"]
        # every matched star has a cloudcov solution; cflux = flux + fdb_pred - fdb_res
        for c in ("flux", "cflux", "dcflux"):
            assert np.all(np.isfinite(z[f"horsehead/{c}"][m]))
        fb = z["horsehead/fdb_pred"][m] - z["horsehead/fdb_res"][m]
        np.testing.assert_allclose(z["horsehead/cflux"][m], z["horsehead/flux"][m] + fb,
                                   rtol=1e-4, atol=1e-3 * float(np.median(z["horsehead/dcflux"][m])))
