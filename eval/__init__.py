"""Metrics, the full-ranking evaluator, training-free baselines and reports (PROTOCOL.md)."""
