"""The two kernels that dominated HLOBA's update and decode on CPU, in their former and current form.

    python benchmarks/analysis_kernels.py [--threads 2] [--repeat 200] [--latent 2048]

1. The autoencoder's decoder head, a transposed convolution (width 128 -> 8 channels, kernel 8,
   stride 4, on the 18 x 18 padded latent grid of the default world): ``nn.ConvTranspose2d``
   against :class:`hloba.models.layers.PatchTranspose` (an ordinary convolution and a pixel
   shuffle), for one sample (a stream's decode) and for 16 (training, the archive's decode).
2. The update's products with the rotation ``V`` (latent x latent): one to three rows times ``V``
   (``rows @ V``, the former form) against the same product read from a row-major ``V^T``
   (``rows @ Vt.T``, :class:`hloba.assim.cycle.UpdateSpace`).

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

from hloba.models.layers import PatchTranspose  # noqa: E402
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


if __name__ == "__main__":
    main()
