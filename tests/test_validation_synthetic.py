"""Synthetic validation scripts (validation/scripts/0[1-3]_*.py) in --quick mode.

Each script runs in a subprocess into tmp_path; the tests assert the qualitative results
that must hold even on the small quick configurations (the full-run numbers are in
validation/results/ and validation/RESULTS.md). The two scripts that run
crowdsource take ~15 s each; the filament-height one takes ~8 s. All run in the default
test command (the full runs are the scripts' default mode, not tests).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "validation" / "scripts"


def run_script(name, out, *extra):
    cmd = [sys.executable, str(SCRIPTS / name), "--quick", "--out", str(out), "--seed", "0",
           *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return json.loads((out / "results.json").read_text())


def test_two_filaments_quick(tmp_path):
    pytest.importorskip("crowdsource")
    res = run_script("01_two_filaments.py", tmp_path)
    for f in ("fig6_two_filaments.png", "fig5_stamps.png", "stars.npz"):
        assert (tmp_path / f).stat().st_size > 0
    c = res["counts"]
    assert c["n_matched"] >= 0.95 * c["n_true"]
    assert c["n_nonfinite_lpi"] == 0
    t = res["target"]
    # the filaments bias conventional photometry: large Z correlated with position ...
    assert res["overall"]["conventional"]["max_abs"] > 5
    assert t["conventional_abs_mean_max"] > 1.5
    # ... and LPI removes it: bin means within 1 sigma (the TARGETS.md bound itself: seeds
    # 0-3 of the quick run give 0.51-0.94), width closer to 1 near the filaments
    assert t["lpi_abs_mean_max"] < 1.0
    assert t["lpi_abs_mean_max"] < t["conventional_abs_mean_max"] / 2
    near = t["near_filaments"]
    assert abs(near["lpi"]["iqr_sigma"] - 1) < abs(near["conventional"]["iqr_sigma"] - 1)
    # target 0.9-1.15 per position bin; the quick run pools fewer stars near the filaments
    # (seeds 0-3: 0.92-1.17, conventional 3.7-4.6)
    assert 0.85 < near["lpi"]["iqr_sigma"] < 1.25
    assert abs(near["lpi"]["mean"]) < abs(near["conventional"]["mean"]) or \
        near["lpi"]["std"] < near["conventional"]["std"] / 2
    # far from the filaments both are close to N(0, 1) and LPI ~ the diagonal error
    # (seeds 0-3: IQR/1.349 0.84-1.12, |median| <= 0.36, dcflux/dcflux_diag 0.997-1.006)
    far = res["far_from_filaments"]
    for kind in ("conventional", "lpi"):
        assert 0.75 < far[kind]["iqr_sigma"] < 1.25
        assert abs(far[kind]["median"]) < 0.4
    assert 0.98 < far["median_dcflux_over_dcflux_diag"] < 1.02


def test_filament_height_quick(tmp_path):
    res = run_script("02_filament_height.py", tmp_path)
    assert (tmp_path / "fig7_filament_height.png").stat().st_size > 0
    entries = res["results"]["pipeline"]
    assert set(entries) == {"2^14 a=-2", "2^14 a=+0", "2^14 a=+2"}
    for key, e in entries.items():
        frac = np.array(e["fraction"])
        sem = np.array(e["fraction_sem"])
        # the reconstructed fraction of the height increases with SNR ...
        assert np.all(np.diff(frac) > -2 * np.maximum(sem[1:], sem[:-1])), key
        assert frac[-1] - frac[0] > 0.4, key
        # ... towards the true height at high SNR (paper Fig. 7: -> 1; seeds 0-3 of the quick
        # run: 0.91-0.96), well below it at low SNR (0.06-0.56)
        assert frac[-1] > 0.9, key
        assert frac[0] < 0.6, key
    i = entries["2^14 a=+0"]["snr"].index(1.4)
    # more samples along the filament converge faster (paper sec. 4.2)
    assert entries["2^14 a=+2"]["fraction"][i] > entries["2^14 a=-2"]["fraction"][i]
    assert 0.65 < entries["2^14 a=+0"]["fraction"][i] < 0.9      # seeds 0-3: 0.71-0.79


def test_crowded_field_quick(tmp_path):
    pytest.importorskip("crowdsource")
    res = run_script("03_crowded_field.py", tmp_path)
    assert (tmp_path / "fig8_crowded_field.png").stat().st_size > 0
    st = res["stats"]["all"]
    n = st["lpi"]["n"]
    assert n > 450                                   # seeds 0-3: 531-554 stars
    # crowdsource's sky is biased high in a crowded field: conventional Z shifted left
    # (seeds 0-3: -0.37 to -0.44) ...
    assert st["conventional"]["median"] < -0.3
    # ... and LPI recentres it: the target |median Z| <= 0.1 plus one standard error of the
    # median of ~540 unit-width Z values (1.2533 / sqrt(n) ~ 0.054): seeds 0-3 give
    # -0.047 to -0.105, so the quick run cannot honestly be held to 0.1 itself
    assert abs(st["lpi"]["median"]) < abs(st["conventional"]["median"]) / 3
    assert abs(st["lpi"]["median"]) < 0.1 + 1.2533 / np.sqrt(n)
    assert 0.9 < st["lpi"]["iqr_sigma"] < 1.2        # seeds 0-3: 1.02-1.11
