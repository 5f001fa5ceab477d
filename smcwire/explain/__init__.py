"""Explanations and statistics: which features a capture shows active and why, and its numbers."""
