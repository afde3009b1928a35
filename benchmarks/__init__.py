"""Benchmarks of Warden's decision path (see `decisions.py`; run with `make bench`)."""
