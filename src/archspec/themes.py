"""What ``archspec render`` offers: output formats, directions, the default depth and the colour themes.

Kept apart from :mod:`archspec.render` so that the command line can list these choices without
importing the renderer (``archspec validate`` starts faster).  Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["DEFAULT_DEPTH", "DIRECTIONS", "FORMATS", "THEMES", "Theme"]

#: Output formats; everything but ``dot`` needs Graphviz's ``dot`` program.
FORMATS = ("svg", "png", "pdf", "dot")
DIRECTIONS = ("TB", "LR")
#: Default depth: ``"auto"``, the most detailed level (all, else one level less each time) whose figure
#: fits the page at a readable scale.
DEFAULT_DEPTH: int | str | None = "auto"


@dataclass(frozen=True)
class Theme:
    """The colours of a diagram: background, text, edges, clusters and node fills per op category."""

    background: str
    font: str
    edge: str
    skip: str
    cluster_border: str
    cluster_fill: tuple[str, ...]
    collapsed: str
    merge: str
    categories: dict[str, str] = field(default_factory=dict)


THEMES: dict[str, Theme] = {
    "light": Theme(
        background="white", font="#1a1a1a", edge="#444444", skip="#c0392b", cluster_border="#8c8c8c",
        cluster_fill=("#f7f7f7", "#eef3f8", "#f8f3ea"), collapsed="#dde8f5", merge="#fde9b8",
        categories={"conv": "#cfe2f3", "linear": "#d9ead3", "pool": "#fce5cd", "act": "#f3f3f3",
                    "norm": "#ead1dc", "reg": "#eeeeee", "shape": "#eeeeee", "merge": "#fde9b8",
                    "other": "#ffffff"},
    ),
    "dark": Theme(
        background="#1e1e1e", font="#e8e8e8", edge="#bbbbbb", skip="#ff7b6b", cluster_border="#777777",
        cluster_fill=("#2a2a2a", "#26303a", "#3a3326"), collapsed="#2f4a66", merge="#6b5520",
        categories={"conv": "#2c4d6e", "linear": "#33553a", "pool": "#6b4a26", "act": "#3a3a3a",
                    "norm": "#5a3048", "reg": "#3a3a3a", "shape": "#3a3a3a", "merge": "#6b5520",
                    "other": "#333333"},
    ),
    "mono": Theme(
        background="white", font="black", edge="black", skip="black", cluster_border="black",
        cluster_fill=("white", "white", "white"), collapsed="#e6e6e6", merge="#d0d0d0",
        categories={},
    ),
}
