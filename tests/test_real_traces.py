"""Every SMC in the shipped real kretprobe captures decodes to a known function, and every
result to a named status or RPC request, without spurious notes.

The captures (tests/data/README.md): OP-TEE 4.10 (traces/qemu-dbg-kretprobe) and OP-TEE 3.16
(tests/data/legacy-os-kretprobe-ftrace.txt.xz), Linux 6.1, TF-A 2.15, under QEMU. Their kprobe
on optee_smccc_smc prints a0..a7 at entry and r0..r3 at return, one call at a time per task.
The line split below is a test fixture only; the trace readers are the input layer's job.
"""

import lzma
import re
from collections import Counter
from pathlib import Path

import pytest

from smcwire.codec.decode import decode_call, decode_return

ROOT = Path(__file__).parent.parent
CAPTURES = {
    "optee-4.10": ROOT / "traces/qemu-dbg-kretprobe/ftrace.txt.xz",
    "optee-3.16": ROOT / "tests/data/legacy-os-kretprobe-ftrace.txt.xz",
}
_LINE = re.compile(r"^\s*(?P<task>\S.*?-\d+)\s+\[\d+\].*?(?P<event>optee_smccc_smc(?:_ret)?): (?P<args>.*)$")
_REG = re.compile(r"\b([ar]\d)=0x([0-9a-f]+)")


def smc_pairs(path: Path):
    """(call registers, return registers) of each kprobe SMC, paired per task."""
    pending = {}
    for line in lzma.open(path, "rt"):
        m = _LINE.match(line)
        if not m:
            continue
        regs = {k: int(v, 16) for k, v in _REG.findall(m["args"])}
        if m["event"] == "optee_smccc_smc":
            pending[m["task"]] = tuple(regs[f"a{i}"] for i in range(8))
        else:
            yield pending.pop(m["task"]), tuple(regs[f"r{i}"] for i in range(4))


@pytest.mark.parametrize("capture", CAPTURES)
def test_every_smc_decodes(capture):
    seen = Counter()
    rpc = {}  # OP-TEE thread id -> the RPC function it asked for
    for call_regs, ret_regs in smc_pairs(CAPTURES[capture]):
        answered = rpc.pop(call_regs[3], None) if call_regs[0] == 0x32000003 else None
        call = decode_call(call_regs, rpc=answered)
        assert call.function is not None, call_regs
        # Linux echoes the RPC's a1:a2 (the FREE/CMD cookie): resume information, not a note
        assert call.notes == (), (call_regs, call.notes)
        ret = decode_return(call, ret_regs)
        if ret.is_rpc or ret.layout.slots[0].name == "status":  # else a0 is a value (UID word, revision)
            assert ret.status_name is not None, (call_regs, ret_regs)
        assert ret.notes == (), (call_regs, ret_regs, ret.notes)
        if ret.rpc is not None:
            rpc[ret.fields["thread_id"]] = ret.rpc.func
        seen[(call.name, ret.status_name)] += 1
    # what the README of the captures says each one holds
    if capture == "optee-4.10":
        assert seen[("OPTEE_SMC_EXCHANGE_CAPABILITIES", "OPTEE_SMC_RETURN_OK")] == 1
        assert seen[("OPTEE_SMC_GET_ASYNC_NOTIF_VALUE", "OPTEE_SMC_RETURN_OK")] >= 1
        assert not any(name == "OPTEE_SMC_CALL_WITH_ARG" for name, _ in seen)  # RPC_ARG negotiated
    else:
        assert seen[("OPTEE_SMC_ENABLE_SHM_CACHE", "OPTEE_SMC_RETURN_OK")] == 1  # no RPC_ARG in 3.16
        assert seen[("OPTEE_SMC_CALL_RETURN_FROM_RPC", "OPTEE_SMC_RPC_FUNC_ALLOC")] == 1  # once per thread
    assert seen[("OPTEE_SMC_CALLS_UID", "OPTEE_MSG_UID_0")] == 1
