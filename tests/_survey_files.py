"""A small DECam exposure in the CP + crowdsource layout, made from real images.

:func:`make_exposure` assembles two real legacypipe DECam cutouts (CP ``ooi``/``oow``/``ood``
from ``../shared/data/real``) into one fpack-compressed exposure, runs the real crowdsource
``fit_im`` on each (the approach of ``validation/make_embedded_example.py``: Moffat start,
``fit_linear_static_wing`` with a delta static PSF, 63 px stamps), and writes the catalogue
and model files exactly as crowdsource's ``decam_proc`` lays them out:

* ``raw/c4d_171113_060340_{ooi,oow,ood}_r_ls9.fits.fz``: PRIMARY (the N6 cutout's exposure
  header) + CompImageHDUs ``N6`` (375 x 280, r band, exposure 171113_060340), ``N2``
  (251 x 245, from the z-band exposure 170316_062107: the two cutouts come from different
  exposures, which does not matter for the file layout) and ``N10`` (150 x 150; in the CP files
  but not in the catalogue, as when crowdsource skips a CCD).
* ``cat/c4d_171113_060340_ooi_r_ls9.cat.fits``: PRIMARY + ``<CCD>_HDR`` (GAINCRWD = median
  of im*ivar, SKYCRWD, FWHMCRWD), ``<CCD>_PSF`` (``psf.serialize()``), ``<CCD>_CAT`` (fit_im
  catalogue + ``ra``, ``dec``, ``decapsid``, ``gain``) for N6 and N2.
* ``mod/c4d_171113_060340_ooi_r_ls9.mod.fits``: ``<CCD>_MOD`` and ``<CCD>_SKY`` as
  crowdsource writes them (GZIP_1, quantize_level -4; fixed dither seed here).

Credit: legacypipe test data (DECam Community Pipeline cutouts, NOIRLab).
"""
from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from functools import partial
from pathlib import Path

import numpy as np
import pytest

DATE, FILT, VERS = "171113_060340", "r", "ls9"
STEM = f"c4d_{DATE}_ooi_{FILT}_{VERS}"
CUTOUTS = {  # CCD -> (real file pattern, fit with crowdsource?)
    "N6": ("c4d_171113_060340_{kind}_r_ls9.N6.fits", True),
    "N2": ("c4d_170316_062107_{kind}_z_ls9.N2.fits", True),
    "N10": ("c4d_150411_035242_{kind}_z_v1-N10.fits", False),
}
FIT_CCDS = [c for c, (_, fit) in CUTOUTS.items() if fit]
_STRUCTURAL = ("XTENSION", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "PCOUNT", "GCOUNT", "EXTNAME",
               "SIMPLE", "EXTEND", "CHECKSUM", "DATASUM")
_CACHE = {}


def _clean_header(hdr):
    from astropy.io import fits

    out = fits.Header()
    for card in hdr.cards:
        if card.keyword not in _STRUCTURAL and not card.keyword.startswith("ZNAXIS"):
            out.append(card)
    return out


def _read(path, ext):
    from astropy.io import fits

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(path) as h:
            return np.array(h[ext].data), h[ext].header.copy(), h[0].header.copy()


def _fit(im, ivar, dq):
    """Real crowdsource fit: (catalogue, model, sky, psf)."""
    import crowdsource.psf as psfmod
    from astropy.io import fits
    from crowdsource import crowdsource_base as cb

    tmp = Path(tempfile.mkdtemp(prefix="cloudcov_cs_static_"))
    old = os.environ.get("DECAM_DIR")
    state = np.random.get_state()
    try:
        (tmp / "data" / "psfs").mkdir(parents=True)
        st = np.zeros((63, 63), "f4")
        st[31, 31] = 1
        fits.writeto(tmp / "data" / "psfs" / "psf_delta_deconv_mod.fits.gz", st)
        os.environ["DECAM_DIR"] = str(tmp)
        np.random.seed(0)
        dq_cs = 2 ** dq.astype("i8")                 # crowdsource: dq = 2**code
        wt = np.sqrt(np.where((dq_cs & ~(1 | 128)) != 0, 0, ivar)).astype("f4")
        psf0 = psfmod.SimplePSF(psfmod.moffat_psf(4.0, beta=3.0, stampsz=63, deriv=False))
        psf0.fitfun = partial(psfmod.fit_linear_static_wing, filter="delta", pixsz=9)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cat, model, sky, psf = cb.fit_im(im, psf0, weight=wt, dq=dq_cs, psfderiv=True,
                                             refit_psf=True, threshold=5, ntilex=1, ntiley=1,
                                             verbose=False)
    finally:
        np.random.set_state(state)
        if old is None:
            os.environ.pop("DECAM_DIR", None)
        else:
            os.environ["DECAM_DIR"] = old
        shutil.rmtree(tmp, ignore_errors=True)
    return cat, np.asarray(model, "f4"), np.asarray(sky, "f4"), psf, wt


def make_exposure(real_dir, root):
    """Write the exposure under ``root``; returns a dict of paths and names (see module doc)."""
    from astropy.io import fits
    from astropy.wcs import WCS
    from numpy.lib.recfunctions import rec_append_fields

    root = Path(root)
    (root / "raw").mkdir(parents=True, exist_ok=True)
    (root / "cat").mkdir(exist_ok=True)
    (root / "mod").mkdir(exist_ok=True)
    data = {}
    for ccd, (pattern, _) in CUTOUTS.items():
        data[ccd] = {kind: _read(real_dir / pattern.format(kind=kind), ccd)
                     for kind in ("ooi", "oow", "ood")}
    prim = _clean_header(data["N6"]["ooi"][2])
    files = {}
    for kind in ("ooi", "oow", "ood"):
        hdus = [fits.PrimaryHDU(header=prim)]
        for ccd in CUTOUTS:
            arr, hdr, _ = data[ccd][kind]
            hdr = _clean_header(hdr)
            if kind == "ood":
                hdus.append(fits.CompImageHDU(arr.astype("i4"), hdr, name=ccd,
                                              compression_type="RICE_1"))
            else:
                hdus.append(fits.CompImageHDU(arr.astype("f4"), hdr, name=ccd,
                                              compression_type="GZIP_2", quantize_level=0))
        files[kind] = root / "raw" / f"c4d_{DATE}_{kind}_{FILT}_{VERS}.fits.fz"
        fits.HDUList(hdus).writeto(files[kind], overwrite=True)
    cat_hdus = [fits.PrimaryHDU(header=prim)]
    mod_hdus = [fits.PrimaryHDU(header=prim)]
    compkw = dict(compression_type="GZIP_1", quantize_method=1, quantize_level=-4,
                  dither_seed=1)
    nstars = {}
    expnum = int(prim["EXPNUM"])
    for ccd in FIT_CCDS:
        im = data[ccd]["ooi"][0].astype("f4")
        ivar = data[ccd]["oow"][0].astype("f4")
        dq = data[ccd]["ood"][0]
        hdr = _clean_header(data[ccd]["ooi"][1])
        cat, model, sky, psf, wt = _fit(im, ivar, dq)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ra, dec = WCS(hdr).all_pix2world(cat["y"], cat["x"], 0.0)
        decapsid = (expnum * 2**39 + int(hdr["CCDNUM"]) * 2**32
                    + np.arange(len(cat), dtype="i8"))
        good = wt > 0
        gaincrwd = float(np.nanmedian((im * wt**2)[good]))
        gain = np.full(len(cat), gaincrwd, "f4")
        cat = rec_append_fields(cat, ["ra", "dec", "decapsid", "gain"], [ra, dec, decapsid, gain])
        h = hdr.copy()
        h["GAINCRWD"] = gaincrwd
        h["SKYCRWD"] = float(np.nanmedian(sky[good]))
        h["FWHMCRWD"] = float(np.nanmedian(cat["fwhm"]))
        cat_hdus.append(fits.ImageHDU(header=h, name=f"{ccd}_HDR"))
        cat_hdus.append(fits.BinTableHDU(psf.serialize(), name=f"{ccd}_PSF"))
        cat_hdus.append(fits.BinTableHDU(cat, name=f"{ccd}_CAT"))
        mod_hdus.append(fits.CompImageHDU(model, hdr, name=f"{ccd}_MOD", tile_shape=model.shape,
                                          **compkw))
        mod_hdus.append(fits.CompImageHDU(sky, hdr, name=f"{ccd}_SKY", tile_shape=sky.shape,
                                          **compkw))
        nstars[ccd] = len(cat)
    files["cat"] = root / "cat" / f"{STEM}.cat.fits"
    files["mod"] = root / "mod" / f"{STEM}.mod.fits"
    fits.HDUList(cat_hdus).writeto(files["cat"], overwrite=True)
    fits.HDUList(mod_hdus).writeto(files["mod"], overwrite=True)
    return dict(root=root, base=str(root / "raw" / "c4d_"), basecat=str(root), date=DATE,
                filt=FILT, vers=VERS, ccds=list(FIT_CCDS), nstars=nstars,
                files={k: str(v) for k, v in files.items()})


@pytest.fixture(scope="session")
def survey_exposure(real_dir, tmp_path_factory):
    """The generated exposure (shared, read-only: copy it before corrupting files)."""
    pytest.importorskip("crowdsource.crowdsource_base",
                        reason="needs crowdsourcephoto (pip install --no-deps crowdsourcephoto)")
    if "exp" not in _CACHE:
        _CACHE["exp"] = make_exposure(real_dir, tmp_path_factory.mktemp("survey_exposure"))
    return _CACHE["exp"]


def copy_exposure(exp, dest):
    """Copy the generated exposure to ``dest`` (for tests that modify files)."""
    dest = Path(dest)
    shutil.copytree(exp["root"], dest, dirs_exist_ok=True)
    out = dict(exp, root=dest, base=str(dest / "raw" / "c4d_"), basecat=str(dest))
    out["files"] = {k: str(dest / Path(v).relative_to(exp["root"])) for k, v in exp["files"].items()}
    return out


#: ``python -c`` program of :func:`run_cli_killed`: the cloudcov CLI with ``os.replace``
#: wrapped so that the process SIGKILLs itself just before the N-th rename onto a path
#: matching a pattern (test-only: the library has no kill hook).
_KILL_PROGRAM = r"""
import fnmatch, os, signal, sys
pattern, nth = sys.argv[1], int(sys.argv[2])
real_replace, seen = os.replace, [0]

def replace(src, dst, *args, **kwargs):
    if fnmatch.fnmatch(os.fspath(dst), pattern):
        seen[0] += 1
        if seen[0] == nth:
            sys.stdout.flush(); sys.stderr.flush()
            os.kill(os.getpid(), signal.SIGKILL)
    return real_replace(src, dst, *args, **kwargs)

os.replace = replace
from cloudcov.cli import main
sys.exit(main(sys.argv[3:]))
"""


def run_cli_killed(argv, pattern, nth=1, timeout=300):
    """Run ``cloudcov <argv>`` in a subprocess killed (SIGKILL) just before its ``nth``
    ``os.replace`` onto a path matching the glob ``pattern`` (e.g. ``"*.parts/*"``: the
    rename of a finished part file; the output path: the final rename of the assembly).

    Returns
    -------
    subprocess.CompletedProcess
    """
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-c", _KILL_PROGRAM, pattern, str(nth), *argv],
                          capture_output=True, text=True, timeout=timeout)


def assert_same_outputs(a, b):
    """Two ``read_output`` dicts hold the same CCDs, columns, dtypes, values and parameters."""
    assert list(a) == list(b)
    for ccd in a:
        assert a[ccd].colnames == b[ccd].colnames
        for c in a[ccd].colnames:
            assert a[ccd][c].dtype == b[ccd][c].dtype, c
            np.testing.assert_array_equal(a[ccd][c], b[ccd][c], err_msg=f"{ccd} {c}")
        assert a[ccd].meta["params"] == b[ccd].meta["params"]


# --------------------------------------------------------------------------------------
# a simulated survey: many small exposures from the real cutouts and the embedded example
# --------------------------------------------------------------------------------------

EXAMPLE_CCD = "S1"       # the embedded Horsehead example, written as one more "CCD"
# exposure 0 runs every CCD; the others cycle through these single-CCD lists (tiny tasks that
# still differ in size: N2 16 stars, S1 49, N6 71)
SURVEY_CCDLISTS = ("N2", "S1", "N6", "N2", "S1")


def survey_date(k):
    """Date-time of the k-th simulated exposure (k < 3600): ``171113_06MMSS``."""
    return f"171113_06{k // 60:02d}{k % 60:02d}"


def _append_hdus(path, hdus):
    """Rewrite ``path`` with ``hdus`` appended; stored HDUs are copied as stored (compressed
    tiles stay bit-identical, never re-quantised)."""
    from astropy.io import fits

    with fits.open(path, disable_image_compression=True) as h:
        fits.HDUList([x for x in h] + list(hdus)).writeto(f"{path}.new")
    os.replace(f"{path}.new", path)


def _example_exposure_files(root, prim):
    """CP + crowdsource files of an exposure holding only the embedded example as ``S1``."""
    from astropy.io import fits

    from cloudcov.example import load_example

    root = Path(root)
    for sub in ("raw", "cat", "mod"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    files = {kind: root / "raw" / f"c4d_{DATE}_{kind}_{FILT}_{VERS}.fits.fz"
             for kind in ("ooi", "oow", "ood")}
    files["cat"] = root / "cat" / f"{STEM}.cat.fits"
    files["mod"] = root / "mod" / f"{STEM}.mod.fits"
    for path in files.values():
        fits.HDUList([fits.PrimaryHDU(header=prim)]).writeto(path, overwrite=True)
    return files


def _example_hdus():
    """``{kind: [HDU, ...]}`` of the embedded example as CCD ``S1`` in the CP/crowdsource
    layout (ivar from the gain: (image + sky floor) / gain is the variance in ADU^2)."""
    from astropy.io import fits

    from cloudcov.example import load_example

    ex = load_example()
    ccd = EXAMPLE_CCD
    hdr = fits.Header({"CCDNAME": ccd, "EXTNAME": ccd})
    ivar = (ex["gain"] / np.maximum(ex["image"], 1.0)).astype("f4")
    comp = dict(compression_type="GZIP_2", quantize_level=0)
    h = fits.Header({"GAINCRWD": ex["gain"], "SKYCRWD": float(np.median(ex["sky"])),
                     "FWHMCRWD": float(np.median(ex["catalog"]["fwhm"]))})
    return {
        "ooi": [fits.CompImageHDU(ex["image"].astype("f4"), hdr, name=ccd, **comp)],
        "oow": [fits.CompImageHDU(ivar, hdr, name=ccd, **comp)],
        "ood": [fits.CompImageHDU(ex["dq"].astype("i4"), hdr, name=ccd,
                                  compression_type="RICE_1")],
        "cat": [fits.ImageHDU(header=h, name=f"{ccd}_HDR"),
                fits.BinTableHDU(np.atleast_1d(ex["psf_rec"]), name=f"{ccd}_PSF"),
                fits.BinTableHDU(ex["catalog"], name=f"{ccd}_CAT")],
        "mod": [fits.CompImageHDU(ex["model"].astype("f4"), name=f"{ccd}_MOD", **comp),
                fits.CompImageHDU(ex["sky"].astype("f4"), name=f"{ccd}_SKY", **comp)],
    }


def make_survey(root, n_exposures=20, exposure=None):
    """A simulated survey of ``n_exposures`` small exposures and its manifest.

    One template exposure holds the embedded Horsehead example as CCD ``S1`` and, when
    ``exposure`` (the :func:`make_exposure` result: real DECam cutouts fitted by crowdsource)
    is given, its CCDs ``N6`` and ``N2`` (and ``N10`` without catalogue). Exposure ``k`` has
    the date :func:`survey_date` ``(k)`` (so its own seed) and hard links to the template's
    files under its own names; exposure 0 runs every CCD and the others' ``ccdlist``
    cycles through :data:`SURVEY_CCDLISTS` (restricted to the CCDs present).

    Returns
    -------
    dict
        ``manifest`` (ECSV path), ``csv`` (the same manifest as CSV), ``rows`` (list of dicts),
        ``ccds`` (CCD names of the template), ``root``.
    """
    from astropy.io import fits
    from astropy.table import Table

    root = Path(root)
    tmpl = root / "template"
    if exposure is not None:
        shutil.copytree(exposure["root"], tmpl)
        files = {k: tmpl / Path(v).relative_to(exposure["root"]) for k, v in exposure["files"].items()}
        ccds = list(exposure["ccds"]) + [EXAMPLE_CCD]
    else:
        with fits.open(Path(__file__).resolve().parents[1] / "python" / "cloudcov" / "data"
                       / "horsehead_example.fits") as h:
            prim = _clean_header(h[0].header)
        files = _example_exposure_files(tmpl, prim)
        ccds = [EXAMPLE_CCD]
    for kind, hdus in _example_hdus().items():
        _append_hdus(files[kind], hdus)
    rows = []
    for k in range(n_exposures):
        date = survey_date(k)
        for kind, src in files.items():
            dst = root / src.relative_to(tmpl).as_posix().replace(DATE, date)
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(src, dst)
            except OSError:
                shutil.copyfile(src, dst)
        want = "" if k == 0 else SURVEY_CCDLISTS[(k - 1) % len(SURVEY_CCDLISTS)]
        ccdlist = " ".join(c for c in want.split() if c in ccds)
        if want and not ccdlist:
            ccdlist = EXAMPLE_CCD
        rows.append(dict(base=str(root / "raw") + os.sep, date=date, filt=FILT, vers=VERS,
                         basecat=str(root), ccdlist=ccdlist))
    t = Table(rows=[[r[c] for c in ("base", "date", "filt", "vers", "basecat", "ccdlist")]
                    for r in rows], names=("base", "date", "filt", "vers", "basecat", "ccdlist"),
              dtype=[str] * 6)
    t.write(root / "manifest.ecsv", format="ascii.ecsv", overwrite=True)
    t.write(root / "manifest.csv", format="ascii.csv", overwrite=True)
    return dict(manifest=root / "manifest.ecsv", csv=root / "manifest.csv", rows=rows,
                ccds=ccds, root=root)
