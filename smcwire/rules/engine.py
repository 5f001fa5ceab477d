"""The rule engine: runs the catalog's checks over a capture's flows as they complete.

Each completed flow goes to the checks that look at its function (``Check.functions``), in
catalog order; rule ids of the findings are added to ``flow.findings``. ``finish`` runs the
end-of-capture checks; ``not_run`` then names the rules this capture could not exercise and the
evidence it lacks. State stays bounded: checks keep what is in flight or a few counters, never
lists that grow with the trace.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..abi.profiles import Profile, get_profile
from ..flows.model import Finding, Flow
from ..flows.state import TraceState
from . import args, capabilities, ids, pairing, results, rpc, shm, systhreads, threads
from .base import Check
from .catalog import RULES, RULES_BY_ID, RULES_BY_NAME, Rule

CHECKS: dict[str, type[Check]] = {
    check.rule.id: check
    for module in (pairing, ids, rpc, shm, capabilities, args, threads, results, systhreads)
    for check in module.CHECKS
}


def resolve(rules: Iterable[str]) -> set[str]:
    """Rule ids from ids or names; KeyError naming the unknown ones."""
    out, unknown = set(), []
    for rule in rules:
        found = RULES_BY_ID.get(rule.upper()) or RULES_BY_NAME.get(rule)
        if found is None:
            unknown.append(rule)
        else:
            out.add(found.id)
    if unknown:
        raise KeyError(f"unknown rule(s) {', '.join(unknown)} (see `smcwire rules`)")
    return out


def applies(rule: Rule, profile: Profile) -> bool:
    """Whether ``rule`` applies to ``profile`` (an extended profile "base+file" counts as its base)."""
    return rule.profiles is None or profile.name.split("+", 1)[0] in rule.profiles


class RuleEngine:
    """The selected rules of the catalog, applicable to ``profile``, over one capture's ``state``."""

    def __init__(self, state: TraceState, profile: Profile | str, select: Iterable[str] | None = None,
                 ignore: Iterable[str] | None = None) -> None:
        self.state = state
        self.profile = get_profile(profile) if isinstance(profile, str) else profile
        chosen = resolve(select) if select else set(CHECKS)
        chosen -= resolve(ignore or ())
        self.checks = [CHECKS[r.id](self.profile) for r in RULES if r.id in chosen and applies(r, self.profile)]
        self._by_function: dict[str | None, list[Check]] = {}

    def _checks_for(self, function: str | None) -> list[Check]:
        checks = self._by_function.get(function)
        if checks is None:
            checks = self._by_function[function] = [
                c for c in self.checks if c.functions is None or function in c.functions]
        return checks

    def on_flow(self, flow: Flow) -> list[Finding]:
        """The findings about a completed flow; their rule ids are added to ``flow.findings``."""
        out: list[Finding] = []
        state = self.state
        for check in self._checks_for(flow.function):
            found = check.on_flow(flow, state)
            if found:
                out.extend(found)
        for finding in out:
            if finding.rule not in flow.findings:
                flow.findings.append(finding.rule)
        return out

    def finish(self) -> list[Finding]:
        """The findings only the whole capture shows (leaks, storms, deferred verdicts)."""
        out: list[Finding] = []
        for check in self.checks:
            out.extend(check.finish(self.state))
        return out

    def not_run(self) -> list[tuple[Rule, str]]:
        """The rules this capture could not exercise, each with what it lacks (call after ``finish``)."""
        kinds = self.state.evidence_kinds()
        out = []
        for check in self.checks:
            missing = check.rule.missing(kinds) or check.unmet(self.state)
            if missing:
                out.append((check.rule, missing))
        return out
