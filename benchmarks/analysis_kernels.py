"""The kernels that dominated HLOBA's analysis on CPU, in their former and current form.

    python benchmarks/analysis_kernels.py [--threads 2] [--repeat 200] [--latent 2048]

1. The autoencoder's decoder head, a transposed convolution (width 128 -> 8 channels, kernel 8,
   stride 4, on the 18 x 18 padded latent grid of the default world): ``nn.ConvTranspose2d``
   against :class:`hloba.models.layers.PatchTranspose` (an ordinary convolution and a pixel
   shuffle), for one sample (a stream's decode) and for 16 (training, the archive's decode).
2. The update's products with the rotation ``V`` (latent x latent): one to three rows times ``V``
   (``rows @ V``, the former form) against the same product read from a row-major ``V^T``
   (``rows @ Vt.T``, :class:`hloba.assim.cycle.UpdateSpace`).
3. O2Lnet's pass on one window of observations (config.yaml's architecture and window on the
   default 64 x 64 grid, 8 channels, about 11,000 observations): float32 against
   :func:`hloba.models.o2lnet.inference_pass` in bfloat16 (``assimilation.o2lnet_precision: auto``
   on hardware with native bfloat16), and bfloat16 by autocast (the weights converted at every
   call, in the default layout) against the same. Skipped where bfloat16 is emulated.

Both forms run alternately in one process, so the ratios compare like with like on a shared host.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402
import yaml  # noqa: E402

from hloba.models.autoencoder import AutoencoderConfig  # noqa: E402
from hloba.models.layers import PatchTranspose  # noqa: E402
from hloba.models.o2lnet import O2Lnet, O2LnetConfig, inference_pass  # noqa: E402
from hloba.models.train_o2lnet import window_architecture  # noqa: E402
from hloba.models.training import native_bfloat16  # noqa: E402
from hloba.runtime import reuse_freed_memory  # noqa: E402


def microseconds(fn, repeat: int) -> float:
    for _ in range(10):
        fn()
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat * 1e6


def compare(label: str, former, current, repeat: int) -> None:
    a = [microseconds(former, repeat), microseconds(current, repeat)]
    b = [microseconds(former, repeat), microseconds(current, repeat)]
    f, c = (a[0] + b[0]) / 2, (a[1] + b[1]) / 2
    print(f"{label:44s} former {f:9.1f} us   current {c:9.1f} us   ratio {c / f:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--latent", type=int, default=2048)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    reuse_freed_memory()
    torch.manual_seed(0)
    head = PatchTranspose(128, 8, 4)
    former = nn.ConvTranspose2d(128, 8, 8, stride=4)
    former.load_state_dict(head.state_dict())
    with torch.no_grad():
        for batch in (1, 16):
            h = torch.randn(batch, 128, 18, 18)
            err = (head(h) - former(h)).abs().max().item()
            compare(f"decoder head, {batch:2d} sample(s) (max diff {err:.1e})", lambda: former(h), lambda: head(h),
                    args.repeat if batch == 1 else max(1, args.repeat // 10))
        v = torch.linalg.qr(torch.randn(args.latent, args.latent))[0].contiguous()  # row-major, as read from file
        vt = v.T.contiguous()
        for rows in (1, 2, 3):
            z = torch.randn(rows, args.latent)
            compare(f"rotation, {rows} row(s) x {args.latent}^2", lambda: z @ v, lambda: z @ vt.T, args.repeat)
        o2lnet_passes(args.repeat // 4)


def o2lnet_passes(repeat: int) -> None:
    if not native_bfloat16(torch.device("cpu")):
        print("O2Lnet pass: skipped, bfloat16 is emulated on this CPU (o2lnet_precision: auto runs float32)")
        return
    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "config.yaml").read_text())
    ae_sec, o2_sec = config["autoencoder"], config["o2lnet"]
    ae = AutoencoderConfig(channels=8, ny=64, nx=64, latent_channels=ae_sec["latent_channels"], patch=ae_sec["patch"],
                           width=ae_sec["width"], blocks=ae_sec["blocks"])
    keys = ("width", "blocks", "window_hours", "window_lead_hours")
    arch = window_architecture({k: o2_sec[k] for k in keys if k in o2_sec},
                               pd.date_range("2001", periods=2, freq="6h"))
    net = O2Lnet(O2LnetConfig(autoencoder=ae.to_dict(), **arch)).eval()
    n_in = net.body.stem.in_channels
    g = torch.Generator().manual_seed(0)
    observed = torch.rand(1, n_in // 2, 64, 64, generator=g) < 11_000 / (n_in // 2 * 64 * 64)
    rendered = torch.cat((torch.randn(1, n_in // 2, 64, 64, generator=g) * observed, observed.float()), dim=1)
    estimate = inference_pass(net, torch.bfloat16)

    def autocast():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return net(rendered)

    with torch.no_grad():
        err = ((estimate(rendered)[0] - net(rendered)[0]).norm() / net(rendered)[0].norm()).item()
        compare(f"O2Lnet pass fp32 -> bf16 copy (diff {err:.1e})", lambda: net(rendered),
                lambda: estimate(rendered), repeat)
        compare("O2Lnet pass bf16 autocast -> bf16 copy", autocast, lambda: estimate(rendered), repeat)


if __name__ == "__main__":
    main()
