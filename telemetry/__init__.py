"""Telemetry: the pages and signals people watch the fleet through. Reads everything, owns nothing."""
