"""The README's Dask recipe runs as given, on a local cluster bound to 127.0.0.1, and a cluster's
reports are the ones this process makes. Skipped unless the ``dask`` extra is installed."""

import json
import lzma
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("dask")
pytest.importorskip("distributed")

ROOT = Path(__file__).parent.parent

# the README's recipe, as the README gives it
RECIPE = (ROOT / "README.md").read_text().split("when dask is installed):\n\n```python\n")[1].split("```")[0]

# every part of a report (flows, statistics) and a capture of 4 MB or more, which Analysis would
# read in a forked child by default: a cluster's worker processes are daemonic and cannot fork
FULL = '''\
import json, sys
from dask.distributed import Client, LocalCluster
from smcwire.render.report import analyze_capture

if __name__ == "__main__":
    with LocalCluster(host="127.0.0.1", n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:"), cluster.scheduler_address
        futures = client.map(analyze_capture, sys.argv[1:], flows="jsonl", stats=True)
        print(json.dumps(client.gather(futures)))
'''


def _python(code: str, tmp_path: Path, *args: str) -> str:
    script = tmp_path / "recipe.py"
    script.write_text(code)
    result = subprocess.run([sys.executable, str(script), *args], cwd=ROOT, capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_readme_recipe(tmp_path):
    assert _python(RECIPE, tmp_path).splitlines() == [
        "traces/qemu-dbg-kretprobe: 0 error, 0 warning, 0 info",
        "traces/qemu-dbg-probe: 0 error, 0 warning, 0 info",
        "traces/qemu-misconf-nobl32: 1 error, 0 warning, 0 info",
    ]


def test_a_cluster_reports_what_this_process_reports(tmp_path):
    from smcwire.render.report import analyze_capture
    from smcwire.sources.prefetch import MIN_PREFETCH_BYTES

    text = lzma.decompress((ROOT / "tests/data/rules/dbg-xtest-ftrace-ethread.txt.xz").read_bytes())
    big = tmp_path / "big.txt"
    big.write_bytes(text * (MIN_PREFETCH_BYTES // len(text) + 1))
    names = [str(ROOT / "traces/qemu-dbg-kretprobe"), str(big), str(tmp_path / "missing.txt"),
             str(ROOT / "traces/qemu-misconf-nobl32")]
    reports = json.loads(_python(FULL, tmp_path, *names))
    assert reports == [analyze_capture(name, flows="jsonl", stats=True) for name in names]
    assert reports[1]["summary"]["files"][0]["lines"] > 0 and reports[2]["error"]
