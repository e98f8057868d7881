"""Exclusive output locks (cloudcov.io.locking): a second holder is refused at once and told
who holds the lock; a killed holder releases it."""
import os
import signal
import subprocess
import sys
import time

import pytest

from cloudcov.io.locking import OutputLockedError, exclusive_lock, lock_path


def test_second_lock_in_same_process_refused(tmp_path):
    out = tmp_path / "x.fits"
    with exclusive_lock(out) as lp:
        assert lp == lock_path(out) and lp.exists()
        with pytest.raises(OutputLockedError, match=r"x\.fits: output is locked by pid "
                           + str(os.getpid())):
            with exclusive_lock(out):
                pass
    with exclusive_lock(out):  # released: can be taken again
        pass


def test_lock_released_when_holder_killed(tmp_path):
    out = tmp_path / "y.h5"
    code = ("import sys, time; from cloudcov.io.locking import exclusive_lock\n"
            f"with exclusive_lock({str(out)!r}):\n    print('held', flush=True); time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        # skip anything an editable install's rebuild prints before the child's own line
        lines = iter(proc.stdout.readline, "")
        assert any(line.strip() == "held" for line in lines)
        with pytest.raises(OutputLockedError) as err:
            with exclusive_lock(out):
                pass
        assert err.value.holder["pid"] == proc.pid
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        with exclusive_lock(out, blocking=True, timeout=10):
            pass
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def test_blocking_timeout(tmp_path):
    out = tmp_path / "z"
    with exclusive_lock(out):
        t0 = time.monotonic()
        with pytest.raises(OutputLockedError):
            with exclusive_lock(out, blocking=True, timeout=0.3):
                pass
        assert time.monotonic() - t0 >= 0.3
