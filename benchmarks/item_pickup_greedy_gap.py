"""Why the learned grid policies trail greedy (issue: Fig. 4, item 5): where their return comes from, against greedy's.

    python -m benchmarks.item_pickup_greedy_gap benchmarks/out/item_pickup_models/*/final.zip
    python -m benchmarks.item_pickup_greedy_gap --quick MODEL.zip ...     # 20 test episodes per distribution

Each model (a saved DiscreteRiskSAC ``.zip``; a run folder of ``<out>/item_pickup_models``, whose ``final.zip`` is
read; or a checkpoint folder of ``<out>/item_pickup_checkpoints``, whose latest checked checkpoint is read) plays the
released test episodes of the twelve distributions, and greedy is asked, never obeyed, what it would do in each
state the model visits (:func:`is_envs.grid.episode_events`). A return is exactly 7.5 · (items picked + items
delivered) − moves, so the gap to greedy splits into what fewer items cost and what extra moves cost. Also: moves
per delivered item, the detour made while carrying (greedy: 0), moves made empty per item picked, steps spent
standing (action "stay" or a move into a wall), items left to expire, how often the model takes greedy's
action; where it stood while greedy would have moved, the probability its policy put on standing (a deliberate
stand, or an argmax over split move probabilities?); where it moved while greedy would have stood, how often no
item was waiting (a move towards where items will appear). Models are grouped by agent, γ and env steps; cells
are mean ± std over the models of a group (seeds).
Writes ``item_pickup_greedy_gap[_tag].{md,json,png}``.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import data_dir, mean_std, parse_args, result_stem, write_results
from benchmarks.item_pickup import agent_label

#: the columns of the tables: key, header, format
COLUMNS = (
    ("return", "return", "{:.1f}"),
    ("items_gap", "gap from items", "{:.1f}"),
    ("moves_gap", "gap from moves", "{:.1f}"),
    ("delivered", "delivered", "{:.2f}"),
    ("moves", "moves", "{:.1f}"),
    ("moves_per_delivery", "moves / delivery", "{:.2f}"),
    ("loaded_detour", "loaded detour / delivery", "{:.2f}"),
    ("empty_moves_per_pick", "empty moves / pick-up", "{:.2f}"),
    ("standing", "steps standing", "{:.1f}"),
    ("expired", "expired items", "{:.1f}"),
    ("stood_for_move", "stood where greedy moved", "{:.1f}"),
    ("stand_mass", "its π(standing) there", "{:.2f}"),
    ("moved_for_stand", "moved where greedy stood", "{:.1f}"),
    ("moved_on_empty_grid", "of which no item waiting", "{:.2f}"),
    ("agreement", "greedy's action", "{:.2f}"),
)


def model_file(path: Path) -> Path:
    """The ``.zip`` to load for ``path``: the file itself, a run folder's ``final.zip``, or a checkpoint folder's
    latest checked ``model.zip``; ``ValueError`` naming the path otherwise."""
    from is_sb3.experiments.runs import read_checkpoint

    if path.is_file() and path.suffix == ".zip":
        return path
    if (path / "final.zip").is_file():
        return path / "final.zip"
    if (path / "checkpoint.json").is_file():
        return read_checkpoint(path, off_policy=True)["model.zip"]
    raise ValueError(f"model {str(path)!r}: not a .zip, a run folder with final.zip, nor a checkpoint folder")


class StandingMass:
    """A model for :func:`is_envs.grid.episode_events` that acts as the model does and records, on each step where
    its action leaves the agent where it is (stay, or a move into a wall) while greedy would move, the probability
    its policy puts on all such standing actions: near 1 is a deliberate stand, below ½ an argmax over move
    probabilities split between directions. Also counts the steps where it moves while greedy would stand, and
    those of them with no item waiting on the grid (a move towards where items will appear).

    :param model: a DiscreteRiskSAC model (its actions are those of ``policy.logits``, as ``predict``'s).
    """

    def __init__(self, model: Any) -> None:
        from is_envs.grid import GreedyPolicy

        self.model, self.greedy = model, GreedyPolicy()
        self.observation_space = getattr(model, "observation_space", None)  # a clock model sees the time left
        self.masses: list[np.ndarray] = []
        self.moved_for_stand = self.moved_on_empty_grid = 0

    def predict(self, observation: np.ndarray, state: Any = None, episode_start: Any = None,
                deterministic: bool = True) -> tuple[np.ndarray, None]:  # fmt: skip
        import torch as th

        from is_envs.grid.core import MOVES
        from is_envs.grid.distributions import GRID_SIZE
        from is_sb3.discrete_sac.policies import sample_categorical

        with th.no_grad():  # one forward, in float32 as DiscreteRiskSAC.predict
            logits = self.model.policy.logits(th.as_tensor(observation, dtype=th.float32)).float()
        actions = (logits.argmax(-1) if deterministic else sample_categorical(logits)).numpy()
        probs = th.softmax(logits, dim=-1).numpy()
        n = len(observation)
        pos = np.stack(np.unravel_index(observation[:, 2].reshape(n, -1).argmax(1), (GRID_SIZE, GRID_SIZE)), axis=1)
        after = pos[:, None, :] + MOVES[None]  # (n, actions, 2)
        standing: np.ndarray = np.asarray(((after < 0) | (after > GRID_SIZE - 1)).any(-1))
        standing[:, 0] = True  # "stay"
        wanted = np.asarray(self.greedy.predict(observation)[0]).reshape(-1)
        stood = standing[np.arange(n), actions] & (wanted != 0)
        self.masses.append((probs * standing).sum(-1)[stood])
        moved = ~standing[np.arange(n), actions] & (wanted == 0)
        self.moved_for_stand += int(moved.sum())
        self.moved_on_empty_grid += int((moved & ~(observation[:, 1] > 0).reshape(n, -1).any(1)).sum())
        return actions, None

    def empty_grid_share(self) -> float:
        """The share of the steps it moved where greedy would stand that had no item waiting (NaN if none)."""
        return self.moved_on_empty_grid / self.moved_for_stand if self.moved_for_stand else float("nan")

    def mean_mass(self) -> float:
        """The mean probability on standing actions over the recorded steps (NaN if none)."""
        masses = np.concatenate(self.masses) if self.masses else np.zeros(0)
        return float(masses.mean()) if len(masses) else float("nan")


def summarise(events: Any, greedy_return: float, greedy_events: Any) -> dict[str, float]:
    """Episode means of one policy on one distribution, and its gap to greedy split into items and moves."""
    delivered = float(events.delivered.mean())
    picked = float(events.picked.mean())
    moves = float(events.moves.mean())
    out = {
        "return": float(events.returns.mean()),
        "picked": picked,
        "delivered": delivered,
        "moves": moves,
        "moves_per_delivery": moves / delivered if delivered else float("nan"),
        "loaded_detour": float(events.loaded_detour.sum() / max(events.delivered.sum(), 1)),
        "empty_moves_per_pick": float((events.moves - events.moves_loaded).sum() / max(events.picked.sum(), 1)),
        "standing": float((events.stays + events.wall_bumps).mean()),  # a move into a wall stays, at no cost
        "wall_bumps": float(events.wall_bumps.mean()),
        "expired": float(events.expired.mean()),
        "agreement": float(events.agreement.mean()) if events.agreement is not None else 1.0,
        "stood_for_move": float(events.stood_for_move.mean()) if events.stood_for_move is not None else 0.0,
        "moved_for_stand": float(events.moved_for_stand.mean()) if events.moved_for_stand is not None else 0.0,
        "stand_mass": float("nan"),  # StandingMass's, for models
        "moved_on_empty_grid": float("nan"),
    }
    items = float((greedy_events.picked + greedy_events.delivered).mean()) - (picked + delivered)
    out["items_gap"] = 7.5 * items  # return lost to fewer items picked and delivered than greedy
    out["moves_gap"] = moves - float(greedy_events.moves.mean())  # ... and to more moves (negative: fewer)
    assert abs(greedy_return - out["return"] - (out["items_gap"] + out["moves_gap"])) < 1e-6
    return out


def measure(paths: list[Path], n_episodes: int | None) -> dict[str, Any]:
    """Per model and distribution, :func:`summarise` of its test episodes; greedy's too."""
    import torch as th

    from is_envs.grid import DISTRIBUTIONS, GreedyPolicy, episode_events, observes_clock
    from is_sb3 import DiscreteRiskSAC

    th.set_num_threads(1)
    folder = data_dir()
    greedy: dict[str, Any] = {}
    for name in DISTRIBUTIONS:
        greedy[name] = episode_events(GreedyPolicy(), folder / f"{name}.npz", n_episodes=n_episodes)
    rows: dict[str, Any] = {"greedy": {"label": "greedy", "models": {}}}
    rows["greedy"]["models"]["greedy"] = {
        name: summarise(greedy[name], float(greedy[name].returns.mean()), greedy[name]) for name in DISTRIBUTIONS
    }
    for path in paths:
        file = model_file(path)
        model = DiscreteRiskSAC.load(file, device="cpu")
        label = agent_label({"target": model.target, "loss": model.critic_loss, "alpha": model.risk_aversion,
                             "clock": observes_clock(model)})  # fmt: skip
        key = f"{label}, γ={model.gamma:g}, {model.num_timesteps // 1000}k steps"
        row = rows.setdefault(key, {"label": key, "models": {}})
        per_dist = {}
        for name in DISTRIBUTIONS:
            recorder = StandingMass(model)
            events = episode_events(recorder, folder / f"{name}.npz", n_episodes=n_episodes, reference=GreedyPolicy())
            per_dist[name] = summarise(events, float(greedy[name].returns.mean()), greedy[name])
            per_dist[name]["stand_mass"] = recorder.mean_mass()
            per_dist[name]["moved_on_empty_grid"] = recorder.empty_grid_share()
        row["models"][str(path)] = per_dist
        print(f"{key}: {path}: gradient1 return {row['models'][str(path)]['gradient1']['return']:.1f}", flush=True)
    return {"episodes": "released test" if n_episodes is None else f"first {n_episodes} released test", "rows": rows}


def _cells(row: dict[str, Any], names: list[str]) -> dict[str, list[float]]:
    """Per column, one value per model: the mean over ``names`` of its per-distribution values."""
    values: dict[str, list[float]] = defaultdict(list)
    for per_dist in row["models"].values():
        for key, _, _ in COLUMNS:
            finite = [v for v in (per_dist[name][key] for name in names) if np.isfinite(v)]  # stand_mass: NaN if none
            values[key].append(float(np.mean(finite)) if finite else float("nan"))
    return values


def report(result: dict[str, Any], tag: str) -> dict[str, Any]:
    """Markdown tables (gradient1; mean over the eleven shifted distributions) and the bar chart."""
    from is_envs.grid import DISTRIBUTIONS

    shifted = [name for name in DISTRIBUTIONS if name != "gradient1"]
    lines = []
    for title, names in (("gradient1 (the training distribution)", ["gradient1"]),
                         ("mean over the eleven shifted distributions", shifted)):  # fmt: skip
        lines += [f"Test episodes of {title}: per episode, mean ± std over the models of each row "
                  f"({result['episodes']} episodes)", ""]  # fmt: skip
        lines.append("| policy | models | " + " | ".join(header for _, header, _ in COLUMNS) + " |")
        lines.append("|---|---|" + "---|" * len(COLUMNS))
        for row in result["rows"].values():
            cells = _cells(row, names)
            n = len(row["models"]) if row["label"] != "greedy" else "–"
            lines.append(f"| {row['label']} | {n} | " + " | ".join(mean_std(cells[k], fmt) for k, _, fmt in COLUMNS)
                         + " |")  # fmt: skip
        lines.append("")
    lines.append(
        "A return is exactly 7.5 · (items picked + items delivered) − moves: 'gap from items' is 7.5 × greedy's items "
        "minus the model's, 'gap from moves' the model's moves minus greedy's; the two add up to greedy's return "
        "minus the model's. 'loaded detour': moves made while carrying an item beyond its pick-up cell's distance "
        "to the depot. 'greedy's action': the fraction of steps on which the model did what greedy would have done "
        "in the same state (ties between equally short paths count as disagreements). 'stood where greedy moved' "
        "and 'moved where greedy stood': steps per episode on which the model stood (stay, or a move into a wall) "
        "where greedy would have moved, and the reverse; 'its π(standing) there': on those steps, the probability "
        "the model's policy puts on all standing actions together (near 1: a deliberate stand; below ½: an argmax "
        "over move probabilities split between directions); 'of which no item waiting': the share of the steps it "
        "moved where greedy stood on which no item was waiting on the grid (a move towards where items will appear)."
    )
    write_results(result_stem("item_pickup_greedy_gap", tag), "\n".join(lines), result,
                  lambda path: plot(result, path))  # fmt: skip
    return result


def plot(result: dict[str, Any], path: str) -> None:
    """Bars per row on gradient1: return, items delivered, steps stood where greedy moved and the reverse,
    greedy's action."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("return", "return per episode"),
        ("delivered", "items delivered per episode"),
        ("stood_for_move", "steps stood where greedy moved"),
        ("moved_for_stand", "steps moved where greedy stood"),
        ("agreement", "share of greedy's actions"),
    ]
    rows = list(result["rows"].values())
    fig, axes = plt.subplots(1, len(panels), figsize=(3.8 * len(panels), 3.6 + 0.15 * len(rows)))
    for ax, (key, title) in zip(axes, panels, strict=True):
        means, stds = [], []
        for row in rows:
            values = _cells(row, ["gradient1"])[key]
            means.append(float(np.mean(values)))
            stds.append(float(np.std(values)))
        ax.barh(range(len(rows)), means, xerr=stds, color=["0.6"] + [f"C{i}" for i in range(len(rows) - 1)])
        ax.set_yticks(range(len(rows)), [row["label"] for row in rows] if ax is axes[0] else [""] * len(rows))
        ax.invert_yaxis()
        ax.set_title(title, fontsize=10)
    fig.suptitle("gradient1 test episodes: the learned policies against greedy (mean ± std over models)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_model_args(doc: str, stem: str, quick: str, argv: list[str] | None) -> argparse.Namespace:
    """The command line of a script that reads saved grid models: ``MODELS… [--quick] [--tag T] [--out DIR]``.

    :param doc: the script's docstring (its ``--help``).
    :param stem: the stem of its result files.
    :param quick: what ``--quick`` does.
    :param argv: the arguments (default: ``sys.argv``).
    """
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", type=Path, help="model .zip files, run folders or checkpoint folders")
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument("--tag", default="", help=f"suffix of the result files ({stem}_<tag>.*)")
    return parse_args(parser, argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_model_args(
        __doc__ or "", "item_pickup_greedy_gap", "the first 20 test episodes per distribution", argv
    )
    return report(measure(args.models, 20 if args.quick else None), args.tag)


if __name__ == "__main__":
    main()
