"""Shared test fixtures and paths."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
SEEDS = ["lenet", "alexnet", "vgg11", "nin", "googlenet", "resnet18", "densenet"]

sys.path.insert(0, str(Path(__file__).resolve().parent))
