"""Test-wide settings: one thread (2-core CI), deterministic hypothesis profile."""

import os
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import pytest
import torch
from hypothesis import settings

torch.set_num_threads(1)

settings.register_profile("ci", max_examples=40, deadline=None, derandomize=True)
settings.load_profile("ci")


def craft_pickled_model(source: Path, target: Path, marker: Path) -> None:
    """Copy the model zip ``source`` to ``target`` with a ``policy_kwargs`` pickle whose unpickling creates
    ``marker``: a file that runs code if loaded with pickle (the safe loader must refuse it)."""
    import base64
    import json
    import zipfile

    import cloudpickle

    class Payload:
        def __reduce__(self) -> tuple[object, ...]:
            return (Path.touch, (marker,))

    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as dst:
        for item in src.infolist():
            content = src.read(item.filename)
            if item.filename == "data":
                data = json.loads(content)
                payload = base64.b64encode(cloudpickle.dumps(Payload())).decode()
                data["policy_kwargs"] = {":type:": "<class 'dict'>", ":serialized:": payload}
                content = json.dumps(data).encode()
            dst.writestr(item, content)


@pytest.fixture
def craft_pickle() -> object:
    """:func:`craft_pickled_model`, for tests in any folder."""
    return craft_pickled_model
