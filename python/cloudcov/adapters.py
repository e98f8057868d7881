"""Inputs of :func:`cloudcov.process_ccd` from other photometry packages (photutils)."""
from __future__ import annotations

import numpy as np

from ._validate import as_float, as_image
from .psf import ModelPSF

__all__ = ["from_photutils"]


def _plain(a, name):
    """Quantity / NDData / masked array -> float64 ndarray (units dropped)."""
    a = getattr(a, "data", a) if type(a).__name__ in ("NDData", "CCDData") else a
    a = getattr(a, "value", a)
    if np.ma.isMaskedArray(a):
        a = np.ma.filled(a.astype(np.float64), np.nan)
    return as_image(name, np.asarray(a, dtype=np.float64), dtype=np.float64, allow_nonfinite=True)


def from_photutils(image, result, psf_model=None, sky=0.0, *, gain, mask=None,
                   model_shape=None):
    """Turn photutils PSF photometry into the inputs of :func:`cloudcov.process_ccd`.

    Parameters
    ----------
    image : (nrow, ncol) ndarray, Quantity or NDData
        The image in ADU, sky included: the photometry was run on ``image - sky`` (the
        usual photutils workflow: ``data = image - Background2D(...).background``).
    result : photutils.psf.PSFPhotometry, IterativePSFPhotometry or Table
        A photometry object that has been run (its ``results`` table and
        ``make_model_image`` are used), or its results table (``x_fit``, ``y_fit``,
        ``flux_fit``; then ``psf_model`` is required and the model image is made with
        ``photutils.datasets.make_model_image``).
    psf_model : astropy.modeling.Model, optional
        The PSF model that was fitted (photutils ``ImagePSF``, ``CircularGaussianPRF``, ...);
        default ``result.psf_model``. It renders the stars of the model image and becomes
        the ``psf`` (:class:`cloudcov.psf.ModelPSF`, flux 1 = the unit the fluxes assume).
    sky : float, (nrow, ncol) ndarray or photutils Background2D, optional
        The background that was subtracted before the photometry (its ``background`` for a
        ``Background2D``), in ADU. Default 0 for an image whose sky was never subtracted;
        the sky also sets the Poisson noise added to infilled pixels (``sky / gain``), so a
        sky-subtracted image with ``sky=0`` gets none.
    gain : float
        Gain in e-/ADU.
    mask : (nrow, ncol) bool ndarray, optional
        Pixels excluded from the photometry (``True`` = bad), passed on as ``dq``.
    model_shape : int or (int, int), optional
        Size of the region rendered around each star in the model image (photutils
        ``psf_shape``/``model_shape``; default: photutils' choice, the model's bounding box
        or the fit shape). Make it cover the PSF wings of bright stars, or they remain in the
        residual.

    Returns
    -------
    dict
        ``image``, ``model`` (= ``sky`` + the stars rendered by photutils), ``sky``
        (float64 ``(nrow, ncol)`` arrays), ``catalog`` (a copy of the results table;
        ``x_fit``/``y_fit``/``flux_fit`` imply ``convention="photutils"``: x = column),
        ``psf`` (:class:`cloudcov.psf.ModelPSF`), ``gain`` and ``dq`` (uint8 or None):
        ``cloudcov.process_ccd(**inputs, thr=...)``. Rows whose fit failed (non-finite
        ``flux_fit``) are kept and not measured (``dnt`` bit 128).

    Raises
    ------
    TypeError
        ``result`` is neither a photometry object nor a table, or ``psf_model`` is not an
        astropy model.
    ValueError
        The photometry object has not been run, ``psf_model`` is missing for a table, or
        array shapes differ.
    ImportError
        photutils is not installed (``pip install "cloudcov[photutils]"``).

    Examples
    --------
    >>> from photutils.psf import CircularGaussianPRF, PSFPhotometry  # doctest: +SKIP
    >>> phot = PSFPhotometry(CircularGaussianPRF(fwhm=3.0), (7, 7), finder=finder)  # doctest: +SKIP
    >>> phot(image - bkg.background)  # doctest: +SKIP
    >>> inputs = from_photutils(image, phot, sky=bkg, gain=4.0)  # doctest: +SKIP
    >>> out = cloudcov.process_ccd(**inputs, thr="auto")  # doctest: +SKIP

    Notes
    -----
    The residual cloudcov analyses is ``model - image`` = ``stars - (image - sky)``, i.e.
    minus photutils' ``make_residual_image``. The results' ``local_bkg`` is not added to the
    model: put any background in ``sky``.
    """
    from astropy.modeling import Model
    from astropy.table import Table

    image = _plain(image, "image")
    shape = image.shape
    if isinstance(result, Table):
        table = result
        if psf_model is None:
            raise ValueError("psf_model: required when result is a table (pass the model that "
                             "was fitted)")
        if not isinstance(psf_model, Model):
            raise TypeError(f"psf_model: expected an astropy/photutils model, got "
                            f"{type(psf_model).__name__}")
        from photutils.datasets import make_model_image

        mp = ModelPSF(psf_model)
        pmap = {mp.x_name: "x_fit", mp.y_name: "y_fit"}
        if mp.flux_name is not None:
            pmap[mp.flux_name] = "flux_fit"
        stars = make_model_image(shape, psf_model, _finite_rows(table), x_name=mp.x_name,
                                 y_name=mp.y_name, params_map=pmap, model_shape=model_shape)
    elif hasattr(result, "make_model_image") and hasattr(result, "psf_model"):
        table = getattr(result, "results", None)
        if table is None:
            raise ValueError("result: the photometry object has no results; call it on the "
                             "sky-subtracted image first")
        psf_model = result.psf_model if psf_model is None else psf_model
        psf_shape = (model_shape, model_shape) if isinstance(model_shape, int) else model_shape
        stars = result.make_model_image(shape, psf_shape=psf_shape)
    else:
        raise TypeError(f"result: expected a photutils PSFPhotometry/IterativePSFPhotometry "
                        f"that has been run, or its results table, got {type(result).__name__}")
    stars = _plain(stars, "model")
    bkg = getattr(sky, "background", sky)
    if np.ndim(getattr(bkg, "value", bkg)) == 0:
        skyarr = np.full(shape, as_float("sky", getattr(bkg, "value", bkg)))
    else:
        skyarr = _plain(bkg, "sky")
        if skyarr.shape != shape:
            raise ValueError(f"sky.shape {skyarr.shape} != image.shape {shape}")
    dq = None
    if mask is not None:
        mask = np.asarray(mask, bool)
        if mask.shape != shape:
            raise ValueError(f"mask.shape {mask.shape} != image.shape {shape}")
        dq = mask.astype(np.uint8)
    catalog = Table(table, copy=True)
    return dict(image=image, model=skyarr + stars, sky=skyarr, catalog=catalog,
                psf=ModelPSF(psf_model), gain=as_float("gain", gain), dq=dq)


def _finite_rows(table):
    """The rows of a results table whose fitted position and flux are finite."""
    ok = np.ones(len(table), bool)
    for name in ("x_fit", "y_fit", "flux_fit"):
        col = table[name]
        v = np.ma.filled(np.ma.asarray(getattr(col, "value", col), dtype=np.float64), np.nan)
        ok &= np.isfinite(v)
    return table[ok]
