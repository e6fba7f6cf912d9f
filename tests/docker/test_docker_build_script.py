"""docker/jetson/build.sh turns versions.env into --build-arg flags (run with a stand-in docker)."""
import json
import os
import shutil
import stat
import subprocess
import sys

import pytest
from jetson_files import BOARDS, JETSON, REPO, versions

FAKE_DOCKER = """#!{python}
import json, os, sys
with open(os.environ["FAKE_DOCKER_OUT"], "w") as f:
    json.dump({{"argv": sys.argv[1:], "buildkit": os.environ.get("DOCKER_BUILDKIT")}}, f)
"""


@pytest.fixture
def fake_docker(tmp_path):
    (tmp_path / "bin").mkdir()
    exe = tmp_path / "bin" / "docker"
    exe.write_text(FAKE_DOCKER.format(python=sys.executable))
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    out = tmp_path / "argv.json"
    env = dict(os.environ, DOCKER=str(exe), FAKE_DOCKER_OUT=str(out))
    return env, out


def run_build(script, board, env, *extra):
    return subprocess.run(["bash", str(script), board] + list(extra), capture_output=True, text=True, env=env)


@pytest.mark.parametrize("board", sorted(BOARDS))
def test_build_passes_the_boards_pins_and_the_repo_as_context(board, fake_docker):
    env, out = fake_docker
    proc = run_build(JETSON / "build.sh", board, env, "--progress=plain")
    assert proc.returncode == 0, proc.stderr
    call = json.loads(out.read_text())
    argv = call["argv"]
    assert call["buildkit"] == "1" and argv[0] == "build" and argv[-1] == str(REPO)
    assert argv[argv.index("--file") + 1] == str(JETSON / board / "Dockerfile")
    tags = [argv[i + 1] for i, a in enumerate(argv) if a == "--tag"]
    assert tags[0] == f"miro-edge:{board}" and tags[1].startswith(f"miro-edge:{board}-0.")
    passed = dict(argv[i + 1].split("=", 1) for i, a in enumerate(argv) if a == "--build-arg")
    expected = {k: v for k, v in versions().items() if k.startswith(BOARDS[board])}
    assert passed == expected
    assert "--progress=plain" in argv


def test_unknown_board_and_bad_versions_line_are_clear_errors(tmp_path, fake_docker):
    env, out = fake_docker
    proc = run_build(JETSON / "build.sh", "nano", env)
    assert proc.returncode == 2 and "Error: usage" in proc.stderr and "'nano'" in proc.stderr
    copy = tmp_path / "docker" / "jetson"
    shutil.copytree(str(JETSON), str(copy), ignore=shutil.ignore_patterns("wheels"))
    shutil.copy(str(REPO / "pyproject.toml"), str(tmp_path / "pyproject.toml"))
    with open(str(copy / "versions.env"), "a") as f:
        f.write("TX2_BROKEN value without equals\n")
    proc = run_build(copy / "build.sh", "tx2", env)
    assert proc.returncode == 1 and "not a KEY=VALUE line: TX2_BROKEN" in proc.stderr
    assert not out.exists()
