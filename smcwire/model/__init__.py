"""The event model: typed, immutable records the input layer produces and the analyzer reads."""
