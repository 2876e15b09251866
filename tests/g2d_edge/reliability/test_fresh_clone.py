"""Issue 22, class "tests and CI on a fresh clone": the shared data is found through $G2D_SHARED_DATA (default
../shared beside the repo); a run whose data-dependent tests skipped ends with one line saying so, and fails under CI
(CI=true); Milvus Lite's in-process server no longer prints a `--- Logging error ---` traceback after the summary.
Each case runs pytest in a subprocess on a small test file, with this repo's tests/conftest.py as its plugin."""
import os
import subprocess
import sys
import textwrap

import pytest

import shared_data
from runtime_helpers import REPO

NEEDS_DATA = """
def test_needs_photos(celeba_dir):
    assert celeba_dir.is_dir()

def test_plain():
    pass
"""


def run_pytest(tmp_path, code, **env):
    (tmp_path / "test_case.py").write_text(textwrap.dedent(code))
    environ = {k: v for k, v in os.environ.items() if k not in ("CI", shared_data.DATA_ENV)}
    environ.update(env, PYTHONPATH=os.pathsep.join([str(REPO / "tests"), str(REPO)]))
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "conftest", "-p", "no:cacheprovider",
                           "test_case.py"], capture_output=True, text=True, cwd=tmp_path, env=environ, timeout=300)


def test_missing_data_is_said_in_one_line_at_the_end(tmp_path):
    nowhere = tmp_path / "nowhere"
    res = run_pytest(tmp_path, NEEDS_DATA, G2D_SHARED_DATA=str(nowhere))
    assert res.returncode == 0, res.stdout + res.stderr
    lines = [line for line in res.stdout.splitlines() if "the shared data was not found" in line]
    assert lines == [f"1 test(s) skipped: the shared data was not found at {nowhere} (set G2D_SHARED_DATA="
                     "/path/to/shared)"], res.stdout
    assert "1 passed, 1 skipped" in res.stdout


def test_missing_data_fails_the_run_under_ci(tmp_path):
    res = run_pytest(tmp_path, NEEDS_DATA, G2D_SHARED_DATA=str(tmp_path / "nowhere"), CI="true")
    assert res.returncode == 1 and "CI=true, so the run fails" in res.stdout, res.stdout


def test_the_variable_points_the_tests_at_the_data(tmp_path):
    if not (shared_data.SHARED_DIR / "data" / "celeba-train").is_dir():
        pytest.skip(shared_data.missing("real photos", shared_data.SHARED_DIR / "data" / "celeba-train"))
    res = run_pytest(tmp_path, NEEDS_DATA, G2D_SHARED_DATA=str(shared_data.SHARED_DIR), CI="true")
    assert res.returncode == 0 and "2 passed" in res.stdout and "not found" not in res.stdout, res.stdout


def test_milvus_lite_prints_no_logging_error_after_the_summary(tmp_path):
    pytest.importorskip("milvus_lite")
    res = run_pytest(tmp_path, """
        import logging, sys
        import numpy as np
        from g2d_edge.gallery import open_gallery

        KEEP = []

        def test_a_test_that_points_logging_at_its_captured_stderr(tmp_path):
            logging.getLogger().handlers.clear()  # as a script's main() run in-process may leave it
            logging.basicConfig(level=logging.INFO, stream=sys.stderr)
            gallery = open_gallery(f"milvus-lite://{tmp_path}/g.db/people")
            gallery.bind("space-a", 4)
            gallery.add("ann", np.ones(4))
            KEEP.append(gallery)  # still open when the session ends
        """)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Logging error" not in res.stdout + res.stderr and "Traceback" not in res.stderr, res.stderr


def test_the_cli_gives_back_the_callers_logging_handlers(capsys):
    import logging

    from g2d_edge.cli import main

    root = logging.getLogger()
    before = root.handlers[:]
    assert main(["gallery", "list", "--gallery", str(REPO / "no-such-gallery.npz")]) == 1
    assert root.handlers == before
