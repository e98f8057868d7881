"""Smoke test of the imputation validation (validation/scripts/05_imputation.py --quick).

200 x 200 crops of one M13 frame and the Horsehead plate, three hiding scenarios, the four
cloudcov methods (astrofix is only run by the full script). Checks the JSON structure, the
provenance and results that hold even on small crops. About 10-20 s on 2 cores.
"""
from __future__ import annotations

import json
import math
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = REPO / "validation" / "scripts" / "05_imputation.py"


@pytest.fixture(scope="module")
def quick(real_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("imputation")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--no-figures", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(out / "imputation.json") as f:
        return out, json.load(f)


def test_structure_and_provenance(quick):
    out, data = quick
    assert data["quick"] is True and (out / "table.md").exists()
    assert data["provenance"]["cloudcov"] and "git_commit" in data["provenance"]
    for name in ("M13_blue_0001", "HorseHead"):
        for scen in ("random", "block3x3", "line1x5"):
            sc = data["frames"][name]["scenarios"][scen]
            assert sc["n_hidden"] > 200
            for m in ("median", "gaussian", "gpr", "lpi"):
                s = sc["methods"][m]
                assert math.isfinite(s["mae"]) and math.isfinite(s["z_iqr"])
                assert s["z_nonfinite"] <= 0.01 * sc["n_hidden"]


def test_learned_methods_beat_the_median_on_the_plate(quick):
    _, data = quick
    sc = data["frames"]["HorseHead"]["scenarios"]
    for scen in ("random", "line1x5"):
        med = sc[scen]["methods"]["median"]["mae"]
        assert sc[scen]["methods"]["gpr"]["mae"] < 0.8 * med
        assert sc[scen]["methods"]["lpi"]["mae"] < 0.8 * med


def test_calibrated_std_on_random_pixels(quick):
    _, data = quick
    for name in ("M13_blue_0001", "HorseHead"):
        for m in ("gpr", "lpi"):
            z = data["frames"][name]["scenarios"]["random"]["methods"][m]["z_iqr"]
            assert 0.8 < z < 1.25, (name, m, z)
