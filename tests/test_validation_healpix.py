"""Quick mode of the simulated-survey HEALPix validation (validation/scripts/06_healpix_maps.py).

Two synthetic disk CCDs with background structure: crowdsource, injections with the fitted
PSF, crowdsource again, LPI through ``cloudcov.campaign.run_survey`` (local engine), maps by
``cloudcov.maps``. Checks the outputs, the qualitative result (LPI error bars closer to
right than the conventional ones) and that a second run resumes (nothing recomputed, same
numbers). About 30-60 s on 2 busy cores.
"""
from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = REPO / "validation" / "scripts" / "06_healpix_maps.py"


def _run(out):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--seed", "0", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(out / "results.json") as f:
        return json.load(f), proc.stdout


@pytest.fixture(scope="module")
def quick_run(real_dir, tmp_path_factory):
    pytest.importorskip("crowdsource.crowdsource_base")
    pytest.importorskip("healpy")
    out = tmp_path_factory.mktemp("healpix")
    data, log = _run(out)
    return out, data, log


def test_outputs(quick_run):
    import healpy as hp

    from cloudcov.maps import read_maps

    out, data, _ = quick_run
    for name in ("results.json", "pixels.ecsv", "maps.fits", "maps_iqr.png", "map_ratio.png",
                 "map_lpi_over_conv.png"):
        assert (out / name).stat().st_size > 0, name
    for key in ("nside", "n_pixels", "median_iqr_conventional", "median_iqr_lpi",
                "worst_iqr_lpi", "regions", "provenance"):
        assert key in data, key
    assert data["nside"] == 32 and data["quick"] is True
    assert data["provenance"]["cloudcov_version"] and data["provenance"]["git_commit"]
    assert "run_survey" in data["lpi_run"]
    maps, hdr = read_maps(out / "maps.fits")
    assert hdr["NSIDE"] == 32 and maps["z_lpi"].size == hp.nside2npix(32)
    assert np.isfinite(maps["z_lpi"]).sum() == data["n_pixels"] >= 1


def test_lpi_closer_to_one(quick_run):
    _, data, _ = quick_run
    p = data["pooled"]["isolated"]
    assert p["n"] >= 15
    assert abs(p["iqr_lpi"] - 1) < abs(p["iqr_conventional"] - 1)
    assert p["iqr_conventional"] > 1.15          # the structured background matters
    assert abs(data["median_iqr_lpi"] - 1) < abs(data["median_iqr_conventional"] - 1)


def test_rerun_resumes(quick_run):
    out, data, _ = quick_run
    again, log = _run(out)
    assert "already done" in log
    for key in ("n_pixels", "median_iqr_conventional", "median_iqr_lpi", "worst_iqr_lpi", "pooled",
                "footprint"):
        assert again[key] == data[key], key
