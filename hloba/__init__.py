"""hloba: Hybrid-Ensemble Latent Observation-Background Assimilation reanalysis pipeline."""

__version__ = "0.1.0"
