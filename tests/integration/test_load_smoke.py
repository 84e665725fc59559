"""The load test's smoke (make load runs the long form: 8 x 50,000 requests):
8 clients x 600 mixed requests while 2 subscribers follow every event; zero
errors, both subscribers' seqs contiguous and complete, RSS flat."""
import os
import subprocess
import sys

from conftest import BUILD, ROOT


def test_load_smoke():
    p = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "load", "load.py"),
                        "--build", BUILD, "--clients", "8", "--requests", "600",
                        "--subscribers", "2", "--rss-margin-kib", "8192"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "0 errors" in p.stdout
    assert p.stdout.count("contiguous and complete: yes") == 2, p.stdout
