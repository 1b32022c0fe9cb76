#!/usr/bin/python3
"""cascade_ceiling.py -- what the word-vector proxies of the cascades could achieve at best, on
the WordNet workload of bench_quality (docs/QUALITY.md), whatever the statistics around them.

An offline analysis, not a benchmark of the engine: it rebuilds the embed proxy's features the
way operators/sem_cascade.c does (the mean of a text's wink word vectors, unit length; the
per-dimension maximum of its words' unit vectors; the cosine with the instruction), then

  filter  for N synsets drawn at random: fits the logistic regression on `train` labelled
          units, and reports its AUC on the others and the smallest band any pair of
          thresholds could have for recall and precision >= 0.9 if every label were known
          (the "ideal band": no sample, no bound; a certified cascade asks for more);
  join    for bench_quality --join 150's words x hypernyms: the recall of the true matches
          among each left word's k best right words by cosine, by a logistic regression over
          [a*b, |a-b|, b, cos] fitted to 1,000 random labelled pairs, and fitted to ALL pairs'
          labels (a ceiling for any linear pair scorer on these features).

Needs python3-numpy (Debian) and the corpus of tools/wordnet2json:
    ./build/wordnet2json --out /tmp/wn
    scripts/cascade_ceiling.py --corpus /tmp/wn --vectors data/wink100.vec [--category animal]
"""
import argparse
import json
import re
import struct

import numpy as np

TOK = re.compile(r"[A-Za-z0-9\x80-\uffff]+")


def load_vectors(path):
    b = open(path, "rb").read()
    if b[:8] != b"SSWVEC01":
        raise SystemExit(f"{path}: not a SSWVEC01 file")
    count, dim = struct.unpack_from("<II", b, 8)
    strtab = struct.unpack_from("<Q", b, 16)[0]
    offs = np.frombuffer(b, dtype=np.uint32, count=count, offset=24)
    so = 24 + count * 4
    names = b[so:so + strtab]
    vecs = np.frombuffer(b, dtype=np.float32, count=count * dim, offset=(so + strtab + 3) // 4 * 4)
    vecs = vecs.reshape(count, dim).astype(np.float64)
    index = {}
    for i, o in enumerate(offs):
        index[names[o:names.index(b"\0", o)].decode("utf-8", "replace")] = i
    return index, vecs, dim


class Embed:
    def __init__(self, path):
        self.index, self.vecs, self.dim = load_vectors(path)

    def words(self, text):
        return [w.lower() for w in TOK.findall(text)]

    def mean(self, text):
        v = np.zeros(self.dim)
        for w in self.words(text):
            i = self.index.get(w)
            if i is not None:
                v += self.vecs[i]
        n = np.linalg.norm(v)
        return v / n if n > 0 else v

    def features(self, text, instr):
        m = self.mean(text)
        wv = [self.vecs[self.index[w]] for w in self.words(text) if w in self.index]
        mx = np.max([v / max(1e-12, np.linalg.norm(v)) for v in wv], axis=0) if wv else np.zeros(self.dim)
        return np.concatenate([m, mx, [m @ instr]])


def lr_fit(x, y, l2):
    """Logistic regression by Newton's method, as ss_cascade_lr_fit (bias unpenalised)."""
    n, d = x.shape
    xb = np.hstack([x, np.ones((n, 1))])
    w = np.zeros(d + 1)
    w[-1] = np.log((y.sum() + 0.5) / (n - y.sum() + 0.5))
    pen = np.full(d + 1, l2)
    pen[-1] = 1e-6
    for _ in range(50):
        p = 1 / (1 + np.exp(-(xb @ w)))
        g = xb.T @ (p - y) + np.where(np.arange(d + 1) < d, l2 * w, 0)
        h = (xb * (p * (1 - p))[:, None]).T @ xb + np.diag(pen)
        step = np.linalg.solve(h, g)
        w -= step
        if np.abs(step).max() < 1e-7:
            break
    return lambda z: 1 / (1 + np.exp(-(z @ w[:-1] + w[-1])))


def auc(s, y):
    r = np.empty(len(s))
    r[np.argsort(s)] = np.arange(len(s))
    npos = y.sum()
    return (r[y == 1].sum() - npos * (npos - 1) / 2) / (npos * (len(y) - npos))


def ideal_band(s, y, recall=0.9, precision=0.9):
    """The smallest share of units between lo and hi when every label is known."""
    o = np.argsort(s)
    yy = y[o]
    npos = yy.sum()
    cpos = np.cumsum(yy)
    k = int(np.searchsorted(cpos, (1 - recall) * npos, side="right"))
    tp = npos - (cpos[k - 1] if k > 0 else 0)
    neg_above = np.cumsum((1 - yy)[::-1])[::-1]
    h = k
    while h < len(s) and neg_above[h] > (1 - precision) / precision * tp:
        h += 1
    return (h - k) / len(s)


def filter_ceiling(args, nouns, emb):
    instr = emb.mean(f"Is the definition of a{'n' if args.category[0] in 'aeiou' else ''} {args.category}?")
    rng = np.random.default_rng(0)
    for seed in range(args.seeds):
        pick = rng.choice(len(nouns), args.n, replace=False)
        x = np.array([emb.features(nouns[i]["gloss"], instr) for i in pick])
        y = np.array([nouns[i]["category"] == "noun." + args.category for i in pick], float)
        for train in (600, 1500, 2500):
            t = rng.choice(args.n, train, replace=False)
            rest = np.ones(args.n, bool)
            rest[t] = False
            s = lr_fit(x[t], y[t], 0.05)(x)
            print(f"filter {args.category} seed {seed} train {train}: AUC {auc(s[rest], y[rest]):.3f}, "
                  f"ideal band {100 * ideal_band(s[rest], y[rest]):.1f}% of the units", flush=True)


def join_ceiling(args, nouns, emb):
    byid = {n["id"]: n for n in nouns}
    closure = {}
    for line in open(f"{args.corpus}/closure.jsonl"):
        d = json.loads(line)
        closure[d["id"]] = d
    senses = {}
    for n in nouns:
        senses.setdefault(n["word"].lower(), []).append(n["id"])
    left, right, seen = [], [], set()
    for i in range(0, len(nouns), 37):  # as bench/quality.c run_join
        if len(left) >= 150:
            break
        h = closure[nouns[i]["id"]]["hypernyms"]
        if not h or byid[h[0]]["word"] == nouns[i]["word"]:
            continue
        left.append(nouns[i]["word"])
        if h[0] not in seen:
            seen.add(h[0])
            right.append(byid[h[0]]["word"])
    anc = {i: set(d["ancestors"]) for i, d in closure.items()}
    y = np.array([[any(bb in anc[aa] for aa in senses.get(a.lower(), []) for bb in senses.get(b.lower(), []))
                   for b in right] for a in left], float)
    a = np.array([emb.mean(w) for w in left])
    b = np.array([emb.mean(w) for w in right])
    cos = a @ b.T
    x = np.array([np.concatenate([a[i] * b[j], np.abs(a[i] - b[j]), b[j], [cos[i, j]]])
                  for i in range(len(left)) for j in range(len(right))])

    def recall_at(s, k):
        return sum(y[i, np.argsort(-s[i])[:k]].sum() for i in range(len(left))) / y.sum()

    rng = np.random.default_rng(0)
    some = rng.choice(y.size, 1000, replace=False)
    scorers = {"cosine": cos,
               "LR, 1,000 labelled pairs": lr_fit(x[some], y.ravel()[some], 1.0)(x).reshape(y.shape),
               "LR, all pairs labelled (ceiling)": lr_fit(x, y.ravel(), 1.0)(x).reshape(y.shape)}
    print(f"join: {len(left)} x {len(right)} = {y.size} pairs, {int(y.sum())} matches")
    for name, s in scorers.items():
        print(f"join {name}: AUC {auc(s.ravel(), y.ravel()):.3f}; recall of the matches among each left "
              + ", ".join(f"top-{k} {recall_at(s, k):.3f}" for k in (9, 14, 28)), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", required=True, help="wordnet2json --out DIR")
    ap.add_argument("--vectors", default="data/wink100.vec")
    ap.add_argument("--category", default="animal")
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--skip-filter", action="store_true")
    ap.add_argument("--skip-join", action="store_true")
    args = ap.parse_args()
    nouns = [json.loads(line) for line in open(f"{args.corpus}/nouns.jsonl")]
    emb = Embed(args.vectors)
    if not args.skip_filter:
        filter_ceiling(args, nouns, emb)
    if not args.skip_join:
        join_ceiling(args, nouns, emb)


if __name__ == "__main__":
    main()
