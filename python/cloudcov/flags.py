"""Quality bits: crowdsource ``flags``, DECam CP data-quality codes, cloudcov ``dnt``, and the
DECaPS2 "OK" cut.

crowdsource stores ``flags`` as int32. Bit ``k`` (``k = 0..8``) is the DECam CP DQ *code* ``k``
at the star's central pixel (crowdsource does ``dq = 2**dq``, so a clean pixel sets bit 0),
bits 20-24 are decam_proc's ``extrabits``, bits 30 and 31 crowdsource_base's ``nodeblend``
and ``sharp``. Bit 31 makes the int32 value negative. Positions off the image get the
sentinel value 999 (crowdsource ``extract_im``).

Decode with ``np.asarray(flags).astype(np.int64) & 0xFFFFFFFF``. Do **not** use
``.view('u4')``: on big-endian FITS data a view reinterprets the raw bytes in native order.
"""
from __future__ import annotations

import re

import numpy as np

__all__ = [
    "CP_DQ_CODES", "CROWDSOURCE_FLAG_BITS", "OFF_IMAGE_FLAGS", "DECAPS_BAD_FLAGS", "DNT_NAMES",
    "flags_uint32", "decode_flags", "flag_names", "decode_dnt", "dnt_names", "decaps_ok",
    "cp_dq_codes", "parse_plver",
]

#: DECam Community Pipeline data-quality codes (PLVER >= 3.5: one integer code per pixel).
CP_DQ_CODES = {
    0: "good", 1: "bad pixel", 2: "no data", 3: "saturated", 4: "bleed trail",
    5: "cosmic ray", 6: "low weight", 7: "difference detection", 8: "streak",
}

#: Named bits of crowdsource's ``flags`` column: name -> bit value.
CROWDSOURCE_FLAG_BITS = {
    "dq_good": 2**0, "dq_bad": 2**1, "dq_nodata": 2**2, "dq_saturated": 2**3,
    "dq_bleed": 2**4, "dq_cosmic_ray": 2**5, "dq_low_weight": 2**6, "dq_diff_detect": 2**7,
    "dq_streak": 2**8,
    "badpix": 2**20, "diffuse": 2**21, "s7unstable": 2**22, "brightstar": 2**23,
    "galaxy": 2**24,
    "nodeblend": 2**30, "sharp": 2**31,
}

#: Value crowdsource's ``extract_im`` writes for positions outside the image.
OFF_IMAGE_FLAGS = 999

#: Default "bad flags" of :func:`decaps_ok`: the DQ codes crowdsource gives zero weight
#: (1-6 and 8; codes 0 and 7 keep their weight), the static bad-pixel mask, and the unstable
#: right half of S7 (the paper's footnote 15 notes that its cut removes S7 detections).
DECAPS_BAD_FLAGS = (2**1 | 2**2 | 2**3 | 2**4 | 2**5 | 2**6 | 2**8
                    | CROWDSOURCE_FLAG_BITS["badpix"] | CROWDSOURCE_FLAG_BITS["s7unstable"])

#: Short names of the ``dnt`` bits (meanings in :data:`cloudcov.perstar.DNT_BITS`).
DNT_NAMES = {
    "few_good": 1, "ring_forced": 2, "guard": 4, "psf_negative": 8, "psf_neg_1e-3": 16,
    "psf_neg_1e-1": 32, "unstable": 64, "not_measured": 128,
}


def flags_uint32(flags):
    """crowdsource ``flags`` as non-negative int64 values of the 32 stored bits.

    Parameters
    ----------
    flags : array_like of int
        crowdsource ``flags`` (int32, any byte order; the sign bit is bit 31 ``sharp``).

    Returns
    -------
    ndarray of int64
        ``flags & 0xFFFFFFFF``, values in ``[0, 2**32)``.

    Raises
    ------
    TypeError
        If ``flags`` is not an integer array.
    """
    a = np.asarray(flags)
    if a.dtype.kind not in "iu":
        raise TypeError(f"flags: expected integers, got dtype {a.dtype}")
    return a.astype(np.int64) & 0xFFFFFFFF


def decode_flags(flags):
    """Split crowdsource ``flags`` into named boolean arrays.

    Parameters
    ----------
    flags : array_like of int
        crowdsource ``flags`` column (int32 with the sign bit, e.g. read from a ``<CCD>_CAT``
        extension; big-endian input is fine).

    Returns
    -------
    dict of str -> ndarray of bool
        One entry per name of :data:`CROWDSOURCE_FLAG_BITS` (``dq_good`` ... ``dq_streak``
        for the CP DQ code at the star's central pixel, ``badpix``, ``diffuse``,
        ``s7unstable``, ``brightstar``, ``galaxy``, ``nodeblend``, ``sharp``), plus
        ``off_image`` (the 999 sentinel) and ``unknown`` (any other bit). Off-image entries
        have every other entry False, since 999 is not a bit pattern.

    Raises
    ------
    TypeError
        If ``flags`` is not an integer array.

    Examples
    --------
    >>> d = decode_flags(np.array([1, 8 | 2**21, -2**31 + 1, 999], dtype=np.int32))
    >>> d["dq_saturated"].tolist(), d["sharp"].tolist(), d["off_image"].tolist()
    ([False, True, False, False], [False, False, True, False], [False, False, False, True])
    """
    u = flags_uint32(flags)
    off = u == OFF_IMAGE_FLAGS
    out = {name: ((u & bit) != 0) & ~off for name, bit in CROWDSOURCE_FLAG_BITS.items()}
    known = sum(CROWDSOURCE_FLAG_BITS.values())
    out["unknown"] = ((u & ~known & 0xFFFFFFFF) != 0) & ~off
    out["off_image"] = off
    return out


def flag_names(value):
    """Names of the crowdsource flag bits set in one ``flags`` value.

    Parameters
    ----------
    value : int
        One ``flags`` value (int32 with the sign bit, or its unsigned equivalent).

    Returns
    -------
    list of str
        Names from :data:`CROWDSOURCE_FLAG_BITS`, ``["off_image"]`` for 999, plus
        ``"bit<k>"`` for unnamed bits.
    """
    u = int(value) & 0xFFFFFFFF
    if u == OFF_IMAGE_FLAGS:
        return ["off_image"]
    names = [name for name, bit in CROWDSOURCE_FLAG_BITS.items() if u & bit]
    known = sum(CROWDSOURCE_FLAG_BITS.values())
    names += [f"bit{k}" for k in range(32) if (u & ~known) & (1 << k)]
    return names


def decode_dnt(dnt):
    """Split cloudcov/CloudCovErr.jl ``dnt`` quality bits into named boolean arrays.

    Parameters
    ----------
    dnt : array_like of int
        ``dnt`` column (int8 in memory, uint8 in cloudcov FITS files, float in some
        CloudCovErr.jl outputs: values must be integral).

    Returns
    -------
    dict of str -> ndarray of bool
        One entry per :data:`DNT_NAMES` key (``few_good`` 1, ``ring_forced`` 2, ``guard`` 4,
        ``psf_negative`` 8, ``psf_neg_1e-3`` 16, ``psf_neg_1e-1`` 32, ``unstable`` 64,
        ``not_measured`` 128 (the int8 sign bit); the meanings are :data:`cloudcov.DNT_BITS`)
        and ``unknown`` (always False: every bit of the byte is named; kept for callers).

    Raises
    ------
    ValueError
        If ``dnt`` holds non-integral or NaN values.
    """
    a = np.asarray(dnt)
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a) & (a == np.round(a))):
            raise ValueError("dnt: expected integral values")
    elif a.dtype.kind not in "iub":
        raise TypeError(f"dnt: expected integers, got dtype {a.dtype}")
    u = a.astype(np.int64) & 0xFF
    out = {name: (u & bit) != 0 for name, bit in DNT_NAMES.items()}
    out["unknown"] = np.zeros(u.shape, bool)
    return out


def dnt_names(value):
    """Names of the ``dnt`` bits set in one value (see :func:`decode_dnt`).

    Parameters
    ----------
    value : int

    Returns
    -------
    list of str
    """
    u = int(value) & 0xFF
    return [name for name, bit in DNT_NAMES.items() if u & bit]


def decaps_ok(table, *, bad_flags=DECAPS_BAD_FLAGS, min_cchi2_per_kcond=0.7, max_rchi2=100.0,
              min_fracflux=0.5):
    """The DECaPS2 "OK" selection of the LPI paper (Saydjari & Finkbeiner 2022, footnote 15).

    A detection is OK when ``dnt == 0``, ``cchi2 / kcond > 0.7``, no bad flags are set (and
    it is not off the image), ``rchi2 < 100`` and ``fracflux > 0.5``.

    Parameters
    ----------
    table : astropy Table, structured array or mapping
        Needs columns ``dnt``, ``cchi2``, ``kcond`` (cloudcov / CloudCovErr.jl) and
        ``flags``, ``rchi2``, ``fracflux`` (crowdsource).
    bad_flags : int, optional
        Bits of ``flags`` that reject a detection (default :data:`DECAPS_BAD_FLAGS`). The
        paper does not list its "bad flags"; the default is the DQ codes crowdsource gives
        zero weight (1-6, 8), ``badpix`` and ``s7unstable``.
    min_cchi2_per_kcond, max_rchi2, min_fracflux : float, optional
        Thresholds (defaults 0.7, 100, 0.5), all strict.

    Returns
    -------
    ndarray of bool
        True for OK detections; NaN values (e.g. ``cchi2`` of an unstable star) fail.

    Raises
    ------
    KeyError
        If a needed column is missing (the message names it).
    """
    def col(name):
        try:
            return np.asarray(table[name])
        except (KeyError, ValueError, IndexError) as exc:
            raise KeyError(f"decaps_ok: missing column {name!r}") from exc

    dnt = col("dnt").astype(np.int64) & 0xFF
    kcond = col("kcond").astype(np.float64)
    cchi2 = col("cchi2").astype(np.float64)
    u = flags_uint32(col("flags"))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(kcond > 0, cchi2 / np.where(kcond > 0, kcond, 1.0), np.nan)
        ok = ((dnt == 0) & (ratio > min_cchi2_per_kcond)
              & ((u & int(bad_flags)) == 0) & (u != OFF_IMAGE_FLAGS)
              & (col("rchi2").astype(np.float64) < max_rchi2)
              & (col("fracflux").astype(np.float64) > min_fracflux))
    return ok


def parse_plver(plver):
    """DECam CP pipeline version string -> tuple of ints (``"V3.6.2"`` -> ``(3, 6, 2)``).

    Parameters
    ----------
    plver : str
        ``PLVER`` card of the CP primary header (``"V4.8.2a"``: letters are dropped).

    Returns
    -------
    tuple of int

    Raises
    ------
    ValueError
        If the string holds no number.

    Notes
    -----
    Replaces crowdsource's ``distutils.LooseVersion`` comparison (distutils is gone in
    Python >= 3.12).
    """
    nums = re.findall(r"\d+", str(plver))
    if not nums:
        raise ValueError(f"PLVER: no version number in {plver!r}")
    return tuple(int(n) for n in nums)


def cp_dq_codes(dq, plver):
    """DECam CP data-quality image as PLVER >= 3.5 integer codes.

    Parameters
    ----------
    dq : (nrow, ncol) ndarray of int
        ``ood`` image.
    plver : str
        ``PLVER`` of the exposure. Before V3.5 the CP wrote a bitmask (1 bad, 2 saturated,
        16 cosmic ray, 64 bleed, 128 difference detection), which is mapped to codes as
        crowdsource's ``read_data`` does (priority 1 > 3 > 4 > 5 > 7).

    Returns
    -------
    ndarray of int32
        Codes 0-8 (:data:`CP_DQ_CODES`); a copy of ``dq`` for recent versions.
    """
    dq = np.asarray(dq)
    if parse_plver(plver) >= (3, 5):
        return dq.astype(np.int32)
    old = dq.astype(np.int64)
    out = np.zeros(dq.shape, np.int32)
    for bit, code in ((2**7, 7), (2**4, 5), (2**6, 4), (2**1, 3), (2**0, 1)):
        out[(old & bit) != 0] = code
    return out
