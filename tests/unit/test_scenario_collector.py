"""The collector of tests/scenarios/*.yaml (tests/scenarios/conftest.py): one item per case, named
after its file and case, and a key it does not know refused at collection in one line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

TESTS = Path(__file__).resolve().parent.parent
SCENARIOS = TESTS / "scenarios"


def pytest_run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS.parent)])}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--rootdir", str(cwd), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_every_case_is_one_item_named_after_its_file_and_case():
    files = sorted(SCENARIOS.glob("*.yaml"))
    assert files, f"no scenario files in {SCENARIOS}"
    wanted = [f"tests/scenarios/{path.name}::{case['name']}" for path in files for case in yaml.safe_load(path.read_text(encoding="utf-8"))["scenarios"]]
    run = pytest_run("--collect-only", "-q", "tests/scenarios", cwd=TESTS.parent)
    assert run.returncode == 0, run.stdout + run.stderr
    assert [line for line in run.stdout.splitlines() if "::" in line] == wanted
    selected = pytest_run("--collect-only", "-q", "tests/scenarios", "-k", "compute-voucher and cap", cwd=TESTS.parent)
    assert [line for line in selected.stdout.splitlines() if "::" in line] == [
        "tests/scenarios/compute-voucher.yaml::buyer cap reached exactly, crossed by one fen, then the next claim declined"
    ]


GOOD_EVENT = '{event_id: p1, amount: "1.00", expect: {granted: "0.60"}}'
BAD = {
    "file.yaml": ("scenario:\n  - name: a\n", "scenarios/file.yaml: unknown key 'scenario'; allowed: scenarios"),
    "case.yaml": (f"scenarios:\n  - name: a\n    topic: compute-purchases\n    event: [{GOOD_EVENT}]\n",
                  "scenarios/case.yaml: case 'a': unknown key 'event'; allowed: name, topic, defaults, events, totals"),
    "event.yaml": ('scenarios:\n  - name: a\n    topic: compute-purchases\n    events: [{event_id: p1, amount: "1.00", expected: {granted: "0.60"}}]\n',
                   "scenarios/event.yaml: case 'a': event 1 (p1): unknown key 'expected'; allowed: amount, beneficiary, event_id, invoice_no, occurred_at, project_ref, provider, refund_of, source, topic, expect"),
    "defaults.yaml": (f"scenarios:\n  - name: a\n    topic: compute-purchases\n    defaults: {{grade: x}}\n    events: [{GOOD_EVENT}]\n",
                      "scenarios/defaults.yaml: case 'a': event 1 (p1): defaults: unknown key 'grade'; allowed: amount, beneficiary"),
    "expect.yaml": ('scenarios:\n  - name: a\n    topic: compute-purchases\n    events: [{event_id: p1, amount: "1.00", expect: {grant: "0.60"}}]\n',
                    "scenarios/expect.yaml: case 'a': event 1 (p1): expect: unknown key 'grant'; allowed: outcome, granted, declined, declined_by, fiscal_year, payee, beneficiary, clause, duplicate, corrects, instructions, reject"),
    "topic.yaml": (f"scenarios:\n  - name: a\n    topic: compute-purchase\n    events: [{GOOD_EVENT}]\n",
                   "scenarios/topic.yaml: case 'a': event 1 (p1): topic 'compute-purchase' is not an input topic; one of: compute-purchases,"),
    "twice.yaml": ("scenarios:\n" + f"  - name: a\n    topic: compute-purchases\n    events: [{GOOD_EVENT}]\n" * 2,
                   "scenarios/twice.yaml: case 'a': another case of this file has the same name"),
}


def test_an_unknown_key_fails_collection_with_one_line_naming_file_case_and_key(tmp_path):
    folder = tmp_path / "scenarios"
    folder.mkdir()
    shutil.copy(SCENARIOS / "conftest.py", folder / "conftest.py")
    for name, (text, _) in BAD.items():
        (folder / name).write_text(text, encoding="utf-8")
    (folder / "good.yaml").write_text(f"scenarios:\n  - name: sixty percent\n    topic: compute-purchases\n    events: [{GOOD_EVENT}]\n", encoding="utf-8")
    run = pytest_run("--collect-only", "-q", "scenarios", cwd=tmp_path)
    assert run.returncode == 2, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    for name, (_, message) in BAD.items():
        said = [line for line in lines if line.startswith(f"scenarios/{name}:")]
        assert len(said) == 1 and said[0].startswith(message), (name, run.stdout)
    assert f"{len(BAD)} errors" in run.stdout
    # the well-formed file beside them is collected and passes
    good = pytest_run("-q", "scenarios/good.yaml", cwd=tmp_path)
    assert good.returncode == 0 and "1 passed" in good.stdout, good.stdout + good.stderr
