"""Property tests: for every layout of every function of every profile, encode and decode are
inverse, and the derived slot tables read exactly what Construct parses."""

import construct as c
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smcwire.abi.profiles import PROFILE_NAMES, get_profile
from smcwire.abi.regs import M64, NREGS, BitReg, Layout, Pair, Reg, pack
from smcwire.abi.rpc import RPC_FUNCTIONS
from smcwire.codec.decode import decode_call, decode_return
from smcwire.codec.encode import encode_call, encode_return

FUNCTIONS = sorted({(p, f.name) for p in PROFILE_NAMES for f in get_profile(p).functions})


def _values(layout: Layout) -> st.SearchStrategy[dict[str, int]]:
    return st.fixed_dictionaries({s.name: st.integers(0, 2**64 - 1 if s.pair else s.mask) for s in layout.fields})


@pytest.mark.parametrize("profile, name", FUNCTIONS)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_call_round_trip(profile, name, data):
    f = get_profile(profile).function(name)
    fields = data.draw(_values(f.call_layout))
    regs = encode_call(name, fields, profile)
    assert len(regs) == NREGS and regs[0] == f.id
    call = decode_call(regs, profile)
    assert call.function is f and call.fields == fields
    assert encode_call(name, call.fields, profile) == regs


@pytest.mark.parametrize("profile, name", FUNCTIONS)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_return_round_trip(profile, name, data):
    f = get_profile(profile).function(name)
    status, layout = data.draw(st.sampled_from(sorted(f.return_layouts.items(), key=lambda kv: str(kv[0]))))
    fields = data.draw(_values(layout))
    if status is not None and layout.slots[0].name in fields:
        fields[layout.slots[0].name] = status
    elif status is None and layout.slots[0].name in fields:
        # the default layout answers any status without its own layout
        while fields[layout.slots[0].name] in f.return_layouts:
            fields[layout.slots[0].name] += 1
    regs = encode_return(name, fields, profile)
    ret = decode_return(encode_call(name, {}, profile), regs, profile)
    if ret.rpc is None and not ret.is_rpc:
        assert ret.layout is layout
        assert ret.fields == fields


@pytest.mark.parametrize("func", sorted(RPC_FUNCTIONS))
@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_rpc_round_trip(func, data):
    rpc = RPC_FUNCTIONS[func]
    request = data.draw(_values(rpc.request_layout))
    regs = encode_return("OPTEE_SMC_CALL_WITH_ARG", request, rpc=func)
    ret = decode_return(encode_call("OPTEE_SMC_CALL_WITH_ARG", {}), regs)
    assert ret.rpc is rpc and ret.fields == request
    reply = data.draw(_values(rpc.reply_layout))
    regs = encode_call("OPTEE_SMC_CALL_RETURN_FROM_RPC", reply, rpc=func)
    call = decode_call(regs, rpc=func)
    assert call.rpc is rpc and call.fields == reply


def _construct_fields(layout: Layout, parsed: c.Container) -> dict[str, int]:
    """The FIELD values of a Construct parse, flattened like the slot table."""
    out = {}
    for member in layout.struct.subcons:
        sub = member.subcon
        if isinstance(sub, BitReg):
            out.update({p.name: parsed[member.name][p.name] for p in sub.parts})
        elif isinstance(sub, (Reg, Pair)):
            out[member.name] = parsed[member.name]
    return {s.name: out[s.name] for s in layout.fields}


ALL_LAYOUTS = [(f"{p}:{f.name}:call", f.call_layout, f.id) for p in PROFILE_NAMES for f in get_profile(p).functions]
ALL_LAYOUTS += [(f"mainline:{f.name}:ret{k}", lay, None) for f in get_profile().functions
                for k, lay in f.return_layouts.items()]
ALL_LAYOUTS += [(f"{r.name}:{part}", lay, None) for r in RPC_FUNCTIONS.values()
                for part, lay in (("request", r.request_layout), ("reply", r.reply_layout))]


@pytest.mark.parametrize("label, layout, fid", ALL_LAYOUTS, ids=[x[0] for x in ALL_LAYOUTS])
@settings(max_examples=20, deadline=None)
@given(regs=st.lists(st.integers(0, M64), min_size=NREGS, max_size=NREGS))
def test_slot_table_equals_construct(label, layout, fid, regs):
    """The hot path's derived tables read what the Construct Struct parses, for any registers."""
    if layout.struct.subcons[0].subcon.__class__ is c.Const:
        regs[0] = layout.struct.subcons[0].subcon.value
    regs = tuple(regs)
    parsed = layout.struct.parse(pack(regs))
    assert {s.name: s.get(regs) for s in layout.fields} == _construct_fields(layout, parsed)
