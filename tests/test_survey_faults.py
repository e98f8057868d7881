"""Faults a hostile user finds in the exposure runner and the file layer (issue 8 item 4,
issue 13 item 7): per-CCD errors of any kind, reruns that must not lose data, corrupt and
truncated outputs on resume, concurrent runs, a full disk, a symlinked part folder, stale
temporaries, and input files whose headers lie."""
import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from _survey_files import (_KILL_PROGRAM, assert_same_outputs, copy_exposure,  # noqa: F401
                           run_cli_killed, survey_exposure)
from cloudcov.cli import main
from cloudcov.io import read_output, verify_ccd
from cloudcov.io.locking import lock_path

FAST = ["--Np", "9", "--wx", "21", "--threads", "1"]
OUT_NAME = "c4d_171113_060340_ooi_r_ls9.cat.cer"


def _args(exp, out, *extra):
    return ["exposure", exp["base"], exp["date"], exp["filt"], exp["vers"], exp["basecat"],
            "--out", str(out), *FAST, *extra]


def _ccd_args(exp, ccd, out, *extra, cat=None, ooi=None):
    f = exp["files"]
    return ["ccd", ccd, "--ooi", ooi or f["ooi"], "--ood", f["ood"], "--cat", cat or f["cat"],
            "--mod", f["mod"], "--out", str(out), *FAST, *extra]


def _sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def ref(survey_exposure, tmp_path_factory):
    """Uninterrupted FITS and HDF5 runs."""
    out = tmp_path_factory.mktemp("faults_ref")
    assert main(_args(survey_exposure, out)) == 0
    assert main(_args(survey_exposure, out, "--format", "hdf5")) == 0
    return {"fits": out / f"{OUT_NAME}.fits", "hdf5": out / f"{OUT_NAME}.h5"}


def _patch_card(path, ext, key, value):
    """Rewrite one header card of ``ext`` in place, bytes elsewhere untouched (a lying header)."""
    with fits.open(path) as h:
        i = h.index_of(ext)
        info = h.fileinfo(i)
    raw = bytearray(Path(path).read_bytes())
    start, stop = info["hdrLoc"], info["datLoc"]
    for k in range(start, stop, 80):
        if raw[k:k + 8].decode().rstrip() == key:
            raw[k:k + 80] = fits.Card(key, value).image.encode()
            Path(path).write_bytes(bytes(raw))
            return
    raise KeyError(key)


def _flip_data_byte(path, ext, offset=100):
    with fits.open(path) as h:
        loc = h.fileinfo(h.index_of(ext))["datLoc"]
    raw = bytearray(Path(path).read_bytes())
    raw[loc + offset] ^= 0xFF
    Path(path).write_bytes(bytes(raw))


def _break_n2(exp):
    """Drop N2 from the ooi file (the N2 CCD then fails with 'extension not found')."""
    p = exp["files"]["ooi"]
    with fits.open(p, disable_image_compression=True) as h:
        fits.HDUList([x for x in h if x.name != "N2"]).writeto(p + ".new")
    os.replace(p + ".new", p)


# ---------------------------------------------------------------------------------------
# per-CCD errors of any kind
# ---------------------------------------------------------------------------------------

def test_memory_error_in_one_ccd_goes_on(survey_exposure, ref, tmp_path, monkeypatch, capsys):
    import cloudcov.lpi

    real = cloudcov.lpi.process_ccd

    def fake(image, *args, **kwargs):
        if np.shape(image) == (375, 280):           # N6
            raise MemoryError("Unable to allocate 6.3 GiB for an array")
        return real(image, *args, **kwargs)

    monkeypatch.setattr(cloudcov.lpi, "process_ccd", fake)
    assert main(_args(survey_exposure, tmp_path)) == 1
    err = capsys.readouterr().err
    assert "FAILED N6: MemoryError: Unable to allocate 6.3 GiB" in err
    got = read_output(tmp_path / f"{OUT_NAME}.fits")
    assert list(got) == ["N2"]                       # N2 still ran after N6's MemoryError
    np.testing.assert_array_equal(got["N2"]["cflux"], read_output(ref["fits"], "N2")["cflux"])


# ---------------------------------------------------------------------------------------
# reruns never lose data; an existing output needs --resume or --overwrite
# ---------------------------------------------------------------------------------------

def test_rerun_whose_ccd_fails_keeps_previous_output(survey_exposure, ref, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    final = out / f"{OUT_NAME}.fits"
    shutil.copy(ref["fits"], final)
    before = _sha(final)
    exp = copy_exposure(survey_exposure, tmp_path / "in")
    _break_n2(exp)
    # no flag: refused at once, nothing computed
    assert main(_args(exp, out)) == 1
    assert "output exists; pass --resume" in capsys.readouterr().err
    assert _sha(final) == before
    # --overwrite with N2 failing: the file would lose N2, so it is kept byte-identical
    assert main(_args(exp, out, "--overwrite")) == 1
    err = capsys.readouterr().err
    assert "FAILED N2" in err and "OUTPUT NOT WRITTEN" in err and "would lack N2" in err
    assert _sha(final) == before
    part = out / f"{OUT_NAME}.fits.parts" / "N6.fits"
    assert verify_ccd(part, "N6") is None                   # this run's N6 is kept for resume
    # repaired input: --resume completes, equal to the uninterrupted run
    exp = copy_exposure(survey_exposure, tmp_path / "in")
    assert main(_args(exp, out, "--resume")) == 0
    assert_same_outputs(read_output(final), read_output(ref["fits"]))
    # --overwrite of a complete output with a complete run replaces it
    assert main(_args(exp, out, "--overwrite", "--thr", "25")) == 0
    assert {t.meta["params"]["thr"] for t in read_output(final).values()} == {25.0}


def test_ccd_command_existing_output_and_format(survey_exposure, ref, tmp_path, capsys):
    h5 = tmp_path / "n6.h5"
    assert main(_ccd_args(survey_exposure, "N6", h5)) == 0         # format from the suffix
    with open(h5, "rb") as f:
        assert f.read(8) == b"\x89HDF\r\n\x1a\n"
    before = _sha(h5)
    assert main(_ccd_args(survey_exposure, "N6", h5, "--thr", "30")) == 1
    assert "output exists" in capsys.readouterr().err and _sha(h5) == before
    assert main(_ccd_args(survey_exposure, "N6", tmp_path / "x.fits", "--format", "hdf5")) == 1
    assert re.search(r"'hdf5' does not match the output name .*x\.fits",
                     capsys.readouterr().err)
    assert not (tmp_path / "x.fits").exists()
    assert main(_ccd_args(survey_exposure, "N6", h5, "--resume")) == 0   # done: kept
    assert _sha(h5) == before
    assert_same_outputs({"N6": read_output(h5, "N6")}, {"N6": read_output(ref["fits"], "N6")})


# ---------------------------------------------------------------------------------------
# --resume verifies what it keeps
# ---------------------------------------------------------------------------------------

def test_resume_recomputes_flipped_byte_fits(survey_exposure, ref, tmp_path, caplog, capsys):
    final = tmp_path / f"{OUT_NAME}.fits"
    shutil.copy(ref["fits"], final)
    _flip_data_byte(final, "N6_CAT")
    assert "DATASUM" in verify_ccd(final, "N6") and verify_ccd(final, "N2") is None
    caplog.set_level("INFO", logger="cloudcov")
    assert main(_args(survey_exposure, tmp_path, "--resume")) == 0
    assert re.search(r"N6: in \S+ but fails verification \(DATASUM verification failed",
                     caplog.text)
    assert "recomputed N6" in capsys.readouterr().out
    assert "1 CCDs computed, 1 already done" in caplog.text
    assert_same_outputs(read_output(final), read_output(ref["fits"]))
    assert verify_ccd(final, "N6") is None


def test_resume_recomputes_flipped_byte_hdf5(survey_exposure, ref, tmp_path, caplog):
    final = tmp_path / f"{OUT_NAME}.h5"
    shutil.copy(ref["hdf5"], final)
    with h5py.File(final, "r") as f:
        off = f["N2"].id.get_offset()
        if off is None:                             # chunked: first chunk's address
            off = f["N2"].id.get_chunk_info(0).byte_offset
    raw = bytearray(final.read_bytes())
    raw[off + 40] ^= 0xFF
    final.write_bytes(bytes(raw))
    assert verify_ccd(final, "N2") is not None and verify_ccd(final, "N6") is None
    caplog.set_level("INFO", logger="cloudcov")
    assert main(_args(survey_exposure, tmp_path, "--resume", "--format", "hdf5")) == 0
    assert "N2: in" in caplog.text and "fails verification" in caplog.text
    assert_same_outputs(read_output(final), read_output(ref["hdf5"]))


def test_resume_recomputes_truncated_part(survey_exposure, ref, tmp_path, caplog):
    out = tmp_path.resolve()
    proc = run_cli_killed(_args(survey_exposure, out), str(out / "*.parts" / "*"), 2)
    assert proc.returncode == -9, proc.stderr               # killed before N2's part rename
    part = out / f"{OUT_NAME}.fits.parts" / "N6.fits"
    raw = part.read_bytes()
    part.write_bytes(raw[:len(raw) - 3000])                  # truncated N6 part
    caplog.set_level("INFO", logger="cloudcov")
    assert main(_args(survey_exposure, out, "--resume")) == 0   # no TypeError traceback
    assert re.search(r"N6: earlier part file fails verification \(file truncated", caplog.text)
    assert "removed a stale temporary file N2.fits." in caplog.text
    assert_same_outputs(read_output(out / f"{OUT_NAME}.fits"), read_output(ref["fits"]))
    assert not (out / f"{OUT_NAME}.fits.parts").exists()


def test_resume_removes_temporary_of_killed_assembly(survey_exposure, ref, tmp_path, caplog):
    out = tmp_path.resolve()
    final = out / f"{OUT_NAME}.h5"
    proc = run_cli_killed(_args(survey_exposure, out, "--format", "hdf5"), str(final), 1)
    assert proc.returncode == -9, proc.stderr               # killed at the final rename
    stale = list(out.glob(f"{OUT_NAME}.h5.*.tmp"))
    assert len(stale) == 1 and not final.exists()
    caplog.set_level("INFO", logger="cloudcov")
    assert main(_args(survey_exposure, out, "--format", "hdf5", "--resume")) == 0
    assert f"removed a stale temporary file {stale[0].name}" in caplog.text
    assert not list(out.glob("*.tmp")) and "2 already done" in caplog.text
    assert_same_outputs(read_output(final), read_output(ref["hdf5"]))


def test_resume_refuses_symlinked_part_folder(survey_exposure, tmp_path, capsys):
    victim = tmp_path / "victim"
    victim.mkdir()
    keep = {"N6.fits": b"precious", "N2.fits.abc123.tmp": b"also precious"}
    for name, data in keep.items():
        (victim / name).write_bytes(data)
    out = tmp_path / "out"
    out.mkdir()
    (out / f"{OUT_NAME}.fits.parts").symlink_to(victim, target_is_directory=True)
    for flag in ("--resume", "--overwrite"):
        assert main(_args(survey_exposure, out, flag)) == 1
        assert "symbolic link" in capsys.readouterr().err
        assert {p.name: p.read_bytes() for p in victim.iterdir()} == keep
    assert not (out / f"{OUT_NAME}.fits").exists()


# ---------------------------------------------------------------------------------------
# two runs on one output
# ---------------------------------------------------------------------------------------

# the CLI, paused at its first part-file rename until a release file appears
_PAUSE_PROGRAM = _KILL_PROGRAM.replace(
    "os.kill(os.getpid(), signal.SIGKILL)",
    "open(os.environ['PAUSED'], 'w').close()\n"
    "            while not os.path.exists(os.environ['RELEASE']): __import__('time').sleep(0.05)")


def test_concurrent_runs_second_refused_naming_holder(survey_exposure, ref, tmp_path):
    out = tmp_path.resolve()
    paused, release = tmp_path / "paused", tmp_path / "release"
    env = dict(os.environ, PAUSED=str(paused), RELEASE=str(release))
    first = subprocess.Popen([sys.executable, "-c", _PAUSE_PROGRAM, str(out / "*.parts" / "*"),
                              "1", *_args(survey_exposure, out, "--thr", "20")],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        t0 = time.monotonic()
        while not paused.exists():
            assert first.poll() is None, first.communicate()
            assert time.monotonic() - t0 < 120, "first run never reached its first part"
            time.sleep(0.05)
        holder = json.loads(lock_path(out / f"{OUT_NAME}.fits").read_text())
        assert holder["pid"] == first.pid
        t0 = time.monotonic()
        second = subprocess.run([sys.executable, "-m", "cloudcov",
                                 *_args(survey_exposure, out, "--thr", "30", "--overwrite")],
                                capture_output=True, text=True, timeout=120)
        assert second.returncode == 1
        assert f"output is locked by pid {first.pid}" in second.stderr
        assert "cloudcov" in second.stderr and "Traceback" not in second.stderr
        # refused before computing anything (import time dominates)
        assert "CCD(s) computed" not in second.stdout
    finally:
        release.touch()
        stdout, stderr = first.communicate(timeout=120)
    assert first.returncode == 0, stderr
    got = read_output(out / f"{OUT_NAME}.fits")
    assert {t.meta["params"]["thr"] for t in got.values()} == {20.0}   # not mixed
    assert_same_outputs(got, read_output(ref["fits"]))


# ---------------------------------------------------------------------------------------
# a full disk
# ---------------------------------------------------------------------------------------

@contextlib.contextmanager
def _small_filesystem(where, size):
    """A real tmpfs of ``size`` mounted at ``where`` (root only), or None when not possible."""
    where.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        yield None
        return
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                       capture_output=True)
    if r.returncode != 0:
        yield None
        return
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


@pytest.mark.parametrize("fmt,size", [("hdf5", 40), ("hdf5", 88), ("fits", 88)])
def test_full_disk_fails_cleanly(survey_exposure, ref, tmp_path, monkeypatch, capsys, fmt, size):
    sfx = ".h5" if fmt == "hdf5" else ".fits"
    # 40 kB: the first part file does not fit; 88 kB: the parts fit, the assembly does not
    with _small_filesystem(tmp_path / "disk", f"{size}k") as disk:
        if disk is None:            # not root: a disk that fills up after 80 kB of writes
            disk = tmp_path / "disk"
            import builtins

            real_open, written = builtins.open, [0]

            class Full:
                def __init__(self, f):
                    self.f = f

                def write(self, b):
                    written[0] += len(b)
                    if written[0] > (size - 8) * 1000:
                        raise OSError(errno.ENOSPC, "No space left on device")
                    return self.f.write(b)

                def __getattr__(self, k):
                    return getattr(self.f, k)

                def __enter__(self):
                    return self

                def __exit__(self, *a):
                    return self.f.__exit__(*a)

            def fake_open(p, mode="r", *a, **k):
                f = real_open(p, mode, *a, **k)
                return Full(f) if "w" in mode and str(p).startswith(str(disk)) else f

            monkeypatch.setattr(builtins, "open", fake_open)
            if fmt == "fits":
                pytest.skip("the injected full disk only reaches Python file writes (HDF5)")
        rc = main(_args(survey_exposure, disk, "--format", fmt))
        err = capsys.readouterr().err
        # a plain OSError naming the cause (not an HDF5 library error, abort or traceback)
        assert rc == 1 and re.search(r"(FAILED N\d+: |cannot write \S+ \()OSError: [^\n]*"
                                     r"No space left on device", err), err
        assert "Traceback" not in err and "HDF5" not in err and "slist" not in err
        assert not [p for p in disk.rglob("*.tmp")], list(disk.rglob("*"))   # no orphans
        assert not (disk / f"{OUT_NAME}{sfx}").exists()
        parts = sorted(p.name for p in (disk / f"{OUT_NAME}{sfx}.parts").glob("*"))
        for name in parts:                           # what was written is intact
            assert verify_ccd(disk / f"{OUT_NAME}{sfx}.parts" / name, name[:2]) is None


# ---------------------------------------------------------------------------------------
# input files whose headers lie or are cut short: errors name the cause, no tracebacks
# ---------------------------------------------------------------------------------------

def _plain_copy(src, dst):
    """An uncompressed copy of a tile-compressed CP file."""
    with fits.open(src) as h:
        fits.HDUList([fits.PrimaryHDU(header=h[0].header)]
                     + [fits.ImageHDU(np.asarray(x.data), header=x.header, name=x.name)
                        for x in h[1:]]).writeto(dst)


@pytest.mark.parametrize("bitpix", [-64, 16])
def test_bitpix_lie_named(survey_exposure, tmp_path, capsys, bitpix):
    ooi = tmp_path / "plain_ooi.fits"
    _plain_copy(survey_exposure["files"]["ooi"], ooi)
    _patch_card(ooi, "N6", "BITPIX", bitpix)
    assert main(_ccd_args(survey_exposure, "N6", tmp_path / "o.fits", ooi=str(ooi))) == 1
    err = capsys.readouterr().err
    assert "plain_ooi.fits[N6]: ooi image" in err and f"BITPIX = {bitpix}" in err
    assert ("file truncated or header corrupt" in err if bitpix == -64
            else "header corrupt: the data size it declares" in err)
    assert "Traceback" not in err


def test_truncated_file_not_reported_as_missing_extension(survey_exposure, tmp_path, capsys):
    exp = copy_exposure(survey_exposure, tmp_path / "in")
    cat = Path(exp["files"]["cat"])
    raw = cat.read_bytes()
    cat.write_bytes(raw[:len(raw) - 5000])              # cuts into N2_CAT
    assert main(_ccd_args(exp, "N2", tmp_path / "o.fits")) == 1
    err = capsys.readouterr().err
    assert "[N2_CAT]: crowdsource catalogue: extension not found, file truncated" in err, err
    # the exposure run does not silently drop the CCDs after the cut
    assert main(_args(exp, tmp_path / "out")) == 1
    err = capsys.readouterr().err
    assert "crowdsource catalogue: file truncated" in err, err
    # a truncated image file
    ooi = tmp_path / "plain_ooi.fits"
    _plain_copy(survey_exposure["files"]["ooi"], ooi)
    ooi.write_bytes(ooi.read_bytes()[:-200_000])
    assert main(_ccd_args(survey_exposure, "N2", tmp_path / "o2.fits", ooi=str(ooi))) == 1
    err = capsys.readouterr().err
    assert "[N2]: ooi image:" in err and "truncated" in err, err


def test_tform_lie_and_huge_position_no_traceback(survey_exposure, tmp_path, capsys):
    cat = tmp_path / "tform.cat.fits"
    shutil.copy(survey_exposure["files"]["cat"], cat)
    with fits.open(cat) as h:
        k = h["N6_CAT"].columns.names.index("x") + 1
    _patch_card(cat, "N6_CAT", f"TFORM{k}", "E")          # x claims float32, NAXIS1 unchanged
    assert main(_ccd_args(survey_exposure, "N6", tmp_path / "a.fits", cat=str(cat))) == 1
    err = capsys.readouterr().err
    assert "tform.cat.fits[N6_CAT]: crowdsource catalogue: table header corrupt" in err, err
    assert "NAXIS1 = " in err and "x=E" in err
    # x = 1e300: a clean outcome (an error naming the problem, or NaN outputs), no traceback
    cat = tmp_path / "far.cat.fits"
    with fits.open(survey_exposure["files"]["cat"]) as h:
        t = Table(h["N6_CAT"].data)
        t["x"][3] = 1e300
        fits.HDUList([x if x.name != "N6_CAT" else fits.BinTableHDU(t, header=x.header,
                                                                    name="N6_CAT")
                      for x in h]).writeto(cat)
    rc = main(_ccd_args(survey_exposure, "N6", tmp_path / "b.fits", cat=str(cat)))
    err = capsys.readouterr().err
    assert rc in (0, 1) and "Traceback" not in err
    if rc == 1:
        assert err.startswith("cloudcov ccd: error:") or "\ncloudcov ccd: error:" in err, err
