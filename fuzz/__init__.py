"""Coverage-guided fuzzing of smcwire's input paths (atheris; the optional ``fuzz`` extra)."""
