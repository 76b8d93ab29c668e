"""What the workflow plans with before any job: the analysis methods' traits and the choices of the
assimilation settings, without torch.

Snakemake imports the settings modules while it parses the Snakefile, on every start (a dry run, a
rerun of one year, each job a cluster executor submits); with torch among their imports each start
cost two more seconds. The methods' classes (:mod:`hloba.assim.methods`) take these traits from
:data:`METHODS` and add what only a running stream needs.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MethodTraits:
    """A method's traits that decide which jobs feed it and which settings are its own."""

    tuned: bool = False  # reads rule tune_stream's factors
    needs_static_covariance: bool = False  # reads rule oi_covariance's file
    # StreamConfig fields that this method alone reads: the other methods give the same analyses
    # whatever their values (tests/test_stream.py), so their rule params leave them out
    own_settings: tuple[str, ...] = ()


# a new method: its class in hloba.assim.methods (REGISTRY) and its traits here, under its name
METHODS: dict[str, MethodTraits] = {
    "hloba": MethodTraits(
        tuned=True,
        own_settings=("update", "calibrate_observation_variance", "background_variance", "decoded_increment",
                      "weighted_state", "increment_weight_refits", "increment_weight_step", "increment_bands",
                      "lead_guess", "correlated_gain", "o2lnet_precision", "smoother_hours"),
    ),
    "free": MethodTraits(),
    "l3dvar": MethodTraits(),
    "l4dvar": MethodTraits(),
    "oi": MethodTraits(needs_static_covariance=True),
}
NAMES = tuple(METHODS)

# assimilation.update: O2Lnet's estimate weighed as its posterior (the paper's) or as its likelihood
UPDATE_FORMS = ("posterior", "likelihood")
# assimilation.decoded_increment: the whole decoded increment (the paper's) or per-channel weights
# of it fitted by rule tune_stream
DECODED_INCREMENTS = ("full", "weighted")
# assimilation.weighted_state: with weighted increments, the stream cycles from the weighted
# combination itself or from its projection through the autoencoder (the archive's decoding), or
# adds the weighted decoded increment to the background itself (incremental), or keeps a fitted part
# of what the autoencoder cannot represent of the background (blended)
WEIGHTED_STATES = ("projected", "combined", "incremental", "blended")
# assimilation.lead_guess: what HLOBA's lead checks a later cycle's observations against: the
# background's forecast M^j(x_b), the background itself, or the background carried on in time
LEAD_GUESSES = ("forecast", "persistence", "extrapolated")
