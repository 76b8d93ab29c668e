"""The ``hloba`` command line: one subcommand per pipeline stage that exists.

The workflow calls the library directly through ``workflow/scripts/``; the CLI is for running a
stage by hand, outside Snakemake.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from hloba import __version__


def parse_set(values: list[str]) -> dict:
    """``KEY=VALUE`` items (``--set``) as a dict, each value read as JSON (numbers such as ``1e-3``,
    ``true``, lists) or else kept as the string it is; an item without ``=`` is an error."""
    out = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep:
            raise SystemExit(f"hloba: --set expects KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def cmd_make_world(args: argparse.Namespace) -> int:
    from hloba.runtime import portable_fft
    from hloba.world.reference import write_reference_years
    from hloba.world.simulate import WorldConfig

    portable_fft()  # as rule make_world (for world.transforms: torch, the same world on every Intel host)

    world = {"seed": args.seed, "spinup_days": args.spinup_days, "qg": parse_set(args.set)}
    if args.transforms:  # else WorldConfig's default
        world["transforms"] = args.transforms
    config = WorldConfig.from_dict(world)
    out = Path(args.out_dir)
    paths = {year: out / f"{year}.nc" for year in args.years}
    write_reference_years(config, paths, device=args.device, chain=args.chain)
    return 0


def cmd_compute_normalization(args: argparse.Namespace) -> int:
    from hloba.normalization import write_normalization

    write_normalization(args.inputs, args.output, n_harmonics=args.harmonics)
    return 0


def cmd_simulate_observations(args: argparse.Namespace) -> int:
    import yaml

    from hloba.obs.networks import write_simulated_observations

    with open(args.networks) as f:
        system = yaml.safe_load(f)
    system = system.get("observations", system)
    write_simulated_observations(args.reference, args.output, system, args.year)
    return 0


def _training(args: argparse.Namespace):
    from hloba.models.training import TrainingConfig

    return TrainingConfig(epochs=args.epochs, max_minutes=args.max_minutes, device=args.device, seed=args.seed,
                          precision=args.precision)


def cmd_train_autoencoder(args: argparse.Namespace) -> int:
    from hloba.models.train_autoencoder import train_autoencoder

    report = train_autoencoder(args.train, args.validation, args.normalization, args.output,
                               args.output.with_name(args.output.stem + "_report.json"), parse_set(args.set),
                               _training(args))
    print(json.dumps(report["validation_rmse_over_anomaly_std"], indent=2))
    return 0


def cmd_train_o2lnet(args: argparse.Namespace) -> int:
    from hloba.models.settings import O2LnetTraining
    from hloba.models.train_o2lnet import train_o2lnet

    report = train_o2lnet(args.train, args.train_obs, args.validation, args.validation_obs, args.autoencoder,
                          args.output, args.output.with_name(args.output.stem + "_report.json"),
                          parse_set(args.set), _training(args), O2LnetTraining())
    print(json.dumps(report["rmse_ratio_to_climatology"], indent=2))
    return 0


def _stage(args: argparse.Namespace):
    from hloba.config import load_config

    return load_config(*args.config), args.results, args.year, args.out


def cmd_assimilate(args: argparse.Namespace) -> int:
    from hloba.stages import assimilate

    assimilate(*_stage(args), method=args.method)
    return 0


def cmd_decode(args: argparse.Namespace) -> int:
    from hloba.stages import decode

    decode(*_stage(args))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from hloba.stages import evaluate

    scores = evaluate(*_stage(args))
    print(scores[scores.period == "year"][["channel", "rmse", "bias", "acc", "crps", "spread_skill"]]
          .to_string(index=False))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    import xarray as xr

    with xr.open_dataset(args.path) as ds:
        print(ds)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hloba",
        description="HLOBA latent data assimilation reanalysis: run one pipeline stage by hand. "
        "The whole pipeline runs with `snakemake --cores N`.",
    )
    parser.add_argument("--version", action="version", version=f"hloba {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("make-world", help="simulate reference years of the built-in two-layer atmosphere")
    p.add_argument("--years", type=int, nargs="+", required=True, help="calendar years to write")
    p.add_argument("--out-dir", default="results/reference", help="folder for {year}.nc (default: %(default)s)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--spinup-days", type=float, default=548.0)
    p.add_argument("--chain", type=int, default=0,
                   help="which of the world's independent runs (its initial noise; the pipeline's make_world_{k})")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--transforms", choices=["torch", "pocketfft"],
                   help="world.transforms (default: the world's, pocketfft: the same world on every x86-64 "
                        "host, CPU only)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="QG parameter override, e.g. --set nx=32 (repeatable)")
    p.set_defaults(func=cmd_make_world)

    p = sub.add_parser("compute-normalization", help="per-channel mean/std and day-of-year climatology")
    p.add_argument("inputs", nargs="+", help="reference files of the training years")
    p.add_argument("-o", "--output", required=True, help="normalisation netCDF to write")
    p.add_argument("--harmonics", type=int, default=3, help="annual harmonics of the climatology")
    p.set_defaults(func=cmd_compute_normalization)

    p = sub.add_parser("simulate-observations", help="simulate one year of observations from a reference file")
    p.add_argument("reference", help="reference netCDF of the year")
    p.add_argument("--year", type=int, required=True)
    p.add_argument("--networks", required=True,
                   help="YAML with the observing system (the 'observations' section of config.yaml)")
    p.add_argument("-o", "--output", required=True, help="parquet file to write")
    p.set_defaults(func=cmd_simulate_observations)

    def training_options(p):
        p.add_argument("--epochs", type=int, default=40)
        p.add_argument("--max-minutes", type=float, default=None)
        p.add_argument("--device", default="auto")
        p.add_argument("--precision", default="auto", choices=["auto", "float32", "bfloat16"],
                       help="training steps' matrix products (auto: bfloat16 where the hardware has it)")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="architecture option, e.g. --set width=64 (repeatable)")

    p = sub.add_parser("train-autoencoder", help="train the autoencoder (writes the checkpoint and a report)")
    p.add_argument("--train", nargs="+", required=True, help="reference files of the training years")
    p.add_argument("--validation", nargs="+", required=True, help="reference files of the validation years")
    p.add_argument("--normalization", required=True)
    p.add_argument("-o", "--output", type=Path, required=True, help="checkpoint to write (.pt)")
    training_options(p)
    p.set_defaults(func=cmd_train_autoencoder)

    p = sub.add_parser("train-o2lnet", help="train O2Lnet (writes the checkpoint and a report)")
    p.add_argument("--train", nargs="+", required=True, help="reference files of the training years")
    p.add_argument("--train-obs", nargs="+", required=True, help="observation files of the training years")
    p.add_argument("--validation", nargs="+", required=True)
    p.add_argument("--validation-obs", nargs="+", required=True)
    p.add_argument("--autoencoder", required=True, help="autoencoder checkpoint")
    p.add_argument("-o", "--output", type=Path, required=True, help="checkpoint to write (.pt)")
    training_options(p)
    p.set_defaults(func=cmd_train_o2lnet)

    def stage_options(p):
        p.add_argument("--config", nargs="+", required=True, metavar="YAML",
                       help="config files, each updating the previous (e.g. config.yaml config/test.yaml)")
        p.add_argument("--year", type=int, required=True)
        p.add_argument("--results", default="results", help="the pipeline's results folder (default: %(default)s)")
        p.add_argument("--out", default=None, help="write the outputs here instead of into --results")

    p = sub.add_parser("assimilate", help="one year's stream, as rule assimilate_year (latent, feedback, "
                       "diagnostics)")
    stage_options(p)
    p.add_argument("--method", default=None, help="override assimilation.method (hloba, free, l3dvar, l4dvar, oi)")
    p.set_defaults(func=cmd_assimilate)

    p = sub.add_parser("decode", help="one year's archive file from its latent analyses, as rule decode_year")
    stage_options(p)
    p.set_defaults(func=cmd_decode)

    p = sub.add_parser("evaluate", help="one year's scores, as rule evaluate_year")
    stage_options(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("info", help="print a summary of a netCDF file the pipeline wrote")
    p.add_argument("path")
    p.set_defaults(func=cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from hloba.runtime import reuse_freed_memory

    reuse_freed_memory()
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.func(args)
    except (ValueError, KeyError, FileNotFoundError) as err:
        print(f"hloba {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
