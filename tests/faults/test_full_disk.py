"""A disk that fills up during a run (issue 9, item 7): one ``Error:`` line naming the file and the
fix, never a traceback; after space is freed the rerun resumes and the store is whole."""
import subprocess
import sys

import pytest

pytestmark = pytest.mark.faults


@pytest.mark.parametrize("size_kib", [160, 430, 520])
def test_run_on_a_full_disk_fails_cleanly_and_resumes(tmp_path, size_kib):
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(mnt)],
                      stderr=subprocess.DEVNULL).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs CAP_SYS_ADMIN); a full disk is not simulated")
    try:
        config = tmp_path / "c.yaml"
        config.write_text("data: {dataset: digits, classes_per_task: 5, seed: 0}\n"
                          "memory: {em_size: 20}\ntrain: {model: cnn2d, width: 8, epochs: 1}\n")
        cmd = [sys.executable, "-m", "miro_edge", "run", "--config", str(config), "--out", str(mnt / "run")]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert out.returncode == 1, f"the run fit in {size_kib} KiB; make the disk smaller"
        lines = [ln for ln in out.stderr.strip().splitlines() if not ln.startswith("WARNING")]
        assert len(lines) == 1 and lines[0].startswith("Error:") and "Traceback" not in out.stderr, out.stderr
        assert ("No space left" in lines[0] or "full" in lines[0]) and str(mnt / "run") in lines[0], lines[0]
        assert "free" in lines[0].lower()  # the fix
        subprocess.run(["mount", "-o", "remount,size=64m", str(mnt)], check=True)
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr
        verify = subprocess.run([sys.executable, "-m", "miro_edge", "store", "verify", str(mnt / "run" / "store")],
                                capture_output=True, text=True, timeout=120)
        # 1258: what the same config ingests uninterrupted (the digits stream its tasks are cut from)
        assert verify.returncode == 0 and "checked        1258 records" in verify.stdout, verify.stdout + verify.stderr
        assert not list((mnt / "run").rglob("*.tmp"))
    finally:
        subprocess.run(["umount", "-l", str(mnt)])
