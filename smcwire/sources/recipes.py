"""tracefs commands that record every SMC the OP-TEE driver issues, with its result.

The optee tracepoints (formats.md §2.1) see only yielding calls: the fast calls of the probe
(UID, revision, capabilities, thread count) and of the notification interrupt never reach them
(§2.2). Every SMC of the driver's SMC ABI goes through one function, drivers/tee/optee/smc_abi.c::

    static void optee_smccc_smc(unsigned long a0, …, unsigned long a7, struct arm_smccc_res *res)

so a kprobe on its entry records a0-a7 and a kretprobe on it records the result that the SMC
wrote to ``*res``. Under a hypervisor (device-tree ``method = "hvc"``) the driver calls
``optee_smccc_hvc`` instead, with the same arguments; the FF-A ABI (ffa_abi.c) goes elsewhere.
The event and field names below are the ones ftrace.py reads: an entry with ``a0=`` … ``a7=``
and a return probe (``<-`` in its site) with ``r0=`` … ``r3=``.

arm64 (AAPCS64): a0-a7 are x0-x7; ``res``, the 9th argument, is passed on the stack, at ``$stack0``
on entry. When the function returns, the stack pointer is back where it was at entry, so
``$stack0`` in the kretprobe is the same slot and ``+0($stack0)`` … ``+24($stack0)`` are
``res->a0`` … ``res->a3`` (8-byte ``unsigned long``). Captured on Linux 6.1 and 6.12 (traces/qemu
README, dbg-kretprobe and newkernel-kretprobe). 6.12 also accepts ``$argN`` in a return probe, so
the return line carries the call's a0/a1; 6.1 rejects it. The first version accepting it was not
checked, so the recipe uses it from 6.12 on.

arm32 (AAPCS): a0-a3 are r0-r3, a4-a7 and ``res`` are on the stack: ``$stack0`` … ``$stack3``
and ``$stack4`` (4-byte slots). Verified against the kernel's sources (torvalds/linux, read through
the code index): Documentation/trace/kprobetrace.rst (``%REG``, ``$stackN``, ``+|-OFFS(FETCHARG)``,
``NAME=FETCHARG:TYPE``, ``x32`` types; ``$argN`` "only for the probe on function entry"),
arch/arm/kernel/ptrace.c ``regoffset_table`` (register names ``r0`` … ``r10``, ``fp``, ``ip``,
``sp``, ``lr``, ``pc``), arch/arm/include/asm/ptrace.h (``regs_get_kernel_stack_nth()`` for
``$stackN``; no ``regs_get_kernel_argument()``, so no ``$argN`` on arm32), arch/arm/Kconfig
(``HAVE_REGS_AND_STACK_ACCESS_API``), arch/arm/kernel/smccc-call.S (``ldm r12, {r4-r7}`` loads
a4-a7 from the caller's stack; after the SMC ``stm r12, {r0-r3}`` stores the result and returns
with r0-r3 unchanged). The arm32 return probe reads r0-r3 as registers, not through ``$stack4``:
the kretprobe trampoline (arch/arm/probes/kprobes/core.c, rethook.c) saves the stack pointer in
its pt_regs only with CONFIG_FRAME_POINTER, so ``$stack4`` at return is unreliable elsewhere.
Unverified on arm32: any run on hardware or QEMU, and that the compiled epilogue of
``optee_smccc_smc`` (a void function) leaves r0-r3 as __arm_smccc_smc returned them; with
CONFIG_FRAME_POINTER, ``r0=+0($stack4):x32`` … ``r3=+12($stack4):x32`` is the alternative.
"""

from __future__ import annotations

from dataclasses import dataclass

TRACEFS = "/sys/kernel/tracing"
GROUP = "smcw"
ENTRY_EVENT = "optee_smccc_smc"
RETURN_EVENT = "optee_smccc_smc_ret"
PROBED = "optee:optee_smccc_smc"  # MOD:SYM; a built-in driver (CONFIG_OPTEE=y) is probed without "optee:"
BUFFER_SIZE_KB = 32768  # per CPU, as in the captures: a 27,000-call xtest run fit without overrun
OPTEE_TRACEPOINTS_SINCE = (5, 13)  # formats.md §2.3
RETURN_ARGS_SINCE = (6, 12)


@dataclass(frozen=True)
class ProbeFetch:
    """The fetch arguments of the entry probe and of the return probe on one architecture."""

    entry: str
    ret: str
    ret_call_args: str  # appended to ``ret`` on kernels that accept $argN in a return probe ("" if none)


FETCH: dict[str, ProbeFetch] = {
    "arm64": ProbeFetch(
        entry=" ".join(f"a{i}=%x{i}:x32" for i in range(8)) + " res=$stack0:x64",
        ret="res=$stack0:x64 " + " ".join(f"r{i}=+{8 * i}($stack0):x64" for i in range(4)),
        ret_call_args="a0=$arg1:x32 a1=$arg2:x32",
    ),
    "arm32": ProbeFetch(
        entry=" ".join(f"a{i}=%r{i}:x32" for i in range(4)) + " "
        + " ".join(f"a{i + 4}=$stack{i}:x32" for i in range(4)) + " res=$stack4:x32",
        ret=" ".join(f"r{i}=%r{i}:x32" for i in range(4)),
        ret_call_args="",
    ),
}
ARCH_ALIASES = {"arm64": "arm64", "aarch64": "arm64", "arm": "arm32", "arm32": "arm32", "armv7": "arm32"}
ARCHES = tuple(FETCH)
KERNELS = ("6.1", "6.12")  # the captured kernels: the return probe fetches $argN from 6.12 on


def _version(kernel: str) -> tuple[int, int]:
    try:
        major, minor = (int(x) for x in kernel.split(".")[:2])
    except ValueError:
        raise ValueError(f"kernel version {kernel!r}: expected MAJOR.MINOR, e.g. 6.1") from None
    return major, minor


def probe_definitions(arch: str, kernel: str = "6.1") -> tuple[str, str]:
    """The two ``kprobe_events`` lines (entry probe, return probe) for ``arch`` and ``kernel``."""
    try:
        fetch = FETCH[ARCH_ALIASES[arch.lower()]]
    except KeyError:
        raise ValueError(f"architecture {arch!r}: choose from {', '.join(ARCH_ALIASES)}") from None
    ret = fetch.ret
    if fetch.ret_call_args and _version(kernel) >= RETURN_ARGS_SINCE:
        ret += " " + fetch.ret_call_args
    return f"p:{GROUP}/{ENTRY_EVENT} {PROBED} {fetch.entry}", f"r:{GROUP}/{RETURN_EVENT} {PROBED} {ret}"


def tracing_setup(arch: str, kernel: str = "6.1") -> str:
    """A shell script to paste on the target: probes and optee tracepoints on, then how to collect."""
    entry, ret = probe_definitions(arch, kernel)
    optee = (
        "echo 1 > events/optee/enable          # yielding calls with their param= chain key"
        if _version(kernel) >= OPTEE_TRACEPOINTS_SINCE
        else "# (no optee tracepoints before Linux 5.13: the probes alone record the SMCs)"
    )
    return "\n".join([
        f"# smcwire: record every SMC of the OP-TEE driver ({arch}, Linux {kernel})",
        f"cd {TRACEFS}                  # older kernels: /sys/kernel/debug/tracing",
        "echo 0 > tracing_on",
        f"echo {BUFFER_SIZE_KB} > buffer_size_kb",
        "# 'optee:' names the optee.ko module (it may be loaded later);",
        "# for a driver built in (CONFIG_OPTEE=y), write plain optee_smccc_smc; with method = \"hvc\"",
        "# in the device tree (a guest), probe optee_smccc_hvc the same way",
        f"echo '{entry}' >> kprobe_events",
        f"echo '{ret}' >> kprobe_events",
        f"echo 1 > events/{GROUP}/enable",
        optee,
        "echo > trace",
        "echo 1 > tracing_on",
        "# ... run the workload, then:",
        "echo 0 > tracing_on",
        "cat trace > /tmp/smc-trace.txt          # then: smcwire parse smc-trace.txt",
        "",
    ])
