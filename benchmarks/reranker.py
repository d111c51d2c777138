"""`python -m benchmarks.reranker`: the cross-encoder's cost per question-sentence pair, as
shipped (int8, dynamically quantised) and converted back to fp32, measured in turns.

The fp32 model is made here from the int8 file: every MatMulInteger with its scales becomes a
MatMul on dequantised weights, and the quantised embedding tables become float ones (needs the
`onnx` package, a dev dependency). Both run in ONNX Runtime with the same threads, on the same
pairs, one pair per run as `bot.answering.rerank` does, alternating, so machine load falls on
both. Also printed: how far the two models' logits differ, and how much batching moves an int8
score (the int8 model quantises its activations per run, so a batched sentence's score depends
on its neighbours; `bot.answering.rerank` runs pairs alone for that reason).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

QUESTIONS = (
    "What did Stoltenberg say about Iran?",
    "Which airline announced a deal to buy Spirit Airlines?",
    "How many people were killed by the earthquake in Afghanistan?",
)
SENTENCES = (
    "“What I can say is that what we see is that Iran is supporting Russia,” he said.",
    "Asked about an exclusive report by Sky News that Russia has allegedly given Iran captured "
    "British and US weapons and cash in return for deadly drones, Mr Stoltenberg said that he "
    "could not confirm the allegations.",
    "Frontier Airlines agreed to buy Spirit Airlines in a cash-and-stock deal.",
    "Fans celebrated in the streets until midnight after the derby.",
    "The quake struck the country's east, killing more than 1,000 people and wounding many more.",
    "However, the NATO chief cautioned that the Kremlin should not be underestimated.",
)
ROUNDS = 5


def fp32_copy(int8_path: Path, target: Path) -> None:
    """The int8 model with its weights dequantised: same graph, float MatMuls."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(int8_path))
    graph = model.graph
    initial = {i.name: i for i in graph.initializer}
    constants = {n.output[0]: n for n in graph.node if n.op_type == "Constant"}
    users: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            users.setdefault(name, []).append(node)
    producer = {o: n for n in graph.node for o in n.output}

    def value(name: str) -> np.ndarray:
        if name in initial:
            return numpy_helper.to_array(initial[name])
        return numpy_helper.to_array(constants[name].attribute[0].t)

    def dequantised(quantised: str, scale: str, zero: str) -> np.ndarray:
        return (value(quantised).astype(np.float32) - value(zero).astype(np.float32)) * value(
            scale
        ).astype(np.float32)

    drop, replace, weights = set(), {}, []
    for node in graph.node:
        if node.op_type == "MatMulInteger":
            a_quantised, w_quantised, _, w_zero = node.input
            quantise = producer[a_quantised]
            cast = users[node.output[0]][0]
            rescale = users[cast.output[0]][0]
            scales = producer[rescale.input[1]]
            w_scale = next(x for x in scales.input if x != quantise.output[1])
            name = f"{w_quantised}_fp32"
            weights.append(numpy_helper.from_array(dequantised(w_quantised, w_scale, w_zero), name))
            replace[id(node)] = helper.make_node(
                "MatMul", [quantise.input[0], name], [rescale.output[0]]
            )
            drop |= {id(cast), id(rescale), id(scales)}
        elif node.op_type == "DequantizeLinear":
            gather = producer[node.input[0]]
            table, indices = gather.input
            name = f"{table}_fp32"
            weights.append(
                numpy_helper.from_array(dequantised(table, node.input[1], node.input[2]), name)
            )
            replace[id(node)] = helper.make_node("Gather", [name, indices], [node.output[0]])
            drop.add(id(gather))
    nodes = [replace.get(id(n), n) for n in graph.node if id(n) not in drop]
    live = {o.name for o in graph.output}
    kept = []
    for node in reversed(nodes):  # drop what nothing uses any more
        if any(o in live for o in node.output):
            kept.append(node)
            live.update(node.input)
    del graph.node[:]
    graph.node.extend(reversed(kept))
    used = [i for i in [*graph.initializer, *weights] if i.name in live]
    del graph.initializer[:]
    graph.initializer.extend(used)
    onnx.save(model, str(target))


def main() -> int:
    from bot.answering.rerank import CrossEncoder, model_dir

    folder = model_dir()
    with tempfile.TemporaryDirectory() as tmp:
        fp32_folder = Path(tmp)
        fp32_copy(folder / "model.onnx", fp32_folder / "model.onnx")
        (fp32_folder / "tokenizer.json").write_bytes((folder / "tokenizer.json").read_bytes())
        models = {"int8 (as shipped)": CrossEncoder(folder), "fp32": CrossEncoder(fp32_folder)}
        pairs = [(q, s) for q in QUESTIONS for s in SENTENCES]
        for model in models.values():  # warm up
            model.score(QUESTIONS[0], SENTENCES[:2])
        times: dict[str, list[float]] = {name: [] for name in models}
        scores: dict[str, list[float]] = {name: [] for name in models}
        for _ in range(ROUNDS):
            for question, sentence in pairs:
                for name, model in models.items():
                    started = time.perf_counter()
                    [score] = model.score(question, [sentence])
                    times[name].append(time.perf_counter() - started)
                    scores[name].append(float(score))
        int8 = models["int8 (as shipped)"]
        tokens = [len(int8.tokenizer.encode(q, s).ids) for q, s in pairs]
        batched = int8.session.run(None, _feeds(int8, pairs[: len(SENTENCES)]))[0][:, 0]
        alone = [int8.score(q, [s])[0] for q, s in pairs[: len(SENTENCES)]]
    print(f"{len(pairs)} question-sentence pairs, {statistics.mean(tokens):.0f} tokens on average")
    print("| model | median ms per pair | p90 ms |")
    print("|---|---|---|")
    for name, values in times.items():
        ordered = sorted(values)
        print(
            f"| {name} | {statistics.median(values) * 1000:.1f} | "
            f"{ordered[int(len(ordered) * 0.9)] * 1000:.1f} |"
        )
    gap = np.abs(np.array(scores["fp32"]) - np.array(scores["int8 (as shipped)"]))
    print(f"int8 against fp32 logits: mean |difference| {gap.mean():.2f}, largest {gap.max():.2f}")
    moved = np.abs(np.array(batched) - np.array(alone))
    print(f"batching {len(alone)} pairs together moves an int8 logit by up to {moved.max():.2f}")
    return 0


def _feeds(model, pairs) -> dict:
    encodings = model.tokenizer.encode_batch(pairs)
    width = max(len(e.ids) for e in encodings)
    ids = np.zeros((len(pairs), width), dtype=np.int64)
    mask, types = np.zeros_like(ids), np.zeros_like(ids)
    for row, e in enumerate(encodings):
        ids[row, : len(e.ids)], mask[row, : len(e.ids)] = e.ids, 1
        types[row, : len(e.ids)] = e.type_ids
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


if __name__ == "__main__":
    sys.exit(main())
