"""The catalog of ABI-misuse rules: stable ids, severities, the evidence each needs, its source.

Ids are stable: a rule is never renumbered; families take blocks of ten, in this order: pairing
(SMC00x), function IDs (SMC01x), RPC round trips (SMC02x), RPC shared memory (SMC03x),
capabilities (SMC04x), call arguments (SMC05x), OP-TEE threads (SMC06x), results (SMC07x), system
threads (SMC08x). Citations follow abi.md (§7.2 S1-S17, §7.3 TF-A, §7.4 X1-X13, §7.5 checks 1-18).

``needs`` holds evidence kinds as ``TraceState.evidence_kinds()`` names them; an element
``"a|b"`` is satisfied by either kind (e.g. the SMC entries of yielding calls come from the optee
tracepoints or from a kprobe on the driver's SMC entry).
"""

from __future__ import annotations

from dataclasses import dataclass

SEVERITIES = ("info", "warning", "error")

SMC = "tracepoints|fast_calls"  # the SMC entries, from either source


@dataclass(frozen=True, slots=True)
class Rule:
    """One check: what it is called, how bad a finding is, what it needs and who says so."""

    id: str
    name: str
    severity: str  # the severity of a genuine finding; capture artefacts are reported as "info"
    needs: frozenset[str]
    source: str
    summary: str
    profiles: frozenset[str] | None = None  # the ABI profiles it applies to; None: every profile

    def missing(self, kinds: set[str]) -> str | None:
        """The evidence this capture lacks for the rule, as a phrase; None when it can run."""
        lacking = [" or ".join(EVIDENCE.get(k, k) for k in need.split("|")) for need in sorted(self.needs)
                   if not any(kind in kinds for kind in need.split("|"))]
        return ", ".join(lacking) or None


# what each evidence kind (TraceState.evidence_kinds) is, for "could not run" messages
EVIDENCE = {
    "tracepoints": "the optee tracepoints",
    "fast_calls": "fast calls (a kprobe on the SMC entry)",
    "fast_returns": "fast-call results (a return probe on the SMC entry)",
    "returns": "SMC results",
    "dmesg": "the driver's kernel log",
    "optee_console": "the OP-TEE console",
    "tfa_console": "the TF-A console",
}


def _rule(id: str, name: str, severity: str, needs: tuple[str, ...], source: str, summary: str,
          profiles: tuple[str, ...] | None = None) -> Rule:
    assert severity in SEVERITIES
    return Rule(id, name, severity, frozenset(needs), source, summary,
                frozenset(profiles) if profiles is not None else None)


_TRACE_H = "Linux drivers/tee/optee/optee_trace.h and smc_abi.c optee_smc_do_call_with_arg (abi.md §7.1)"
_RESUME = "optee_os thread.c thread_resume_from_rpc, thread_handle_std_smc (S4); Xen optee.c handle_rpc (X10)"
_SYSINV = "LKML \"tee: system invocation\" v1/v2 (2023), optee_os PR #5789 (abi.md §8)"
_SYSINV_PROFILES = ("sysinv-v1", "sysinv-flag", "sysinv-v2")

RULES: tuple[Rule, ...] = (
    # --- pairing ----------------------------------------------------------------------------
    _rule("SMC001", "begin-without-end", "error", ("returns", SMC), _TRACE_H,
          "an SMC entry whose return is missing (outside lost-event gaps and the capture's end)"),
    _rule("SMC002", "end-without-begin", "error", ("returns", SMC), _TRACE_H,
          "an SMC return whose entry is missing (outside lost-event gaps and the capture's start)"),
    _rule("SMC003", "nested-entry", "warning", ("returns", SMC),
          "SMCCC (ARM DEN 0028): an SMC completes before its CPU runs normal-world code again; "
          "Linux optee irq_handler issues only GET_ASYNC_NOTIF_VALUE from hard IRQ (abi.md §12)",
          "an SMC entered on a CPU inside another SMC of that CPU, not from the async-notification IRQ"),
    # --- function IDs (abi.md §7.5 checks 1-4) -----------------------------------------------
    _rule("SMC010", "unknown-function", "error", (SMC,),
          "optee_os entry_fast.c __tee_entry_fast (S1), thread_optee_smc.c std_smc_entry (S2); optee_os#1401",
          "a function ID in the Trusted-OS range (owners 50-63) that the ABI does not define"),
    _rule("SMC011", "fast-yield-mismatch", "error", (SMC,),
          "optee_smc.h OPTEE_SMC_FAST_CALL_VAL / OPTEE_SMC_STD_CALL_VAL; optee_os S1, S2",
          "a known OP-TEE function number issued with the wrong call type (fast vs yielding)"),
    _rule("SMC012", "smc64-convention", "error", (SMC,),
          "optee_smc.h: every OP-TEE function is SMC32 (OPTEE_SMC_32); abi.md §2",
          "an OP-TEE function number issued with the SMC64 bit set"),
    _rule("SMC013", "reserved-bits", "error", (SMC,),
          "TF-A common/runtime_svc.c sync_handler (FUNCID_FC_RESERVED, bits 23:17; abi.md §7.3)",
          "a fast call with reserved function-ID bits 23:17 set: TF-A answers SMC_UNK"),
    # --- RPC round trips ------------------------------------------------------------------------
    _rule("SMC020", "resume-without-rpc", "error", ("returns", SMC), _RESUME,
          "RETURN_FROM_RPC that answers no RPC request of its call"),
    _rule("SMC021", "resume-thread-mismatch", "error", ("returns", SMC), _RESUME,
          "RETURN_FROM_RPC whose a3 differs from the thread id (a3) of the RPC it answers"),
    _rule("SMC022", "resume-info-not-preserved", "warning", ("returns", SMC),
          "optee_smc.h OPTEE_SMC_RETURN_RPC_* (a3-a7 resume information, FOREIGN_INTR a1-a7 preserved); "
          "Linux smc_abi.c optee_smc_do_call_with_arg",
          "RETURN_FROM_RPC that changes the resume registers (a6, a7; FOREIGN_INTR a1, a2)"),
    _rule("SMC023", "rpc-unanswered", "error", ("returns", SMC),
          "optee_os thread_optee_smc.c thread_rpc (the thread stays SUSPENDED until RETURN_FROM_RPC)",
          "an RPC request never answered by RETURN_FROM_RPC: its OP-TEE thread stays suspended"),
    _rule("SMC024", "unknown-rpc-function", "warning", ("returns", SMC),
          "optee_smc.h OPTEE_SMC_RPC_FUNC_*; Linux smc_abi.c (\"Unknown RPC func\"); Xen optee.c handle_rpc (X12)",
          "an RPC request with a function number the ABI does not define"),
    # --- RPC shared memory (abi.md §7.5 check 7) -----------------------------------------------
    _rule("SMC030", "rpc-alloc-failed", "error", ("returns", SMC),
          "optee_smc.h OPTEE_SMC_RPC_FUNC_ALLOC; optee_os thread_optee_smc.c thread_rpc_alloc_arg",
          "RPC ALLOC answered with a zero or misaligned buffer address: the allocation failed"),
    _rule("SMC031", "rpc-alloc-no-cookie", "error", ("returns", SMC),
          "optee_smc.h OPTEE_SMC_RPC_FUNC_ALLOC (a4/a5 = cookie of the buffer)",
          "RPC ALLOC answered with a buffer but no cookie in a4/a5"),
    _rule("SMC032", "shm-never-freed", "error", ("returns", SMC),
          "optee_smc.h OPTEE_SMC_RPC_FUNC_ALLOC/FREE, OPTEE_SMC_ENABLE_SHM_CACHE; optee_os thread_optee_smc.c",
          "shared memory handed out by RPC ALLOC and never released by RPC FREE or DISABLE_SHM_CACHE"),
    _rule("SMC033", "shm-double-free", "error", ("returns", SMC),
          "optee_smc.h OPTEE_SMC_RPC_FUNC_FREE; Linux smc_abi.c (tee_shm_free(reg_pair_to_ptr(a1, a2)))",
          "RPC FREE of a cookie that was already freed"),
    _rule("SMC034", "shm-unknown-cookie", "error", ("returns", SMC),
          "optee_smc.h OPTEE_SMC_RPC_FUNC_FREE/CMD; Xen optee.c (\"Can't find SHM-RPC with cookie\", X11)",
          "RPC FREE or CMD naming a cookie that no RPC ALLOC handed out"),
    # --- capabilities (abi.md §7.5 checks 8, 11-14) ---------------------------------------------
    _rule("SMC040", "call-before-exchange", "warning", ("fast_calls",),
          "Linux smc_abi.c optee_probe: the capabilities decide which calls are made (abi.md §7.1)",
          "a call that depends on the capabilities made during a probe before EXCHANGE_CAPABILITIES"),
    _rule("SMC041", "rpc-arg-without-cap", "error", (SMC, "fast_returns"),
          "Linux smc_abi.c optee_smc_do_call_with_arg; optee_os < 3.17 (S2); Xen optee.c (X1, X4)",
          "CALL_WITH_RPC_ARG or CALL_WITH_REGD_ARG although EXCHANGE_CAPABILITIES reported no RPC_ARG"),
    _rule("SMC042", "regd-arg-without-dynamic-shm", "error", (SMC, "fast_returns|dmesg"),
          "Linux smc_abi.c optee_smc_do_call_with_arg (REGD_ARG only for registered, dynamic SHM); "
          "optee_smc.h OPTEE_SMC_SEC_CAP_DYNAMIC_SHM",
          "CALL_WITH_REGD_ARG although dynamic shared memory was not negotiated"),
    _rule("SMC043", "nsec-caps-unknown-bits", "error", ("fast_calls",),
          "optee_os entry_fast.c tee_entry_exchange_capabilities (S12)",
          "EXCHANGE_CAPABILITIES offering normal-world capability bits other than UNIPROCESSOR"),
    _rule("SMC044", "exchange-a3-mbz", "warning", ("fast_returns",),
          "optee_smc.h OPTEE_SMC_EXCHANGE_CAPABILITIES (a3 bits 31:8 reserved, MBZ)",
          "EXCHANGE_CAPABILITIES answered with reserved bits 31:8 of a3 set"),
    _rule("SMC045", "shm-cache-with-rpc-arg", "warning", ("fast_returns",),
          "Linux smc_abi.c optee_probe (ENABLE_SHM_CACHE only when rpc_param_count == 0)",
          "ENABLE_SHM_CACHE although RPC_ARG with a preallocated RPC argument was negotiated"),
    _rule("SMC046", "disable-shm-cache-loop", "warning", ("fast_returns",),
          "optee_smc.h OPTEE_SMC_DISABLE_SHM_CACHE; optee_os entry_fast.c (S13); Linux __optee_disable_shm_cache",
          "a DISABLE_SHM_CACHE loop that stops before ENOTAVAIL"),
    _rule("SMC047", "async-notif-without-cap", "error", ("fast_returns",),
          "optee_os entry_fast.c (CFG_CORE_ASYNC_NOTIF, S17); optee_smc.h OPTEE_SMC_SEC_CAP_ASYNC_NOTIF",
          "ENABLE_ASYNC_NOTIF or GET_ASYNC_NOTIF_VALUE although the ASYNC_NOTIF capability was not reported"),
    _rule("SMC048", "async-notif-a2-mbz", "warning", ("fast_returns",),
          "optee_smc.h OPTEE_SMC_GET_ASYNC_NOTIF_VALUE (a2 bits 31:2 MBZ)",
          "GET_ASYNC_NOTIF_VALUE answered with reserved bits 31:2 of a2 set"),
    # --- call arguments (abi.md §7.5 checks 9, 15, 17) -----------------------------------------
    _rule("SMC050", "arg-not-aligned", "error", (SMC,),
          "optee_os thread_optee_smc.c std_entry_with_parg (S5, S6); Xen optee.c copy_std_request (X6)",
          "CALL_WITH_ARG/RPC_ARG with a message address OP-TEE rejects for its alignment (EBADADDR)"),
    _rule("SMC051", "vm-call-client-id", "error", ("fast_calls",),
          "optee_os entry_fast.c tee_entry_vm_created / tee_entry_vm_destroyed (S16)",
          "VM_CREATED or VM_DESTROYED from a client other than the hypervisor (a7 != 0)"),
    _rule("SMC052", "protmem-config-mbz", "warning", ("fast_calls",),
          "optee_smc.h OPTEE_SMC_GET_PROTMEM_CONFIG (\"a2-6 Not used, must be zero\")",
          "GET_PROTMEM_CONFIG with a2-a6 not zero"),
    # --- OP-TEE threads (abi.md §7.5 check 16) --------------------------------------------------
    _rule("SMC060", "threads-exceeded", "warning", (SMC, "fast_returns"),
          "optee_os thread_handle_std_smc (S3); Xen optee.c allocate_std_call (X5); Linux >= 6.8 call queue (§8)",
          "more yielding calls in flight than GET_THREAD_COUNT reported"),
    _rule("SMC061", "ethread-limit-storm", "warning", ("returns", SMC),
          "optee_os thread_handle_std_smc (S3); Linux smc_abi.c call queue (abi.md §7.5 check 16, §12)",
          "ETHREAD_LIMIT answers: how many, how often, the longest wait (routine before Linux 6.8)"),
    # --- results (abi.md §7.2, §7.3, §7.5 check 18) ---------------------------------------------
    _rule("SMC070", "no-optee", "error", ("returns", SMC),
          "TF-A services/spd/opteed/opteed_main.c, common/runtime_svc.c (abi.md §7.3); "
          "Linux smc_abi.c optee_msg_api_uid_is_optee_api",
          "no OP-TEE answers: SMC_UNK or a foreign UID from CALLS_UID, TF-A's -EINVAL, SMC_UNK to core calls"),
    _rule("SMC071", "unexpected-result", "error", ("returns", SMC),
          "optee_smc.h OPTEE_SMC_RETURN_* (abi.md §3, §7.5 check 18); Xen optee.c handle_std_call (X7)",
          "an a0 result that is no OPTEE_SMC_RETURN_* value"),
    _rule("SMC072", "error-return", "error", ("returns", SMC),
          "optee_os thread_optee_smc.c, entry_fast.c (abi.md §7.2 S1-S17); Xen optee.c (§7.4)",
          "an error answer, with the optee_os (or Xen) condition that produces it"),
    # --- system threads (abi.md §8) ---------------------------------------------------------------
    _rule("SMC080", "system-thread-unavailable", "warning", ("fast_returns",),
          "Linux v6.8 \"tee: optee: support tracking system threads\" (45bc2c9b5b23), smc_abi.c optee_probe",
          "GET_THREAD_COUNT leaves Linux >= 6.8 no thread to reserve for system sessions", ("mainline",)),
    _rule("SMC081", "sysinv-without-cap", "error", (SMC, "fast_returns"), _SYSINV,
          "a system invocation although SEC_CAP_SYSTEM_THREAD was not negotiated", _SYSINV_PROFILES),
    _rule("SMC082", "system-thread-unused", "warning", ("fast_returns",), _SYSINV,
          "system threads provisioned (SYSTEM_THREAD, or RESERVE_SYS_THREAD answered OK) but never used",
          _SYSINV_PROFILES),
)

RULES_BY_ID: dict[str, Rule] = {r.id: r for r in RULES}
RULES_BY_NAME: dict[str, Rule] = {r.name: r for r in RULES}
