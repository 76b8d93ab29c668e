# hloba: HLOBA latent data assimilation reanalysis pipeline.
# The Snakefile only wires things; rules live in workflow/rules/, logic in the hloba package.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/ensemble.smk"
include: "workflow/rules/assimilate.smk"
include: "workflow/rules/archive.smk"
include: "workflow/rules/verify.smk"


rule all:
    default_target: True
    input:
        reference_files(ALL_YEARS),
        "results/prep/normalization.nc",
        observation_files(ALL_YEARS),
        "results/models/autoencoder.pt",
        "results/models/o2lnet.pt",
        "results/ensemble/calibration.nc",
        reanalysis_files(YEARS.reanalysis),
        figure_files(YEARS.reanalysis),
        evaluation_files(YEARS.reanalysis),
        comparison_files(),
        seam_files(),
