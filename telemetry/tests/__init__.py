"""Tests of the telemetry app."""
