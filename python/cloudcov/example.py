"""The embedded real example: a crowdsource run on a DSS Horsehead cutout."""
from __future__ import annotations

import importlib.resources

import numpy as np
from astropy.io import fits
from astropy.table import Table

__all__ = ["example_path", "load_example"]


def example_path():
    """Path of the embedded example file ``cloudcov/data/horsehead_example.fits``.

    Returns
    -------
    pathlib.Path
    """
    return importlib.resources.files("cloudcov") / "data" / "horsehead_example.fits"


def load_example():
    """Load the embedded example as the inputs of :func:`cloudcov.process_ccd`.

    Returns
    -------
    dict
        ``image``, ``model``, ``sky`` (float32 (400, 400), DSS density units used as ADU),
        ``dq`` (int16, 0 = good, 3 = saturated), ``psf`` (float32 (63, 63), unit sum),
        ``catalog`` (astropy Table, crowdsource columns, ``x`` = row), ``gain`` (e-/ADU
        equivalent, float), ``header`` (primary header with the provenance) and
        ``psf_rec`` (numpy structured scalar: crowdsource's ``psf.serialize()`` record of
        the fit, fields ``offset`` (2,), ``stamp`` (2, 2, 63, 63), ``convparam`` (13,),
        ``resparam`` (3, 9, 9); decode it with :class:`cloudcov.psf.CrowdsourcePSF`).

    Notes
    -----
    See ``cloudcov/data/README.md`` for the origin (astropy-data ``HorseHead.fits``, UK Schmidt
    plate SERC-ER via the Digitized Sky Survey) and how the file was made.
    """
    with fits.open(example_path()) as hdul:
        out = {name.lower(): np.asarray(hdul[name].data) for name in ("IMAGE", "MODEL", "SKY", "DQ", "PSF")}
        out["catalog"] = Table(hdul["CAT"].data)
        out["psf_rec"] = np.array(hdul["PSF_REC"].data)[0].copy()
        out["header"] = hdul[0].header.copy()
        out["gain"] = float(hdul[0].header["GAIN"])
    return out
