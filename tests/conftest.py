"""Shared test fixtures and paths."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
SEEDS = ["lenet", "alexnet", "vgg11", "nin", "googlenet", "resnet18", "densenet"]

sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="module")
def two_threads() -> Iterator[None]:
    """Run at most two intra-op threads, as on the 2-core CI box; restore afterwards.

    Modules that run models use it with ``pytestmark = pytest.mark.usefixtures("two_threads")``;
    torch is imported here only when such a module asks, so static-pipeline tests stay torch-free.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(min(2, before))
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Run one intra-op thread; restore afterwards (``pytestmark = pytest.mark.usefixtures("one_thread")``).

    For modules whose work is many small convolutions or reductions (models at inputs of a few dozen pixels,
    initialisation statistics): a second thread saves little there, and on a busy machine every parallel
    region waits for it, several to tens of times slower.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


PLUGIN_SRC = Path(__file__).resolve().parent / "plugin_pkg" / "src"


@pytest.fixture(scope="module")
def demo_plugin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Install the example plugin (tests/plugin_pkg) for one test module, the way an installer would.

    A ``.dist-info`` folder with its ``entry_points.txt`` goes into a temporary directory on
    ``sys.path`` (and on ``PYTHONPATH`` for subprocesses), so ``importlib.metadata`` finds the
    ``archspec.ops`` entry point exactly as after ``pip install tests/plugin_pkg``.  Nothing outside
    the temporary directory changes; afterwards the path, the environment and the op registry are
    restored and the plugins are forgotten.
    """
    import archspec.plugins as plugins
    from archspec.ops import OPS

    site = tmp_path_factory.mktemp("site")
    info = site / "archspec_demo_plugin-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: archspec-demo-plugin\nVersion: 0.1.0\n", encoding="utf-8")
    (info / "entry_points.txt").write_text("[archspec.ops]\ndemo = archspec_demo_plugin.ops\n", encoding="utf-8")
    added = [str(site), str(PLUGIN_SRC)]
    old_path, old_env = list(sys.path), os.environ.get("PYTHONPATH")
    sys.path[:0] = added
    os.environ["PYTHONPATH"] = os.pathsep.join(added + ([old_env] if old_env else []))
    before = set(OPS)
    plugins._loaded = None
    try:
        yield
    finally:
        sys.path[:] = old_path
        if old_env is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old_env
        for name in set(OPS) - before:
            del OPS[name]
        for mod in [m for m in sys.modules if m.split(".")[0] == "archspec_demo_plugin"]:
            del sys.modules[mod]  # the next module's install imports (and so registers) it afresh
        plugins._loaded = None
