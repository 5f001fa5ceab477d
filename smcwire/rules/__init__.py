"""ABI-misuse rules: the catalog (``catalog.RULES``), one module per rule family, and the engine
that runs them over a capture's call flows (``engine.RuleEngine``)."""
