"""flake8 (setup.cfg: 79 columns) over the package, tools, tests and
configs: style regressions fail the suite, not a review."""
import os.path as osp
import subprocess
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def test_flake8_clean():
    pytest.importorskip('flake8')
    r = subprocess.run([sys.executable, '-m', 'flake8', 'mmzsq', 'tools',
                        'tests', 'configs', 'setup.py'], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-1000:]
