"""Call flows: the tracker, its state, and the flow model."""
