"""smcwire: OP-TEE SMC ABI wire-level encoder/decoder and trace analyzer.

The library API is importable from here; modules load on first use so that ``import smcwire``
stays light::

    import smcwire
    call = smcwire.decode_call((0x32000004, 0, 0x4632C000))
    ret = smcwire.decode_return(call, (0xFFFF0004, 0, 0, 1))
    regs = smcwire.encode_call("OPTEE_SMC_CALL_WITH_ARG", {"arg_pa": 0x4632C000})
    report = smcwire.analyze_capture("traces/qemu-dbg-kretprobe")  # plain data: summary, findings
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {
    "decode_function_id": "smcwire.codec.decode",
    "decode_call": "smcwire.codec.decode",
    "decode_return": "smcwire.codec.decode",
    "Decoder": "smcwire.codec.decode",
    "Call": "smcwire.codec.decode",
    "Return": "smcwire.codec.decode",
    "FunctionId": "smcwire.codec.decode",
    "encode_call": "smcwire.codec.encode",
    "encode_return": "smcwire.codec.encode",
    "decode_caps": "smcwire.codec.caps",
    "decode_msg_arg": "smcwire.codec.msg",
    "parse_registers": "smcwire.codec.values",
    "get_profile": "smcwire.abi.profiles",
    "PROFILE_NAMES": "smcwire.abi.profiles",
    "Profile": "smcwire.abi.profiles",
    "Function": "smcwire.abi.function",
    "load_extension": "smcwire.abi.extension",
    "EncodeError": "smcwire.abi.regs",
    "ExtensionError": "smcwire.abi.extension",
    "InputError": "smcwire.codec.values",
    "MsgError": "smcwire.codec.msg",
    "TraceReader": "smcwire.sources.reader",
    "InputFileError": "smcwire.sources.io",
    "Analysis": "smcwire.pipeline",
    "captures": "smcwire.pipeline",
    "analyze_capture": "smcwire.render.report",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'smcwire' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)
