"""Command line: --version, -v after the subcommand, descriptions, progress reporting, the
generic ``cloudcov ccd --image ...`` inputs, and the demo without matplotlib."""
from __future__ import annotations

import argparse
import logging
import sys

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

import cloudcov as cc
from cloudcov.cli import main


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"cloudcov {cc.__version__}"


def test_every_subcommand_has_a_description(monkeypatch):
    seen = {}
    orig = argparse.ArgumentParser.parse_args

    def spy(self, args=None, namespace=None):
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                seen.update(action.choices)
        return orig(self, args, namespace)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", spy)
    with pytest.raises(SystemExit):
        main(["--version"])
    assert {"demo", "exposure", "ccd"} <= set(seen)
    for name, p in seen.items():
        assert p.description and len(p.description) > 40, name


def _write_generic(tmp_path, ex):
    f = {}
    for name in ("image", "model", "sky"):
        f[name] = tmp_path / f"{name}.fits"
        fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.asarray(ex[name], np.float32),
                                                      name="SCI", header=fits.Header(
                                                          [("GAIN", ex["gain"])]))]).writeto(f[name])
    f["dq"] = tmp_path / "dq.fits"
    fits.PrimaryHDU(np.asarray(ex["dq"], np.int16)).writeto(f["dq"])
    f["psf"] = tmp_path / "psf.fits"
    fits.PrimaryHDU(np.asarray(ex["psf"], np.float64)).writeto(f["psf"])
    # a photutils-style catalogue: x = column
    cat = Table({"xcentroid": ex["catalog"]["y"], "ycentroid": ex["catalog"]["x"],
                 "flux": ex["catalog"]["flux"]})
    f["cat"] = tmp_path / "cat.fits"
    cat.write(f["cat"])
    return f


def test_ccd_generic_inputs(tmp_path, capsys):
    from cloudcov.example import load_example

    ex = load_example()
    f = _write_generic(tmp_path, ex)
    out = tmp_path / "out.fits"
    argv = ["ccd", "--image", f"{f['image']}[SCI]", "--model", f"{f['model']}[1]",
            "--sky", f"{f['sky']}[SCI]", "--dq", str(f["dq"]), "--cat", f"{f['cat']}[1]",
            "--psf", str(f["psf"]), "--gain", "GAIN", "--thr", "1000", "--out", str(out),
            "--threads", "1", "--seed", "0", "-v"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "cloudcov ccd SCI: 49 stars" in text
    got = cc.io.read_output(out, "SCI")
    ref = cc.process_ccd(np.asarray(ex["image"], np.float32), np.asarray(ex["model"], np.float32),
                         np.asarray(ex["sky"], np.float32), ex["catalog"], ex["psf"],
                         float(np.float32(ex["gain"])), dq=ex["dq"], thr=1000, seed=0, threads=1)
    np.testing.assert_array_equal(np.asarray(got["cflux"]), np.asarray(ref["cflux"]))
    np.testing.assert_array_equal(np.asarray(got["dnt"]).astype(int), np.asarray(ref["dnt"]).astype(int))
    assert got.meta["info"]["lapack"] == cc.lapack_info()["name"]
    # missing pieces are named
    assert main(["ccd", "--image", str(f["image"]), "--out", str(tmp_path / "x.fits")]) == 1
    assert "--model, --cat, --psf, --gain" in capsys.readouterr().err
    assert main(["ccd", "--out", str(tmp_path / "x.fits")]) == 1
    assert "--image --model --cat --psf --gain" in capsys.readouterr().err


def test_split_ext():
    from cloudcov.io.generic import split_ext

    assert split_ext("a.fits[N6_MOD]") == ("a.fits", "N6_MOD")
    assert split_ext("a.fits[ 2 ]") == ("a.fits", 2)
    assert split_ext("a[b].fits") == ("a[b].fits", None)


def test_verbose_after_subcommand_and_progress_log(monkeypatch, caplog, tmp_path):
    seen = {}
    monkeypatch.setattr("cloudcov.cli.demo", lambda args: seen.setdefault("v", args.verbose) and 0)
    main(["demo", "-v"])
    assert seen["v"] is True
    seen.clear()
    main(["-v", "demo"])
    assert seen["v"] is True
    seen.clear()
    main(["demo"])
    assert seen["v"] is False


def test_progress_over_stars(caplog, capsys):
    from test_lpi import synthetic_ccd

    image, model, sky, cat, psf, gain = synthetic_ccd(np.random.default_rng(1), n=5)
    with caplog.at_level(logging.INFO, logger="cloudcov"):
        cc.process_ccd(image, model, sky, cat, psf, gain, threads=1, progress=None)
    assert any("LPI: 5/5 stars (100%)" in r.getMessage() for r in caplog.records)
    cc.process_ccd(image, model, sky, cat, psf, gain, threads=1, progress=True)
    err = capsys.readouterr().err
    assert "5/5" in err and "star" in err


def test_demo_without_matplotlib(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["demo", "--out", str(tmp_path), "--threads", "1"]) == 0
    assert "cloudcov[plot]" in capsys.readouterr().err
    assert (tmp_path / "horsehead_lpi.fits").exists() and not (tmp_path / "horsehead_lpi.png").exists()
