"""Simulated nodes that speak the real protocol, for the demo, the tests and benchmarks."""
