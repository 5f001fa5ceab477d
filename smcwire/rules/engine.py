"""The rule engine: runs the catalog's checks over a capture's flows as they complete.

Each completed flow goes to the checks that look at its function (``Check.functions``) and at
one of its traits (``Check.traits``, ``base.traits_of``), in catalog order: most flows are quiet
calls, which only the checks without traits see. The checks of each (function, traits) pair are
chosen once. Rule ids of the findings are added to ``flow.findings``. ``finish`` runs the
end-of-capture checks; ``not_run`` then names the rules this capture could not exercise and the
evidence it lacks. State stays bounded: checks keep what is in flight or a few counters, never
lists that grow with the trace.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ..abi.profiles import Profile, get_profile
from ..flows.model import Finding, Flow
from ..flows.state import TraceState
from . import args, capabilities, ids, pairing, results, rpc, shm, systhreads, threads
from .base import Check, traits_of
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


OnFlow = Callable[[Flow, TraceState], Iterable[Finding]]


class RuleEngine:
    """The selected rules of the catalog, applicable to ``profile``, over one capture's ``state``.
    ``every_flow`` ignores the checks' traits and runs each check on every flow of its functions:
    the reference behaviour, whose findings the traits must not change."""

    def __init__(self, state: TraceState, profile: Profile | str, select: Iterable[str] | None = None,
                 ignore: Iterable[str] | None = None, every_flow: bool = False) -> None:
        self.state = state
        self.profile = get_profile(profile) if isinstance(profile, str) else profile
        chosen = resolve(select) if select else set(CHECKS)
        chosen -= resolve(ignore or ())
        self.checks = [CHECKS[r.id](self.profile) for r in RULES if r.id in chosen and applies(r, self.profile)]
        self.every_flow = every_flow
        self._routes: dict[tuple[str | None, frozenset[str]], list[OnFlow]] = {}

    def _route(self, function: str | None, traits: frozenset[str]) -> list[OnFlow]:
        """The checks that see a flow of ``function`` with ``traits``, remembered."""
        route = self._routes[function, traits] = [
            c.on_flow for c in self.checks
            if (c.functions is None or function in c.functions)
            and (c.traits is None or self.every_flow or not traits.isdisjoint(c.traits))]
        return route

    def on_flow(self, flow: Flow) -> list[Finding]:
        """The findings about a completed flow; their rule ids are added to ``flow.findings``."""
        function, traits = flow.function, traits_of(flow)
        route = self._routes.get((function, traits))
        if route is None:
            route = self._route(function, traits)
        out: list[Finding] = []
        state = self.state
        for on_flow in route:
            found = on_flow(flow, state)
            if found:
                out.extend(found)
        if out:
            findings = flow.findings
            for finding in out:
                if finding.rule not in findings:
                    findings.append(finding.rule)
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
