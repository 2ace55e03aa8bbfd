"""Hyperparameters, model construction and loading: the algorithms, their YAML files and ``key=value`` overrides.

Hyperparameters come from the algorithm's YAML file (``is_sb3/configs/<algo>.yml``, or a file of the user's),
then ``key=value`` overrides (values parsed as YAML), then explicit arguments — later wins.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "ALGOS", "LOSS_NAMES", "TIMESTEP", "ExperimentError", "algo_class", "build_model", "check_device", "check_env",
    "load_hyperparams", "load_model",
]  # fmt: skip

ALGOS = ("risk_ac", "risk_sac", "discrete_risk_sac")
LOSS_NAMES = ("is", "emse", "sp", "mse")
#: what a timestep (``learn``'s budget, ``n_timesteps``) counts, per algorithm
TIMESTEP = (
    "one timestep = one iteration of 1024 simulated transitions for risk_ac, one environment step for risk_sac "
    "and discrete_risk_sac"
)


class ExperimentError(Exception):
    """A user error (bad name, missing file, unusable setting): the CLI reports it as one line, exit status 2."""


def algo_class(algo: str) -> Any:
    """The class of an algorithm name (``risk_ac``, ``risk_sac``, ``discrete_risk_sac``)."""
    if algo not in ALGOS:
        raise ExperimentError(f"unknown algorithm {algo!r}; available: {', '.join(ALGOS)}")
    from is_sb3 import DiscreteRiskSAC, RiskAC, RiskSAC

    return {"risk_ac": RiskAC, "risk_sac": RiskSAC, "discrete_risk_sac": DiscreteRiskSAC}[algo]


def check_env(env_id: str) -> None:
    """``ExperimentError`` unless ``env_id`` is a registered Gymnasium id (is-rl's are registered on import)."""
    import gymnasium as gym

    import is_envs  # noqa: F401

    try:
        gym.spec(env_id)
    except Exception:
        known = sorted(k for k in gym.registry if k.startswith("is_envs/"))
        raise ExperimentError(f"unknown env {env_id!r}; is-rl envs: {', '.join(known)}") from None


def check_device(device: str) -> None:
    """Refuse a device this machine lacks (a CUDA index, MPS) or that is not one (torch would silently train
    elsewhere or fail late): :func:`is_sb3.validation.check_device` as a one-line CLI error."""
    from is_sb3.validation import check_device as check

    try:
        check(device)
    except ValueError as err:
        raise ExperimentError(f"--device {device!r}: {str(err).removeprefix(f'device {device!r}: ')}") from None


class _Yaml12Loader(yaml.SafeLoader):
    """YAML's safe loader (no tags that build objects, no code) with YAML 1.2's floats: ``3e-4`` and ``1E5`` are
    numbers, where PyYAML's YAML 1.1 rules read them as strings."""


_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.VERBOSE,
    ),
    list("-+0123456789."),
)


def yaml_load(text: str) -> Any:
    """Parse YAML safely, with YAML 1.2's floats (``3e-4`` is a number)."""
    return yaml.load(text, Loader=_Yaml12Loader)


def read_run_meta(path: Path, context: str) -> dict[str, Any]:
    """A run's ``hyperparams.yml``, checked: a mapping with algo, env and seed (YAML's safe loader: tags such as
    ``!!python/object`` are refused, no code runs); ``ExperimentError`` prefixed by ``context`` otherwise."""
    try:
        meta = yaml_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        first = (str(err).splitlines() or [type(err).__name__])[0]
        raise ExperimentError(f"{context}: {path} is not a readable hyperparameter file ({first})") from None
    if not isinstance(meta, dict):
        raise ExperimentError(f"{context}: {path} must hold a mapping, got {type(meta).__name__}")
    missing = [key for key in ("algo", "env", "seed") if key not in meta]
    if missing:
        raise ExperimentError(f"{context}: {path} lacks {', '.join(missing)}")
    return meta


def load_hyperparams(
    algo: str, env_id: str, config: str | None = None, overrides: Sequence[str] = ()
) -> dict[str, Any]:
    """Hyperparameters for ``env_id``: the YAML entry, then ``key=value`` overrides (values parsed as YAML)."""
    algo_class(algo)  # validates the name
    if config is None:
        text = resources.files("is_sb3").joinpath("configs", f"{algo}.yml").read_text()
        source = f"is_sb3/configs/{algo}.yml"
    else:
        path = Path(config)
        if not path.is_file():
            raise ExperimentError(f"config file {config!r} does not exist")
        text, source = path.read_text(), config
    try:
        data = yaml_load(text) or {}
    except yaml.YAMLError as err:
        raise ExperimentError(f"malformed YAML in {source}: {str(err).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ExperimentError(f"malformed YAML in {source}: expected a mapping of env ids to hyperparameters")
    if config is not None and env_id not in data:
        raise ExperimentError(f"{source} has no entry for {env_id} (entries: {', '.join(map(str, data)) or 'none'})")
    entry = data.get(env_id) or {}
    if not isinstance(entry, dict):
        raise ExperimentError(f"the entry for {env_id} in {source} must be a mapping of hyperparameters, got {entry!r}")
    params = dict(entry)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ExperimentError(f"--hyperparams expects key=value, got {item!r}")
        try:
            params[key] = yaml_load(value)
        except yaml.YAMLError:
            raise ExperimentError(f"cannot parse the value of {key!r}: {value!r}") from None
    steps = params.get("n_timesteps")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int | float) or steps < 1
                              or int(steps) != steps):  # fmt: skip
        raise ExperimentError(f"n_timesteps must be an integer >= 1, got {steps!r} ({source} or --hyperparams)")
    return params


def learning_rate(spec: Any) -> Any:
    """A number, or a ``warmup_constant_cosine`` schedule from its mapping (``schedule`` key optional)."""
    if isinstance(spec, dict):
        from is_sb3.schedules import WarmupConstantCosine

        spec = dict(spec)
        kind = spec.pop("schedule", "warmup_constant_cosine")
        if kind != "warmup_constant_cosine":
            raise ExperimentError(f"unknown learning_rate schedule {kind!r}; available: warmup_constant_cosine")
        try:
            return WarmupConstantCosine(**spec)
        except TypeError as err:  # an unknown key
            fields = "lr, warmup, constant_until, start_factor"
            raise ExperimentError(f"learning_rate schedule: {err} (keys: schedule, {fields})") from None
    try:
        return float(spec)
    except (TypeError, ValueError):
        raise ExperimentError(f"learning_rate must be a number or a schedule mapping, got {spec!r}") from None


def build_model(
    algo: str, env_id: str, params: dict[str, Any], seed: int, device: str, tensorboard_log: str | None
) -> Any:
    """The algorithm's model on ``env_id`` from hyperparameters (``n_timesteps``/``policy`` are not constructor
    arguments); constructor errors become ``ExperimentError``."""
    kwargs = {k: v for k, v in params.items() if k not in ("n_timesteps", "policy")}
    if "learning_rate" in kwargs:
        kwargs["learning_rate"] = learning_rate(kwargs["learning_rate"])
    names = (*LOSS_NAMES, "huber") if algo == "discrete_risk_sac" else LOSS_NAMES  # Enders' Huber: discrete SAC only
    if kwargs.get("critic_loss", "is") not in names:
        raise ExperimentError(f"unknown loss {kwargs['critic_loss']!r}; available: {', '.join(names)}")
    try:
        return algo_class(algo)(
            params.get("policy", "MlpPolicy"),
            env_id,
            seed=seed,
            device=device,
            tensorboard_log=tensorboard_log,
            **kwargs,
        )
    except (TypeError, ValueError, AssertionError) as err:  # SB3 asserts on unsupported spaces
        message = str(err) or type(err).__name__
        raise ExperimentError(f"cannot build {algo} on {env_id}: {message}") from None


def load_model(algo: str, path: Path, device: str, **kwargs: Any) -> Any:
    """``<algo class>.load`` with one-line errors for files that are not models of that algorithm."""
    try:
        return algo_class(algo).load(path, device=device, **kwargs)
    except Exception as err:  # a corrupt zip, another algorithm's file, a missing entry, ...
        first = (str(err).splitlines() or [type(err).__name__])[0]
        raise ExperimentError(
            f"cannot load {str(path)!r} as a {algo} model ({type(err).__name__}: {first}); "
            "is it a model of another algorithm (--algo) or a damaged file?"
        ) from None
