"""How each model looks in every figure: one colour, one marker and one line style per model name, fixed.

A model keeps its look from figure to figure (bpr_max is the red diamond in the accuracy, learning-curve, training
loss and speed figures alike), and no two models share a colour and a marker:

- the GRU4Rec losses: solid lines, Matplotlib's first six ``tab`` colours, filled markers
  (ce_full blue circle, ce_sampled orange square, bpr green triangle, bpr_max red diamond, top1 purple downward
  triangle, top1_max brown plus);
- the baselines: dashed lines, six more colours and markers (pop grey cross, spop olive left triangle, itemknn pink
  right triangle, sknn cyan pentagon, vsknn navy hexagon, stan teal thin diamond);
- the oracle: a black star on a dotted line;
- a tuned model (``{loss}_tuned``): its loss's colour, a plus sign and a dash-dot line;
- any other name: the next colour and marker of :data:`SPARE_COLOURS` x :data:`SPARE_MARKERS`, which no model
  above has.

The colours are at least 25 CIELAB units apart (tests/test_plots.py checks), so none is a shade of another.
"""

from __future__ import annotations

from itertools import cycle, product

from gru4rec_pipeline.names import BASELINES, LOSSES, ORACLE, TUNED_SUFFIX

LOSS_STYLE = {"linestyle": "-"}
BASELINE_STYLE = {"linestyle": "--"}

MODEL_STYLES = {
    "ce_full": {"color": "#1f77b4", "marker": "o", **LOSS_STYLE},
    "ce_sampled": {"color": "#ff7f0e", "marker": "s", **LOSS_STYLE},
    "bpr": {"color": "#2ca02c", "marker": "^", **LOSS_STYLE},
    "bpr_max": {"color": "#d62728", "marker": "D", **LOSS_STYLE},
    "top1": {"color": "#9467bd", "marker": "v", **LOSS_STYLE},
    "top1_max": {"color": "#8c564b", "marker": "P", **LOSS_STYLE},
    "pop": {"color": "#7f7f7f", "marker": "X", **BASELINE_STYLE},
    "spop": {"color": "#bcbd22", "marker": "<", **BASELINE_STYLE},
    "itemknn": {"color": "#e377c2", "marker": ">", **BASELINE_STYLE},
    "sknn": {"color": "#17becf", "marker": "p", **BASELINE_STYLE},
    "vsknn": {"color": "#1b2a6b", "marker": "h", **BASELINE_STYLE},
    "stan": {"color": "#00796b", "marker": "d", **BASELINE_STYLE},
    ORACLE: {"color": "#000000", "marker": "*", "linestyle": ":"},
}
TUNED_MARKER = "+"
TUNED_LINESTYLE = "-."
SPARE_COLOURS = ("#6b6ecf", "#bd9e39", "#ad494a", "#31a354", "#a55194", "#636363")
SPARE_MARKERS = ("x", "1", "2", "3", "4", "8")
# Every model the workflow evaluates.
KNOWN_MODELS = (*LOSSES, *(loss + TUNED_SUFFIX for loss in LOSSES), *BASELINES, ORACLE)


def model_style(name: str) -> dict | None:
    """The fixed style of a model the workflow evaluates (a loss, a tuned loss, a baseline, the oracle); None for
    any other name."""
    if name in MODEL_STYLES:
        return dict(MODEL_STYLES[name])
    base = name.removesuffix(TUNED_SUFFIX)
    if name != base and base in LOSSES:
        return {"color": MODEL_STYLES[base]["color"], "marker": TUNED_MARKER, "linestyle": TUNED_LINESTYLE}
    return None


def model_styles(names) -> dict[str, dict]:
    """Matplotlib keyword arguments (``color``, ``marker``, ``linestyle``) of each of ``names`` in one figure: the
    fixed style of every known model, the next spare colour and marker for each other name."""
    styles = {name: model_style(name) for name in dict.fromkeys(names)}
    spare = cycle(product(SPARE_COLOURS, SPARE_MARKERS))
    for name, style in styles.items():
        if style is None:
            colour, marker = next(spare)
            styles[name] = {"color": colour, "marker": marker, "linestyle": "-"}
    return styles
