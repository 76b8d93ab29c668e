"""Adapter for rules make_world_{k}: simulate one chain of the built-in atmosphere, one file per year."""

from _common import setup

log = setup(snakemake)  # noqa: F821

from hloba.runtime import portable_fft  # noqa: E402
from hloba.world.reference import write_reference_years  # noqa: E402
from hloba.world.simulate import WorldConfig  # noqa: E402

branch = portable_fft()  # before any FFT
config = WorldConfig.from_dict(snakemake.params.world)  # noqa: F821
log.info("world.transforms %s: %s", config.transforms, "numpy's pocketfft, the same world on every x86-64 host"
         if config.transforms == "pocketfft" else f"torch's (MKL branch {branch}), the same world on every Intel host")
paths = dict(zip(snakemake.params.years, snakemake.output))  # noqa: F821
write_reference_years(config, paths, device="cpu", chain=snakemake.params.chain)  # noqa: F821
