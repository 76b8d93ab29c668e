"""Observations: schema and validation, simulated networks, the observation operator."""
