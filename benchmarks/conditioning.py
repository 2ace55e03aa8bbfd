"""The field notes' experiment (SPEC §6): MSE vs IS on positive targets, conditioning and generalisation.

    python -m benchmarks.conditioning --quick      # a few minutes on CPU
    python -m benchmarks.conditioning              # longer training, more seeds

Three 1-D architectures (a CNN, a dilated ResNet1D, a local-window Transformer1D) regress a positive,
multi-scale target sequence y = 0.05 + exp(conv(x)) from a smooth random input x, trained with
the squared error ½(f − y)² or the IS divergence y/f − log(y/f) − 1 (f = softplus output > 0).
Recorded: train/validation curves in both metrics, the train/validation gap, and the top-k
eigenvalues of each loss's Hessian at the end of training (Lanczos on Hessian-vector products).
The same spectrum comparison is made for RiskAC critics trained with IS vs MSE on the quadratic task.
Writes ``benchmarks/results/conditioning.{json,md,png}``.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import torch as th
from torch import nn

from benchmarks.common import parse_args, write_results
from is_sb3.diagnostics import hessian_eigenvalues, is_divergence, risk_ac_critic_loss, spectrum_summary

LENGTH = 64


def make_data(n: int, seed: int) -> tuple[th.Tensor, th.Tensor]:
    """x: smooth random signals (n, 1, L); y = 0.05 + exp(local filter of x) > 0, spanning decades."""
    g = th.Generator().manual_seed(seed)
    raw = th.randn(n, 1, LENGTH + 16, generator=g)
    smooth = nn.functional.avg_pool1d(raw, 9, stride=1)[..., : LENGTH + 8]
    x = smooth[..., 4 : LENGTH + 4] * 3.0
    kernel = th.tensor([[[0.5, -1.0, 2.0, -1.0, 0.5]]])
    y = 0.05 + th.exp(1.0 * nn.functional.conv1d(smooth * 3.0, kernel)[..., 2 : LENGTH + 2])
    return x, y.squeeze(1)


class CNN1D(nn.Module):
    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(1, width, 5, padding=2), nn.ReLU(), nn.Conv1d(width, width, 5, padding=2), nn.ReLU(),
            nn.Conv1d(width, 1, 5, padding=2),
        )  # fmt: skip

    def forward(self, x: th.Tensor) -> th.Tensor:
        return nn.functional.softplus(self.net(x).squeeze(1)) + 1e-3


class ResNet1D(nn.Module):
    def __init__(self, width: int = 32, dilations: tuple[int, ...] = (1, 2, 4, 8)) -> None:
        super().__init__()
        self.inp = nn.Conv1d(1, width, 3, padding=1)
        self.blocks = nn.ModuleList(nn.Conv1d(width, width, 3, padding=d, dilation=d) for d in dilations)
        self.out = nn.Conv1d(width, 1, 1)

    def forward(self, x: th.Tensor) -> th.Tensor:
        h = self.inp(x)
        for block in self.blocks:
            h = h + nn.functional.relu(block(h))
        return nn.functional.softplus(self.out(h).squeeze(1)) + 1e-3


class Transformer1D(nn.Module):
    """One transformer block whose attention only sees positions within ±``window``.

    Attention is written out (softmax of masked scores) rather than taken from ``nn.MultiheadAttention``,
    whose fused CPU kernel has no double backward, which Hessian-vector products need.
    """

    def __init__(self, width: int = 32, heads: int = 4, window: int = 4) -> None:
        super().__init__()
        self.heads = heads
        self.embed = nn.Conv1d(1, width, 3, padding=1)
        self.pos = nn.Parameter(th.randn(LENGTH, width) * 0.02)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.ff = nn.Sequential(nn.Linear(width, 2 * width), nn.ReLU(), nn.Linear(2 * width, width))
        idx = th.arange(LENGTH)
        self.register_buffer("mask", (idx[None, :] - idx[:, None]).abs() > window)
        self.out = nn.Linear(width, 1)

    def forward(self, x: th.Tensor) -> th.Tensor:
        h = self.embed(x).transpose(1, 2) + self.pos  # (n, L, width)
        n, length, width = h.shape
        q, k, v = self.qkv(self.norm1(h)).reshape(n, length, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        scores = (q @ k.transpose(-1, -2)) / (width // self.heads) ** 0.5
        att = th.softmax(scores.masked_fill(self.mask, float("-inf")), dim=-1)
        h = h + self.proj((att @ v).transpose(1, 2).reshape(n, length, width))
        h = h + self.ff(self.norm2(h))
        return nn.functional.softplus(self.out(h).squeeze(-1)) + 1e-3


ARCHS = {"cnn1d": CNN1D, "resnet1d": ResNet1D, "transformer1d": Transformer1D}


def losses(f: th.Tensor, y: th.Tensor) -> dict[str, th.Tensor]:
    return {"mse": 0.5 * (f - y).pow(2).mean(), "is": is_divergence(y, f).mean()}


def train_one(arch: str, loss_name: str, steps: int, seed: int, k: int) -> dict[str, Any]:
    th.manual_seed(seed)
    x_tr, y_tr = make_data(512, seed=100 + seed)
    x_va, y_va = make_data(512, seed=200 + seed)
    model = ARCHS[arch]()
    opt = th.optim.Adam(model.parameters(), lr=1e-3)
    curve = []
    g = th.Generator().manual_seed(seed)
    for step in range(1, steps + 1):
        idx = th.randint(0, 512, (64,), generator=g)
        loss = losses(model(x_tr[idx]), y_tr[idx])[loss_name]
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % max(1, steps // 20) == 0 or step == steps:
            with th.no_grad():
                tr, va = losses(model(x_tr), y_tr), losses(model(x_va), y_va)
            curve.append({"step": step, **{f"train_{m}": float(v) for m, v in tr.items()},
                          **{f"val_{m}": float(v) for m, v in va.items()}})  # fmt: skip
    xb, yb = x_tr[:128], y_tr[:128]
    ev = hessian_eigenvalues(lambda: losses(model(xb), yb)[loss_name], model, k=k, tol=1e-4)
    last = curve[-1]
    return {
        "arch": arch, "loss": loss_name, "seed": seed, "curve": curve, "eigenvalues": ev.tolist(),
        "summary": spectrum_summary(ev), "gap_own": last[f"val_{loss_name}"] - last[f"train_{loss_name}"],
        "gap_rel_own": (last[f"val_{loss_name}"] - last[f"train_{loss_name}"]) / last[f"train_{loss_name}"],
        "final": last,
    }  # fmt: skip


def critic_spectra(iterations: int, k: int) -> dict[str, Any]:
    from is_sb3 import RiskAC

    out = {}
    for loss in ("is", "mse"):
        model = RiskAC(
            "MlpPolicy", "is_envs/QuadraticPenalty-v0", risk_aversion=2.0, critic_loss=loss, seed=0, eval_freq=0,
            n_eval_states=256, device="cpu",
        )  # fmt: skip
        model.learn(iterations, log_interval=0)
        loss_fn, module = risk_ac_critic_loss(model)
        ev = hessian_eigenvalues(loss_fn, module, k=k, tol=1e-4)
        out[loss] = {
            "eigenvalues": ev.tolist(),
            "summary": spectrum_summary(ev),
            "value_rel_rmse": model.evaluate()["value_rel_rmse"],
        }
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--k", type=int, default=10)
    args = parse_args(parser, argv)
    th.set_num_threads(1)
    steps = args.steps or (400 if args.quick else 3000)
    seeds = args.seeds or (1 if args.quick else 3)
    runs = [train_one(a, loss, steps, s, args.k) for a in ARCHS for loss in ("mse", "is") for s in range(seeds)]
    critics = critic_spectra(500 if args.quick else 5000, args.k)
    lines = [
        f"Configuration: {steps} Adam steps (lr 1e-3, batch 64, 512 train / 512 validation sequences), {seeds} seed(s),"
        f" top-{args.k} Hessian eigenvalues of each run's own loss on 128 training sequences.",
        "",
        "| arch | loss | train MSE | val MSE | train IS | val IS | rel. gap (own loss) | λ1 | λ1/λk |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for arch in ARCHS:
        for loss in ("mse", "is"):
            rs = [r for r in runs if r["arch"] == arch and r["loss"] == loss]
            f = {key: np.mean([r["final"][key] for r in rs]) for key in rs[0]["final"] if key != "step"}
            lam1 = np.mean([r["eigenvalues"][0] for r in rs])
            ratio = np.mean([r["eigenvalues"][0] / r["eigenvalues"][-1] for r in rs])
            gap = np.mean([r["gap_rel_own"] for r in rs])
            lines.append(
                f"| {arch} | {loss} | {f['train_mse']:.4f} | {f['val_mse']:.4f} "
                f"| {f['train_is']:.4f} | {f['val_is']:.4f}"
                f" | {100 * gap:+.1f} % | {lam1:.3g} | {ratio:.3g} |"
            )
    lines += [
        "",
        "RiskAC critic on the quadratic task (α = 2):",
        "",
        "| critic loss | λ1 | λ1/λk | value rel. RMSE |",
        "|---|---|---|---|",
    ]
    for loss, c in critics.items():
        ev = c["eigenvalues"]
        lines.append(f"| {loss} | {ev[0]:.3g} | {ev[0] / ev[-1]:.3g} | {100 * c['value_rel_rmse']:.1f} % |")
    text = "\n".join(lines)
    payload = {"steps": steps, "seeds": seeds, "runs": runs, "critics": critics}
    write_results("conditioning", text, payload, lambda path: _plot(runs, critics, path))
    return payload


def _plot(runs: list[dict[str, Any]], critics: dict[str, Any], path: str) -> None:
    from is_sb3.plotting import pyplot, save_figure

    plt = pyplot()

    fig, axes = plt.subplots(2, len(ARCHS) + 1, figsize=(4.2 * (len(ARCHS) + 1), 7))
    colors = {"mse": "tab:blue", "is": "tab:orange"}
    for col, arch in enumerate(ARCHS):
        for loss in ("mse", "is"):
            r = next(r for r in runs if r["arch"] == arch and r["loss"] == loss)
            steps = [c["step"] for c in r["curve"]]
            axes[0, col].plot(steps, [c["train_mse"] for c in r["curve"]], color=colors[loss], label=f"{loss}: train")
            axes[0, col].plot(
                steps, [c["val_mse"] for c in r["curve"]], color=colors[loss], ls="--", label=f"{loss}: val"
            )
            axes[1, col].semilogy(
                range(1, len(r["eigenvalues"]) + 1), np.abs(r["eigenvalues"]), "o-", color=colors[loss], label=loss
            )
        axes[0, col].set(title=f"{arch}: MSE metric", xlabel="Adam step", ylabel="mean squared error", yscale="log")
        axes[1, col].set(title=f"{arch}: top Hessian eigenvalues", xlabel="rank", ylabel="|eigenvalue| of own loss")
        axes[0, col].legend(fontsize=7)
        axes[1, col].legend(fontsize=7)
    for loss, c in critics.items():
        axes[1, -1].semilogy(
            range(1, len(c["eigenvalues"]) + 1), np.abs(c["eigenvalues"]), "o-", color=colors[loss], label=loss
        )
    axes[1, -1].set(title="RiskAC critic (quadratic task, α = 2)", xlabel="rank", ylabel="|eigenvalue| of own loss")
    axes[1, -1].legend()
    axes[0, -1].axis("off")
    seeds = len({r.get("seed", 0) for r in runs if r["arch"] == next(iter(ARCHS)) and r["loss"] == "mse"})
    fig.suptitle(f"MSE against IS: 1-D sequence regression and RiskAC's critic, first seed shown ({seeds} seed(s) run)",
                 fontsize="medium")  # fmt: skip
    save_figure(fig, path, dpi=100, top=0.96)


if __name__ == "__main__":
    main()
