"""Train the extractive answer's sentence ranker (``stack/pipeline/sentence_ranker.py``), numpy only.

    python bench/train_sentence_ranker.py --dataset ../shared/corpus/eval/squad_v1.1_dev_a.json \\
        --project /tmp/proj_squad [--questions 600] [--cache /tmp/ranker.pkl] \
        [--readers SKIP_EVEN.safetensors SKIP_ODD.safetensors] [--write]

Questions: never the reported benchmark sample (``random.Random(0).sample(questions, 300)``, what
bench/answers.py reports); of the rest, a validation sample (``random.Random(1)``, 150 questions,
the one the earlier tuning used) and a training sample of ``--questions`` others
(``random.Random(2)``).  Every paragraph is ingested as a document (as bench/answers.py does; reuse
a project with ``--project``); each question is searched through the real pipeline, and its
candidate sentences are the ones ``extractive_answer`` would judge (``answer.ranker_rows``: the
same shortlist, the same features).  ``--cache`` keeps the hits and the embedding vectors of the
question and of every candidate sentence, so that a second run only re-fits.

Label: a candidate is right when it contains a gold answer text (whitespace and case ignored).
Model: a softmax over each question's candidates (conditional logistic regression) on
standardised features, L2-regularised (``--l2``), full-batch Adam; the loss is minus the log of the
probability given to the right candidates; questions where no candidate is right are left out.
The sentence reader's score is a feature: with ``--readers`` each question is read by a reader
that never saw its article (bench/train_sentence_reader.py --skip-articles even / odd), so that the
ranker learns how far to trust the reader on text it has not seen (the validation answers printed
at the end use the shipped reader, which saw those articles: they are optimistic).
The weights are folded back to the raw features and printed as the ``WEIGHTS`` constant;
``--write`` puts them into stack/pipeline/sentence_ranker.py.  On the last line: JSON with
top-1 accuracy (the best candidate is right) of the hand-set score and of the ranker on the
training and validation questions, and the validation answers' ``answer_has_gold`` and
``mean_answer_chars`` with the new weights.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import random
import re
import sys
from pathlib import Path

from _common import machine, temporary_pipeline
from answers import answer_body, contains_gold
from retrieval import ingest_paragraphs, load_squad_qas

RANKER_FILE = Path(__file__).resolve().parents[1] / "stack" / "pipeline" / "sentence_ranker.py"


def collect(pipeline, questions, split: str, data: dict) -> None:
    """Hits and vectors for each question not yet in ``data`` (``{"qs": {...}, "vec": {...}}``)."""
    import numpy as np

    from stack.pipeline import answer as A

    embedder = pipeline.embedder_for(pipeline._collection(None))
    for i, qa in enumerate(questions, 1):
        question = qa["question"]
        if question in data["qs"]:
            continue
        hits = pipeline.search(question)
        _, candidates = A._candidates(A.sources_from_hits(hits))
        new = [c.text for c in candidates if c.text not in data["vec"]]
        if new:
            for text, vector in zip(new, embedder.encode(new), strict=True):
                data["vec"][text] = np.asarray(vector, dtype=np.float32)
        data["qs"][question] = {"split": split, "answers": qa["answers"], "hits": hits,
                                "qv": np.asarray(embedder.encode_query(question), dtype=np.float32)}
        if i % 50 == 0:
            print(f"{split}: {i}/{len(questions)} questions, {len(data['vec'])} sentence vectors", file=sys.stderr)


def cached_similarity(data: dict, question: str):
    import numpy as np

    query = data["qs"][question]["qv"]

    def similarity(_text, sentences):
        return [float(np.dot(data["vec"][s], query)) for s in sentences]

    return similarity


def rows_for(question: str, entry: dict, similarity, reader=None):
    """(rows, labels, hand-set best is right) for one question, as extractive_answer sees it;
    ``reader``: the sentence reader to use (the shipped one by default)."""
    from stack.pipeline import answer as A

    sources = A.sources_from_hits(entry["hits"])
    per_source, candidates = A._candidates(sources)
    if len(candidates) < 2:
        return None
    A._set_terms(candidates, per_source)
    extra = {"reader": reader} if reader is not None else {}
    shortlist, rows = A.ranker_rows(question, candidates, sources, per_source, similarity, **extra)
    labels = [1.0 if contains_gold(c.text, entry["answers"]) else 0.0 for c in shortlist]
    A._score(question, candidates, sources, similarity)  # the hand-set score, for comparison
    hand_best = max(candidates, key=lambda c: (c.score, -c.rank, -c.index))
    return rows, labels, contains_gold(hand_best.text, entry["answers"])


def fit(groups, l2: float, steps: int):
    """Weights (raw features) of a softmax over each group's rows; groups: [(X, y)]."""
    import numpy as np

    stacked = np.concatenate([x for x, _ in groups])
    mean, scale = stacked.mean(axis=0), stacked.std(axis=0)
    scale[scale < 1e-9] = 1.0
    normed = [((x - mean) / scale, y) for x, y in groups]
    w = np.zeros(stacked.shape[1])
    m, v = np.zeros_like(w), np.zeros_like(w)
    rate, beta1, beta2 = 0.05, 0.9, 0.999
    for step in range(1, steps + 1):
        grad = l2 * w
        for x, y in normed:
            logits = x @ w
            p = np.exp(logits - logits.max())
            p /= p.sum()
            q = p * y
            q /= q.sum()
            grad += x.T @ (p - q) / len(normed)
        m = beta1 * m + (1 - beta1) * grad
        v = beta2 * v + (1 - beta2) * grad * grad
        w -= rate * (m / (1 - beta1**step)) / (np.sqrt(v / (1 - beta2**step)) + 1e-8)
    return w / scale  # the bias a standardisation adds is the same for every row: a softmax ignores it


def top1(groups, weights) -> float:
    import numpy as np

    return float(np.mean([y[int(np.argmax(x @ weights))] for x, y in groups])) if groups else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--project", default=None, help="ingest into (or reuse) this project folder")
    parser.add_argument("--questions", type=int, default=600, help="training questions (default 600)")
    parser.add_argument("--validation", type=int, default=150, help="validation questions (default 150)")
    parser.add_argument("--cache", default=None, help="keep hits and vectors in this pickle file")
    parser.add_argument("--l2", type=float, default=0.01)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--write", action="store_true", help="write the weights into sentence_ranker.py")
    parser.add_argument("--readers", nargs=2, metavar=("SKIP_EVEN", "SKIP_ODD"), default=None,
                        help="sentence readers trained without the even / the odd articles "
                             "(bench/train_sentence_reader.py --skip-articles): each question's features "
                             "then come from the one that never saw its article, as on data the ranker "
                             "will meet (without them, the shipped reader, which saw these questions)")
    args = parser.parse_args()

    import numpy as np

    from stack.pipeline import answer as A
    from stack.pipeline import sentence_ranker

    os.environ.pop("OPENAI_API_KEY", None)
    paragraphs, questions = load_squad_qas(args.dataset, None)
    reported = {id(qa) for qa in random.Random(0).sample(questions, min(300, len(questions)))}
    rest = [qa for qa in questions if id(qa) not in reported]
    validation = random.Random(1).sample(rest, min(args.validation, len(rest)))
    held = {id(qa) for qa in validation}
    pool = [qa for qa in rest if id(qa) not in held]
    training = random.Random(2).sample(pool, min(args.questions, len(pool)))

    data = {"qs": {}, "vec": {}}
    if args.cache and os.path.exists(args.cache):
        with open(args.cache, "rb") as handle:
            data = pickle.load(handle)
    if any(qa["question"] not in data["qs"] for qa in validation + training):
        if args.project:
            from stack.pipeline.service import Pipeline
            from stack.settings import load_settings

            folder = Path(args.project)
            folder.mkdir(parents=True, exist_ok=True)
            pipeline = Pipeline(load_settings(folder, {"openai_api_key": None}))
        else:
            pipeline, folder = temporary_pipeline(openai_api_key=None)
        ingest_paragraphs(pipeline, folder, paragraphs)
        collect(pipeline, validation, "validation", data)
        collect(pipeline, training, "training", data)
        if args.cache:
            with open(args.cache + ".tmp", "wb") as handle:
                pickle.dump(data, handle)
            os.replace(args.cache + ".tmp", args.cache)

    from stack.pipeline import sentence_reader

    with open(args.dataset, encoding="utf-8") as handle:
        article_of = [n for n, article in enumerate(json.load(handle)["data"]) for _ in article["paragraphs"]]

    def reader_for(qa):
        if not args.readers:
            return None
        weights_file = Path(args.readers[article_of[qa["paragraph"]] % 2])
        return lambda question, sentences: sentence_reader.scores(question, sentences, weights_file)

    def groups_of(sample):
        groups, hand = [], []
        for qa in sample:
            question = qa["question"]
            made = rows_for(question, data["qs"][question], cached_similarity(data, question), reader_for(qa))
            if made is None:
                continue
            rows, labels, hand_right = made
            hand.append(hand_right)
            if any(labels):
                groups.append((np.asarray(rows, dtype=float), np.asarray(labels)))
        return groups, hand

    train_groups, train_hand = groups_of(training)
    valid_groups, valid_hand = groups_of(validation)
    weights = fit(train_groups, args.l2, args.steps)
    named = {name: round(float(w), 5) for name, w in zip(sentence_ranker.FEATURES, weights, strict=True)}
    constant = "WEIGHTS: dict[str, float] = {\n" + "".join(f'    "{k}": {v!r},\n' for k, v in named.items()) + "}\n"
    print(constant)
    if args.write:
        text = RANKER_FILE.read_text(encoding="utf-8")
        text = re.sub(r"WEIGHTS: dict\[str, float\] = \{[^}]*\}\n", lambda _: constant, text, count=1)
        RANKER_FILE.write_text(text, encoding="utf-8")

    sentence_ranker.WEIGHTS = named  # the answers below use the new weights
    has = chars = 0
    for qa in validation:
        question = qa["question"]
        answer = A.extractive_answer(question, data["qs"][question]["hits"],
                                     similarity=cached_similarity(data, question))
        body = answer_body(answer.answer)
        has += contains_gold(body, qa["answers"])
        chars += len(body)
    n = max(1, len(validation))
    print(json.dumps({
        "training_questions": len(training), "training_groups": len(train_groups),
        "validation_questions": len(validation),
        # Share of all questions whose best candidate is right (questions without a right candidate count as misses).
        "top1_hand_training": round(sum(train_hand) / max(1, len(train_hand)), 4),
        "top1_ranker_training": round(top1(train_groups, weights) * len(train_groups) / max(1, len(train_hand)), 4),
        "top1_hand_validation": round(sum(valid_hand) / max(1, len(valid_hand)), 4),
        "top1_ranker_validation": round(top1(valid_groups, weights) * len(valid_groups) / max(1, len(valid_hand)), 4),
        "validation_answer_has_gold": round(has / n, 4),
        "validation_mean_answer_chars": round(chars / n, 1),
        "l2": args.l2, "machine": machine(),
    }))


if __name__ == "__main__":
    main()
