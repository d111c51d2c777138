"""int8 quantisation of an ONNX sentence encoder that stays close to its fp32 vectors.

`quantize(source, target, calibration)` writes the int8 model; `index/embeddings.py` calls it
once per machine (`bundled-int8`, the default model) with `CALIBRATION_TEXTS` as model inputs,
and keeps the file only if its vectors pass the cosine check there.

The recipe is ONNX Runtime's dynamic quantisation: weights int8 per output channel, activations
uint8 with *one scale per batch tensor*, computed at run time; only MatMul and the fused
attention's QKV projection (`OP_TYPES`). The embeddings, layer norms and GELU stay fp32.

One scale per tensor is the weak point. In a BERT encoder a few channels of a layer's input
carry a range 7-15 times the median channel's (the layer-norm output feeding the feed-forward
layer; one GELU output channel of 1,536 reaches 24 where the median reaches 1.7), and they set
the step for every other channel. Quantised plainly, all-MiniLM-L6-v2 kept a mean cosine of
0.994 to its fp32 vectors (minimum 0.987, over 256 news chunks), and the second feed-forward
layer alone lost half of that. So before quantising, two rewrites of the fp32 graph, both exact
in fp32 (cosine 1.000000 to the original), make the int8 part's inputs narrow:

1. **Balancing** (SmoothQuant, Xiao et al. 2023) for the input of each attention's QKV
   projection and of each feed-forward's first layer: the input is divided per channel by
   `s = range ** ALPHA / weight_range ** (1 - ALPHA)` (a `Mul` node) and the weight's rows
   multiplied by `s`. Wide channels move into the weights, which are quantised per output
   column and take it well. ALPHA 0.8 measured best of 0.5-1.0; 0.5 was worse than none.
2. **Splitting the outliers** (after LLM.int8(), Dettmers et al. 2022) of the feed-forward's
   hidden layer: the `SPLIT` channels of largest GELU range are computed by a small fp32 path.
   The first layer's weight columns and the second layer's rows are cut in two; the int8
   matrix product never sees those channels, and the fp32 one (384 x 16, then 16 x 384) is
   added back. Balancing helps little here (the GELU cannot carry a scale), splitting does:
   the error of each of the first three layers, which carry most of it, fell 8-9 times.

Together: mean cosine 0.9989 (minimum 0.997) against 0.994 on 256 news chunks, at no speed
cost the benchmark could see (BENCHMARKS.md, "Embedding: past the fp32 ceiling"). The ranges
come from `CALIBRATION_TEXTS`, invented texts shipped here, never from the corpus being
indexed, so the file is the same on every machine. Calibrating on 6 texts or on 128 news
chunks gave the same cosine to three decimals: the wide channels belong to the model, not to
the text.

A graph without the fused `Attention` / `MatMul -> BiasGelu -> MatMul` shapes (an export that
ONNX Runtime's optimiser could not fuse) is quantised plainly where the shapes are missing.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np

OP_TYPES = ("MatMul", "Attention")
ALPHA = 0.8  # how much of a wide channel's range balancing moves into the weights
SPLIT = 16  # feed-forward channels of largest range computed in fp32 (of 1,536 in MiniLM-L6)
# Texts whose activations give the ranges: written for this purpose, news-like in form (names,
# quotes, numbers, dates, short and long), and invented -- no event here happened.
CALIBRATION_TEXTS = (
    "The city council voted 7-2 on Tuesday to extend the night bus service until March, "
    'after a three-month trial carried more than 40,000 passengers. "People told us they '
    'needed it, and the numbers proved them right," said councillor Maria Okafor, who '
    "proposed the plan. Opponents said the $1.2 million cost would fall on property owners. "
    "The service will run every 30 minutes between midnight and 5 a.m. on four routes.",
    "Heavy rain closed schools across the northern province for a second day on Friday. "
    "Rivers rose above flood level in six districts, and about 3,500 people spent the night "
    "in sports halls. The weather office expects the rain to ease by Sunday.",
    "Shares in the carmaker fell 8% after it cut its sales forecast for the year, blaming "
    "weaker demand in Europe and the cost of batteries. Chief executive Lars Henning said the "
    "company would delay two new models but keep all its factories open. Analysts at a large "
    'bank said the cut was "smaller than feared" and kept their rating unchanged.',
    "What did the minister say about the new border agreement?",
    "Who won the election for mayor?",
    "The two leaders met in Geneva for four hours and agreed to resume talks on prisoner "
    "exchanges, officials from both sides said. No date was set. A joint statement called the "
    'meeting "frank and useful" but did not mention the disputed pipeline, which remains '
    "the main obstacle to a wider deal. Protesters gathered outside the hotel, holding "
    "signs that demanded the release of detained journalists.",
    "Correction: an earlier version of this article misstated the year the museum opened. "
    "It opened in 1987, not 1978.",
    "The national team beat the champions 3-1 in Saturday's qualifier, with two late goals "
    "from substitute Tomas Reyes. Coach Anna Berg praised the defence and said the squad "
    "would rest key players before Wednesday's away match. Tickets for the final home game "
    "sold out within an hour; the stadium holds 52,000.",
    " ".join(["Prices rose 0.4% in May, the statistics agency said on Monday."] * 30),
)


def quantize(
    source: Path, target: Path, calibration: Mapping[str, np.ndarray], rewrite: bool = True
) -> None:
    """Write the int8 model of the fp32 ONNX model `source` to `target`.

    `calibration` is a batch of model inputs (input_ids, attention_mask...) whose activations
    give each channel's range. `rewrite=False` quantises plainly, without the two rewrites
    (the benchmark's baseline). Needs the `onnx` package, which onnxruntime.quantization uses.
    """
    import onnx
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(str(source))
    plan = _Plan(model, find=rewrite)
    ranges = _ranges(model, plan.observed(), calibration)
    rewritten, fp32_nodes = plan.rewrite(ranges)
    balanced = target.with_name(target.name + ".balanced")
    try:
        onnx.save(rewritten, str(balanced))
        with _quiet_root_logger():
            quantize_dynamic(
                str(balanced),
                str(target),
                per_channel=True,
                weight_type=QuantType.QInt8,
                op_types_to_quantize=list(OP_TYPES),
                nodes_to_exclude=fp32_nodes,
                extra_options={"DefaultTensorType": TensorProto.FLOAT},
            )
    finally:
        balanced.unlink(missing_ok=True)


class _Plan:
    """Where the rewrites go in one model, by node position: the QKV projections to balance,
    and each feed-forward block (first MatMul, its BiasGelu, second MatMul) to balance and
    split. `find=False` plans nothing: the model is quantised plainly."""

    def __init__(self, model, find: bool = True):
        self.model = model
        nodes, weights = list(model.graph.node), {t.name for t in model.graph.initializer}
        readers: dict[str, list[int]] = {}
        for position, node in enumerate(nodes):
            for name in node.input:
                readers.setdefault(name, []).append(position)

        def weighted(position: int, op_type: str) -> bool:
            node = nodes[position]
            return node.op_type == op_type and len(node.input) > 1 and node.input[1] in weights

        def only_reader(position: int, op_type: str) -> int | None:
            after = readers.get(nodes[position].output[0], [])
            return after[0] if len(after) == 1 and weighted(after[0], op_type) else None

        self.attention: list[int] = []
        self.feed_forward: list[tuple[int, int, int]] = []
        for position in range(len(nodes) if find else 0):
            if weighted(position, "Attention"):
                self.attention.append(position)
            elif (
                weighted(position, "MatMul")
                and (gelu := only_reader(position, "BiasGelu")) is not None
                and (second := only_reader(gelu, "MatMul")) is not None
            ):
                self.feed_forward.append((position, gelu, second))

    def observed(self) -> list[str]:
        """The activations whose per-channel ranges the rewrites need."""
        nodes = self.model.graph.node
        names = [nodes[p].input[0] for p in self.attention]
        for first, gelu, _ in self.feed_forward:
            names += [nodes[first].input[0], nodes[gelu].output[0]]
        return list(dict.fromkeys(names))

    def rewrite(self, ranges: Mapping[str, np.ndarray]):
        """A copy of the model with the rewrites, and the names of the nodes to keep in fp32."""
        from onnx import helper, numpy_helper

        model = copy.deepcopy(self.model)
        graph = model.graph
        nodes = list(graph.node)
        weights = {t.name: t for t in graph.initializer}

        def weight(name: str) -> np.ndarray:
            return numpy_helper.to_array(weights[name])

        def add_weight(name: str, value: np.ndarray) -> str:
            graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
            return name

        def balance(position: int) -> list:
            """Divide the node's input per channel by s and multiply its weight's rows by s;
            returns the Mul node that goes before it."""
            node = nodes[position]
            w = weight(node.input[1])
            s = _balance_scale(ranges[node.input[0]], np.abs(w).max(axis=1))
            weights[node.input[1]].CopyFrom(numpy_helper.from_array(w * s[:, None], node.input[1]))
            # Names of our own: the quantiser derives "<input>_scale" from its input names.
            factor = add_weight(f"newsbot_{position}_balance", (1.0 / s).astype(np.float32))
            balanced = f"newsbot_{position}_balanced"
            mul = helper.make_node("Mul", [node.input[0], factor], [balanced], balanced)
            node.input[0] = balanced
            return [mul]

        def split(first: int, gelu: int, second: int) -> tuple[list, str]:
            """The block as two: its narrow hidden channels (int8) and its SPLIT widest
            (fp32), added up; returns the nodes and the fp32 product's name."""
            hidden = ranges[nodes[gelu].output[0]]
            wide = np.sort(np.argsort(hidden)[::-1][: min(SPLIT, len(hidden) // 2)])
            narrow = np.setdiff1d(np.arange(len(hidden)), wide)
            w1, b1 = weight(nodes[first].input[1]), weight(nodes[gelu].input[1])
            w2 = weight(nodes[second].input[1])
            x, parts = nodes[first].input[0], []
            for part, channels in (("int8", narrow), ("fp32", wide)):
                p = f"newsbot_{first}_{part}"
                w1_part = add_weight(f"{p}_w1", w1[:, channels])
                b1_part = add_weight(f"{p}_b1", b1[channels])
                w2_part = add_weight(f"{p}_w2", w2[channels])
                parts += [
                    helper.make_node("MatMul", [x, w1_part], [f"{p}_h0"], f"{p}_h0"),
                    helper.make_node(
                        "BiasGelu", [f"{p}_h0", b1_part], [f"{p}_h"], f"{p}_h", "", "com.microsoft"
                    ),
                    helper.make_node("MatMul", [f"{p}_h", w2_part], [f"{p}_y"], f"{p}_y"),
                ]
            total = [f"newsbot_{first}_int8_y", f"newsbot_{first}_fp32_y"]
            parts.append(helper.make_node("Add", total, [nodes[second].output[0]], total[0] + "+"))
            return parts, f"newsbot_{first}_fp32_y"  # 16 inputs: int8 would save nothing

        replaced: dict[int, list] = {}  # node position -> the nodes that take its place
        fp32_nodes: list[str] = []
        for position in self.attention:
            replaced[position] = [*balance(position), nodes[position]]
        for first, gelu, second in self.feed_forward:
            mul = balance(first)  # first: the split reads the balanced input and weights
            parts, fp32_node = split(first, gelu, second)
            replaced[first] = mul + parts
            replaced[gelu] = replaced[second] = []
            fp32_nodes.append(fp32_node)
        del graph.node[:]
        graph.node.extend(m for p, n in enumerate(nodes) for m in replaced.get(p, [n]))
        # The split weights replace the feed-forward's own: drop what no node reads any more.
        read = {name for n in graph.node for name in n.input}
        kept = [t for t in graph.initializer if t.name in read]
        del graph.initializer[:]
        graph.initializer.extend(kept)
        return model, fp32_nodes


def _balance_scale(activation_range: np.ndarray, weight_range: np.ndarray) -> np.ndarray:
    floor = 1e-5  # a channel that never fired, or a zero weight row: no division by zero
    scale = np.maximum(activation_range, floor) ** ALPHA
    return (scale / np.maximum(weight_range, floor) ** (1 - ALPHA)).astype(np.float32)


def _ranges(model, names: list[str], calibration: Mapping[str, np.ndarray]) -> dict:
    """Each named activation's largest absolute value per channel (last axis) over the
    calibration batch, padding included: the run-time quantiser sees the padding too."""
    if not names:
        return {}
    import onnxruntime
    from onnx import TensorProto, helper

    probe = copy.deepcopy(model)
    for name in names:
        probe.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(
        probe.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    wanted = {i.name for i in session.get_inputs()}
    values = session.run(names, {k: v for k, v in calibration.items() if k in wanted})
    return {
        name: np.abs(value).reshape(-1, value.shape[-1]).max(axis=0)
        for name, value in zip(names, values, strict=True)
    }


@contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """onnxruntime.quantization gives advice through `logging.warning`, which also configures
    the root logger when nothing has; neither belongs in newsbot's output (once, at indexing)."""
    root = logging.getLogger()
    handler, level = logging.NullHandler(), root.level
    root.addHandler(handler)  # a root with a handler is not configured behind our back
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
