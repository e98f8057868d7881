"""Survey driver (cloudcov survey / run_survey) on a simulated survey of 20 small exposures
made from the real DECam cutouts (crowdsource fits) and the embedded Horsehead example:
every engine equals a serial loop of run_exposure; kill -9 of a worker or of the driver, and
two drivers on one folder, never lose, duplicate or mix work."""
import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest
from astropy.table import Table

from _survey_files import make_survey, survey_exposure  # noqa: F401  (session fixture)
from cloudcov.campaign import (LOCK_DIR, LOG_NAME, append_log, exposure_complete,
                               read_manifest, run_survey)
from cloudcov.engines import parsl_config_template, plan_workers
from cloudcov.errors import CloudCovWarning
from cloudcov.io import read_output
from cloudcov.io.locking import exclusive_lock
from cloudcov.survey import run_exposure

# The simulated survey runs every exposure at the DECam defaults (thr=20), and one of its CCDs
# is the embedded Horsehead plate, whose noise is ~300 ADU: process_ccd rightly warns that
# thr does not fit there. The survey machinery, not the thresholds, is under test here.
# The simulated exposures carry crowdsource PSF records, which need the optional
# crowdsourcephoto (CI installs it; README's plain test command does not).
pytest.importorskip("crowdsource.psf",
                    reason="needs crowdsourcephoto (pip install --no-deps crowdsourcephoto)")

pytestmark = pytest.mark.filterwarnings(
    "ignore:thr=.*suggested by the residual noise:cloudcov.errors.CloudCovWarning")

FAST = dict(Np=9, widx=21)
FAST_ARGS = ["--Np", "9", "--wx", "21"]
N_EXPOSURES = 20
HAVE = {m: importlib.util.find_spec(m) is not None for m in ("distributed", "parsl")}
ENV = dict(os.environ, OMP_NUM_THREADS="1")


@pytest.fixture(scope="module")
def survey(request, tmp_path_factory):
    """20 exposures (DECam cutouts N6, N2 when crowdsource is installed, and S1 = the
    embedded example) and their serial reference: run_exposure called row by row."""
    exp = None
    if importlib.util.find_spec("crowdsource") is not None:
        exp = request.getfixturevalue("survey_exposure")
    sv = make_survey(tmp_path_factory.mktemp("survey"), N_EXPOSURES, exp)
    ref = tmp_path_factory.mktemp("serial")
    for r in sv["rows"]:
        run_exposure(r["base"], r["date"], r["filt"], r["vers"], r["basecat"], out_dir=ref,
                     ccdlist=r["ccdlist"].split() or None, threads=1, progress=False, **FAST)
    sv["reference"] = {p.name: read_output(p) for p in sorted(ref.glob("*.cer.fits"))}
    assert len(sv["reference"]) == N_EXPOSURES
    return sv


def _assert_outputs_equal(out_dir, reference):
    got = sorted(p.name for p in out_dir.glob("*.cer.fits"))
    assert got == sorted(reference), "missing or extra exposure outputs"
    assert not list(out_dir.glob("*.parts")) and not list(out_dir.glob("*.tmp"))
    for name, ref in reference.items():
        out = read_output(out_dir / name)
        assert list(out) == list(ref), name
        for ccd in ref:
            a, b = out[ccd], ref[ccd]
            assert a.colnames == b.colnames and a.meta["params"] == b.meta["params"]
            for c in a.colnames:
                np.testing.assert_array_equal(a[c], b[c], err_msg=f"{name} {ccd} {c}")


def _log(out_dir):
    return Table.read(out_dir / LOG_NAME, format="ascii.ecsv")


def _cli(manifest, out, *extra):
    return [sys.executable, "-m", "cloudcov", "survey", str(manifest), "--out", str(out),
            *FAST_ARGS, *extra]


def _lock_holders(out_dir):
    """pid -> exposure of the per-exposure locks held now (the holder's text is in the file)."""
    held = {}
    for p in (out_dir / LOCK_DIR).glob("*.lock"):
        try:
            text = p.read_text()
            if text.strip():
                held[json.loads(text)["pid"]] = p.name[:-5]
        except (OSError, ValueError, KeyError):
            pass
    return held


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# ---------------------------------------------------------------------------------------

def test_manifest_csv_and_ecsv(survey, tmp_path):
    a, b = read_manifest(survey["manifest"]), read_manifest(survey["csv"])
    assert a == b and len(a) == N_EXPOSURES
    assert a[0].date == "171113_060000" and a[0].ccdlist is None            # CSV date stays text
    assert a[1].ccdlist == ("N2",) or a[1].ccdlist == ("S1",)
    assert all(os.path.isabs(s.basecat) and s.base.endswith(os.sep) for s in a)
    bad = tmp_path / "bad.csv"
    bad.write_text("base,date,filt,vers\nx/,171113_060000,r,v1\n")
    with pytest.raises(ValueError, match="missing column.*basecat"):
        read_manifest(bad)
    bad.write_text("base,date,filt,vers,basecat\nx/,17111_060000,r,v1,y\n")
    with pytest.raises(ValueError, match="row 1: date: expected YYMMDD_HHMMSS"):
        read_manifest(bad)
    bad.write_text("base,date,filt,vers,basecat\nx/,171113_060000,r,v1,y\nz/,171113_060000,r,v1,w\n")
    with pytest.raises(ValueError, match="row 2: exposure c4d_171113_060000_ooi_r_v1 is also row 1"):
        read_manifest(bad)
    with pytest.raises(FileNotFoundError, match="manifest"):
        read_manifest(tmp_path / "none.csv")


def test_plan_workers():
    assert plan_workers(None, None, cores=8) == (8, 1)
    assert plan_workers(2, None, cores=8) == (2, 4)
    assert plan_workers(None, 4, cores=8) == (2, 4)
    with pytest.warns(CloudCovWarning, match="reduced from 4 to 2"):
        assert plan_workers(4, 4, cores=8) == (4, 2)
    with pytest.warns(CloudCovWarning, match="share cores"):
        assert plan_workers(3, 1, cores=2) == (3, 1)
    assert plan_workers(None, None, remote=True) == (None, 1)
    with pytest.raises(ValueError, match="workers: must be an integer >= 1"):
        plan_workers(0, 1)


def test_log_appends_from_concurrent_writers(tmp_path):
    path = tmp_path / LOG_NAME

    def writer(k):
        for i in range(15):
            append_log(path, [dict(exposure=f"e{k}_{i}", status="done", ccds=1, stars=i,
                                   seconds=0.5, host="h", attempts=1,
                                   error='with "quotes", spaces\nand a newline')])

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    t = _log(tmp_path)
    assert len(t) == 45 and len(set(t["exposure"])) == 45
    assert t["stars"].dtype.kind == "i" and set(t["error"]) == {'with "quotes", spaces\nand a newline'}
    assert not list(tmp_path.glob("*.tmp"))


# local: also covered in the default run by test_kill_worker_task_retried[local] (identical
# outputs after a worker kill) and its resume check
@pytest.mark.parametrize("executor", [pytest.param("local", marks=pytest.mark.slow), "dask",
                                      "parsl"])
def test_engine_matches_serial_run(executor, survey, tmp_path):
    mod = {"dask": "distributed", "parsl": "parsl"}.get(executor)
    if mod and not HAVE[mod]:
        pytest.skip(f"needs {mod} (pip install 'cloudcov[{executor}]')")
    out = tmp_path / "out"
    proc = subprocess.run(_cli(survey["manifest"], out, "--executor", executor, "--workers", "2",
                               "--threads-per-worker", "1"),
                          capture_output=True, text=True, timeout=600, env=ENV)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"{N_EXPOSURES} exposures: {N_EXPOSURES} computed, 0 already done, 0 failed" \
        in proc.stdout and f"{executor} x2 workers" in proc.stdout
    _assert_outputs_equal(out, survey["reference"])
    t = _log(out)
    assert len(t) == N_EXPOSURES and set(t["status"]) == {"done"} and set(t["attempts"]) == {1}
    assert sorted(t["exposure"]) == sorted(n.replace(".cat.cer.fits", "") for n in survey["reference"])
    nccd = sum(len(v) for v in survey["reference"].values())
    assert t["ccds"].sum() == nccd and all(t["host"])
    assert t["stars"].sum() == sum(len(x) for v in survey["reference"].values() for x in v.values())
    if executor == "local":
        # resume: everything verified complete, nothing rewritten
        mtimes = {p: p.stat().st_mtime_ns for p in out.glob("*.cer.fits")}
        res = run_survey(survey["manifest"], out, workers=2, threads_per_worker=1, resume=True,
                         progress=False, **FAST)
        assert len(res.skipped) == N_EXPOSURES and not res.done and not res.failed
        assert {p: p.stat().st_mtime_ns for p in out.glob("*.cer.fits")} == mtimes
        assert list(_log(out)["status"][N_EXPOSURES:]) == ["skipped"] * N_EXPOSURES


def test_failed_exposure_retried_then_reported(survey, tmp_path, capsys):
    rows = read_manifest(survey["manifest"])[:2]
    broken = type(rows[0])(rows[0].base, rows[0].date, rows[0].filt, rows[0].vers,
                           str(tmp_path / "nowhere"), None, 0)
    res = run_survey([broken, rows[1]], tmp_path / "out", workers=1, threads_per_worker=1,
                     retries=1, progress=False, **FAST)
    assert res.done == [rows[1].name] and list(res.failed) == [broken.name]
    assert "crowdsource catalogue file not found" in res.failed[broken.name]
    t = _log(tmp_path / "out")
    mine = t[t["exposure"] == broken.name]
    assert list(mine["status"]) == ["retry", "failed"] and list(mine["attempts"]) == [1, 2]
    assert "1 computed, 0 already done, 1 failed" in res.summary()
    assert exposure_complete(rows[1], tmp_path / "out", **FAST)
    assert not exposure_complete(rows[1], tmp_path / "out", **dict(FAST, thr=25))
    assert not exposure_complete(broken, tmp_path / "out", **FAST)
    # the command: exit status 1, the failure on stderr, the summary line last on stdout
    from cloudcov.cli import main

    man = tmp_path / "broken.csv"
    man.write_text(f"base,date,filt,vers,basecat\n{broken.base},{broken.date},{broken.filt},"
                   f"{broken.vers},{broken.basecat}\n")
    assert main(["survey", str(man), "--out", str(tmp_path / "out2"), "--retries", "0",
                 "--workers", "1"]) == 1
    cap = capsys.readouterr()
    assert f"FAILED {broken.name}: FileNotFoundError" in cap.err
    assert cap.out.strip().splitlines()[-1].startswith(
        "cloudcov survey: 1 exposures: 0 computed, 0 already done, 1 failed")


def _kill_a_worker(out, driver_pid, timeout=120):
    """Wait until a worker holds an exposure lock, SIGKILL it; returns (pid, exposure)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        for pid, name in _lock_holders(out).items():
            if pid != driver_pid and _alive(pid):
                os.kill(pid, signal.SIGKILL)
                return pid, name
        time.sleep(0.005)
    raise AssertionError("no worker ever held an exposure lock")


@pytest.mark.parametrize("executor", ["local", pytest.param("dask", marks=pytest.mark.slow),
                                      pytest.param("parsl", marks=pytest.mark.slow)])
def test_kill_worker_task_retried(executor, survey, tmp_path):
    mod = {"dask": "distributed", "parsl": "parsl"}.get(executor)
    if mod and not HAVE[mod]:
        pytest.skip(f"needs {mod}")
    out = tmp_path / "out"
    proc = subprocess.Popen(_cli(survey["manifest"], out, "--executor", executor, "--workers",
                                 "2", "--threads-per-worker", "1", "-r"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        pid, victim = _kill_a_worker(out, proc.pid)
        stdout, stderr = proc.communicate(timeout=600)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, stderr[-3000:]
    _assert_outputs_equal(out, survey["reference"])
    t = _log(out)
    # the killed worker's task (and, for local, the pool's other task in flight) is retried
    retried = set(t["exposure"][t["status"] == "retry"])
    assert retried and (victim in retried or executor == "local"), (victim, t)
    for name in retried:
        rows = t[t["exposure"] == name]
        assert list(rows["status"]) == ["retry", "done"], rows
        assert "worker lost" in rows["error"][0] and rows["attempts"][-1] == 2
    done = t[t["status"] == "done"]
    assert sorted(done["exposure"]) == sorted(set(t["exposure"])) and len(done) == N_EXPOSURES
    if executor == "local":
        # resume: everything verified complete, nothing rewritten
        mtimes = {p: p.stat().st_mtime_ns for p in out.glob("*.cer.fits")}
        res = run_survey(survey["manifest"], out, workers=2, threads_per_worker=1, resume=True,
                         progress=False, **FAST)
        assert len(res.skipped) == N_EXPOSURES and not res.done and not res.failed
        assert {p: p.stat().st_mtime_ns for p in out.glob("*.cer.fits")} == mtimes
        assert list(_log(out)["status"][-N_EXPOSURES:]) == ["skipped"] * N_EXPOSURES


def test_kill_driver_then_resume(survey, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen(_cli(survey["manifest"], out, "--workers", "1",
                                 "--threads-per-worker", "1"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    try:
        t0 = time.monotonic()
        while len(list(out.glob("*.cer.fits"))) < 3 and time.monotonic() - t0 < 300:
            time.sleep(0.005)
        holders = _lock_holders(out)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    n_before = len(list(out.glob("*.cer.fits")))
    assert 3 <= n_before < N_EXPOSURES
    # the orphaned worker stops computing (watchdog), releasing its lock
    workers = [p for p in holders if p != proc.pid]
    t0 = time.monotonic()
    while any(_alive(p) for p in workers) and time.monotonic() - t0 < 30:
        time.sleep(0.05)
    assert not any(_alive(p) for p in workers)
    res = run_survey(survey["manifest"], out, workers=2, threads_per_worker=1, resume=True,
                     progress=False, **FAST)
    assert not res.failed and len(res.skipped) >= 3 and len(res.done) + len(res.skipped) == N_EXPOSURES
    _assert_outputs_equal(out, survey["reference"])


def test_two_drivers_share_a_folder(survey, tmp_path):
    out = tmp_path / "out"
    procs = [subprocess.Popen(_cli(survey["manifest"], out, "--workers", "1",
                                   "--threads-per-worker", "1", "--resume"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
             for _ in range(2)]
    try:
        outs = [p.communicate(timeout=600) for p in procs]
    finally:
        for p in procs:
            p.kill()
            p.wait()
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    _assert_outputs_equal(out, survey["reference"])
    t = _log(out)
    done = t[t["status"] == "done"]
    assert sorted(done["exposure"]) == sorted(set(t["exposure"])), "an exposure computed twice"
    assert len(done) == N_EXPOSURES and set(t["status"]) <= {"done", "skipped"}
    assert len(set(t["driver"])) == 2
    assert sum(len(set(done["exposure"][done["driver"] == d])) for d in set(t["driver"])) \
        == N_EXPOSURES


def test_parsl_config_templates(tmp_path, capsys):
    from cloudcov.cli import main

    assert main(["survey", "--print-parsl-config", "slurm"]) == 0
    text = capsys.readouterr().out
    assert text == parsl_config_template("slurm") and "SlurmProvider(" in text
    with pytest.raises(ValueError, match="template"):
        parsl_config_template("pbs")
    if not HAVE["parsl"]:
        pytest.skip("needs parsl to build the config")
    from cloudcov.engines import load_parsl_config
    from parsl.executors import HighThroughputExecutor
    from parsl.providers import LocalProvider, SlurmProvider

    for kind, provider in (("slurm", SlurmProvider), ("local", LocalProvider)):
        f = tmp_path / f"{kind}.py"
        f.write_text(parsl_config_template(kind))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            cfg = load_parsl_config(f)
        (ex,) = cfg.executors
        assert isinstance(ex, HighThroughputExecutor) and isinstance(ex.provider, provider)
        assert cfg.retries == 0
    f.write_text("x = 1\n")
    with pytest.raises(ValueError, match="must define `config"):
        load_parsl_config(f)


def test_locked_exposure_is_deferred_not_computed(survey, tmp_path):
    """While another process holds an exposure's lock the driver waits; once the holder
    has completed it, the driver skips it instead of computing it again."""
    rows = read_manifest(survey["manifest"])[:2]
    out = tmp_path / "out"
    r = rows[0]
    held = threading.Event()
    release = threading.Event()

    def other_driver():
        with exclusive_lock(out / LOCK_DIR / r.name):
            held.set()
            run_exposure(r.base, r.date, r.filt, r.vers, r.basecat, out_dir=out,
                         ccdlist=list(r.ccdlist) if r.ccdlist else None, threads=1,
                         progress=False, **FAST)
            release.wait(30)

    th = threading.Thread(target=other_driver)
    th.start()
    held.wait(30)
    threading.Timer(1.0, release.set).start()
    res = run_survey(rows, out, workers=1, threads_per_worker=1, progress=False,
                     lock_wait=0.1, **FAST)
    th.join()
    assert res.done == [rows[1].name] and res.skipped == [r.name] and not res.failed
    name = f"{r.name}.cat.cer.fits"
    _assert_outputs_equal(out, {name: survey["reference"][name],
                                f"{rows[1].name}.cat.cer.fits":
                                    survey["reference"][f"{rows[1].name}.cat.cer.fits"]})


def test_task_statuses(tmp_path, monkeypatch):
    """survey_task never raises: a lock held elsewhere -> 'locked'; an output that
    run_exposure refuses to replace (FileExistsError) -> 'failed' without retry; any other
    error -> 'failed' (retried by the driver)."""
    import cloudcov.survey as survey_mod
    from cloudcov.campaign import ExposureSpec, survey_task

    spec = ExposureSpec(str(tmp_path) + os.sep, "171113_060000", "r", "v1", str(tmp_path))
    opts = dict(out_dir=str(tmp_path / "out"), fmt="fits", params=dict(FAST), threads=1)

    def refuse(*a, **k):
        raise FileExistsError("output exists; pass --resume or --overwrite")

    monkeypatch.setattr(survey_mod, "run_exposure", refuse)
    rec = survey_task(spec, opts)
    assert rec["status"] == "failed" and rec["retry"] is False and "--overwrite" in rec["error"]
    monkeypatch.setattr(survey_mod, "run_exposure", lambda *a, **k: 1 / 0)
    rec = survey_task(spec, opts)
    assert rec["status"] == "failed" and rec.get("retry", True) and "ZeroDivisionError" in rec["error"]
    with exclusive_lock(tmp_path / "out" / LOCK_DIR / spec.name):
        rec = survey_task(spec, opts)
    assert rec["status"] == "locked" and f"pid {os.getpid()}" in rec["error"]
