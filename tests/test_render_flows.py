"""Flow JSON on real captures: ``flow_jsonl`` is ``json.dumps`` of ``flow_json`` byte for byte, and
its values are the flow's, for every flow of the shipped traces and of the rule-trigger traces."""

import json
from pathlib import Path

import pytest

from smcwire.abi.profiles import get_profile
from smcwire.pipeline import Analysis, captures
from smcwire.render.flows import flow_json, flow_jsonl

ROOT = Path(__file__).parent.parent
CAPTURES = sorted(p for p in (ROOT / "traces").iterdir() if p.is_dir()) + sorted((ROOT / "tests/data/rules").glob("*.xz"))


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_flow_jsonl_is_the_dumps_of_flow_json(path):
    analysis = Analysis(captures([str(path)])[0], get_profile(), prefetch=False)
    flows = 0
    for flow in analysis.flows():
        line = flow_jsonl(flow)
        data = flow_json(flow)
        assert json.dumps(data) == line
        assert (data["index"], data["file"], data["first_line"], data["last_line"]) == (
            flow.index, flow.file, min((s.call or s.ret).line for s in flow.steps),
            max((s.ret or s.call).line for s in flow.steps))
        assert (data["function"], data["a0"], data["task"], data["pid"], data["cpu"], data["thread"]) == (
            flow.function, flow.a0, flow.task, flow.pid, flow.cpus, flow.thread)
        assert (data["start"], data["end"], data["duration"]) == (flow.start, flow.end, flow.duration)
        assert data["fields"] == (flow.steps[0].decoded.fields if flow.steps[0].decoded else {})
        assert [(r["function"], r["func"], r["thread"], r["fields"], r["reply_fields"]) for r in data["rpcs"]] == [
            (t.function, t.func, t.thread, t.fields, t.reply_fields) for t in flow.rpcs]
        assert [r["line"] for r in data["rpcs"]] == [t.request.ret.line for t in flow.rpcs]
        assert data["result"] == flow.result_name and data["incomplete"] == flow.incomplete
        assert data["findings"] == flow.findings and data["steps"] == len(flow.steps)
        assert data["console"] == [{"file": m.file, "line": m.line, "level": m.level, "text": m.text}
                                   for m in flow.console]
        flows += 1
    assert flows > 0
