#!/usr/bin/env python3
"""Offline evaluation of re-rankings on the quality benchmark's labelled set.

Scores corpus-structure re-rankings of MiniLM's semantic order (neighbourhood
smoothing over the stored episodes' kNN graph, diffusion, reciprocal
neighbours, hubness correction, pseudo-relevance feedback), the embedded
text's fields, and more text per episode: each episode's steps and outcome
(tests/fixtures/minilm/retrieval-steps.json) embedded with its header as one
text, or as separate vectors scored by a blend of the header's cosine and
the best (or mean) of its parts', on tests/fixtures/minilm/retrieval.json, with the model's real
vectors (the component's own candle code run natively:
components/embedder-minilm/examples/embed_texts.rs; they equal the served
component's to ~1e-5). Relevance for precision@5 is family membership; the
family labels are used only to score, never as features.

The choice is made on the development half only: the method with the best dev
precision@5 (ties: dev MRR, then the simpler, listed first). Held-out columns
are printed for the report. Standard library only.

    MINILM_DIR=<data dir>/models/all-minilm-l6-v2 scripts/quality-rerank.py
    scripts/quality-rerank.py --vectors vectors.json   # already embedded

The vectors file holds, in order: the 200 episodes as the host embeds them
(host/src/memory/documents.rs header_text: description, domain "bench",
no tags), the 200 descriptions alone, the 50 queries, the 200 headers with
their steps' actions and verdict as one text, then each episode's 3 actions
and verdict one by one (800).
"""
import json, math, os, random, subprocess, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SET = json.load(open(os.path.join(ROOT, "tests/fixtures/minilm/retrieval.json")))
EPISODES = [e for f in SET["families"] for e in f["episodes"]]
FAMILY = [i for i, f in enumerate(SET["families"]) for _ in f["episodes"]]
START = [sum(len(f["episodes"]) for f in SET["families"][:i]) for i in range(len(SET["families"]))]
QUERIES = [dict(fam=i, target=START[i] + q["target"], dev=q["split"] == "dev", text=q["text"])
           for i, f in enumerate(SET["families"]) for q in f["queries"]]
N = len(EPISODES)
STEPS = [e for f in json.load(open(os.path.join(ROOT, "tests/fixtures/minilm/retrieval-steps.json")))["families"]
         for e in f["episodes"]]
PARTS = [[a["action"] for a in e["steps"]] + [e["verdict"]] for e in STEPS]


def texts():
    # header_text: "{description} {domain} {tags joined}" (no tags here).
    return ([f"{e} bench " for e in EPISODES] + EPISODES + [q["text"] for q in QUERIES]
            + [f"{e} bench . " + " ".join(p) for e, p in zip(EPISODES, PARTS)]
            + [t for p in PARTS for t in p])


def vectors():
    if "--vectors" in sys.argv:
        return json.load(open(sys.argv[sys.argv.index("--vectors") + 1]))
    out = subprocess.run(["cargo", "run", "--quiet", "--release", "-p", "embedder-minilm", "--example", "embed_texts"],
                         input=json.dumps(texts()), capture_output=True, text=True, cwd=ROOT, check=True)
    return json.loads(out.stdout)


def dot(a, b):
    return sum(x * y for x, y in zip(a, b))


def order(s):
    return sorted(range(N), key=lambda i: (-s[i], i))


class Space:
    """Query-episode and episode-episode cosines for one embedded text."""

    def __init__(self, docs, qv):
        self.cos = [[dot(q, d) for d in docs] for q in qv]
        self.ee = [[dot(a, b) for b in docs] for a in docs]
        self.nn = [sorted((j for j in range(N) if j != i), key=lambda j: (-self.ee[i][j], j)) for i in range(N)]
        self.docs = docs
        self.qv = qv


def semantic(sp):
    return lambda qi: order(sp.cos[qi])


def smooth(sp, k, lam):
    """cos(q,d) + lam * mean cos(q,n) over d's k nearest stored episodes."""
    def f(qi):
        c = sp.cos[qi]
        return order([c[i] + lam * sum(c[j] for j in sp.nn[i][:k]) / k for i in range(N)])
    return f


def diffusion(sp, k, alpha, steps=3):
    """s <- (1-alpha) cos + alpha * mean of s over the k nearest, repeated."""
    def f(qi):
        c = [max(x, 0.0) for x in sp.cos[qi]]
        s = c[:]
        for _ in range(steps):
            s = [(1 - alpha) * c[i] + alpha * sum(s[j] for j in sp.nn[i][:k]) / k for i in range(N)]
        return order(s)
    return f


def reciprocal(sp, m, k, lam):
    """Boost d by the share of the query's top m that are mutual k-neighbours of d."""
    def f(qi):
        c = sp.cos[qi]
        top = order(c)[:m]
        nk = [set(sp.nn[i][:k]) for i in range(N)]
        return order([c[i] + lam * sum(1 for t in top if t != i and t in nk[i] and i in nk[t]) / m for i in range(N)])
    return f


def hubness(sp, k, g):
    """CSLS-style: cos(q,d) - g * d's mean cosine to its k nearest (hubs sink)."""
    r = [sum(sp.ee[i][j] for j in sp.nn[i][:k]) / k for i in range(N)]
    return lambda qi: order([sp.cos[qi][i] - g * r[i] for i in range(N)])


def rocchio(sp, k, beta):
    """Query moved toward the mean of its k nearest episodes."""
    def f(qi):
        top = order(sp.cos[qi])[:k]
        q = [a + beta * sum(sp.docs[i][t] for i in top) / k for t, a in enumerate(sp.qv[qi])]
        return order([dot(q, d) for d in sp.docs])
    return f


def with_parts(sp, parts, w, best):
    """w * cos(q, header) + (1 - w) * the best (or mean) cos(q, part) of its steps and verdict."""
    def f(qi):
        q = sp.qv[qi]
        part = [[dot(q, v) for v in ps] for ps in parts]
        return order([w * sp.cos[qi][i] + (1 - w) * (max(c) if best else sum(c) / len(c)) for i, c in enumerate(part)])
    return f


def per_query(fn, dev):
    out = []
    for qi, q in enumerate(QUERIES):
        if q["dev"] != dev:
            continue
        r = fn(qi)
        rank = r.index(q["target"])
        out.append((float(rank == 0), 1.0 / (rank + 1), sum(FAMILY[x] == q["fam"] for x in r[:5]) / 5))
    return out


def mean(rows, k):
    return sum(r[k] for r in rows) / len(rows)


def main():
    v = vectors()
    nq = len(QUERIES)
    header, desc, qv = v[:N], v[N:2 * N], v[2 * N:2 * N + nq]
    with_steps = v[2 * N + nq:3 * N + nq]
    flat, per = v[3 * N + nq:], len(PARTS[0])
    parts = [flat[i * per:(i + 1) * per] for i in range(N)]
    spaces = [("", Space(header, qv)), ("description only: ", Space(desc, qv)),
              ("header, steps and verdict as one text: ", Space(with_steps, qv))]
    methods = []
    for pre, sp in spaces:
        methods.append((pre + "semantic", semantic(sp)))
    sp = spaces[0][1]
    for w in (0.0, 0.5, 0.7, 0.85):
        for best in (True, False):
            methods.append((f"steps and verdict as separate vectors: {w} header + {1 - w:.2f} {'best' if best else 'mean'} part",
                            with_parts(sp, parts, w, best)))
    for k in (1, 3, 5, 10, 20):
        for lam in (0.25, 0.5, 1.0, 2.0):
            methods.append((f"kNN smoothing k={k} lambda={lam}", smooth(sp, k, lam)))
    for k in (5, 10):
        for a in (0.3, 0.5, 0.7):
            methods.append((f"kNN diffusion k={k} alpha={a} (3 steps)", diffusion(sp, k, a)))
    for k in (5, 10):
        for a in (0.3, 0.5, 0.7):
            methods.append((f"header, steps and verdict as one text: kNN diffusion k={k} alpha={a} (3 steps)",
                            diffusion(spaces[2][1], k, a)))
    for m in (3, 5, 10):
        for k in (5, 10):
            for lam in (0.1, 0.3):
                methods.append((f"reciprocal neighbours top={m} k={k} lambda={lam}", reciprocal(sp, m, k, lam)))
    for k in (5, 10):
        for g in (0.25, 0.5, 1.0):
            methods.append((f"hubness correction k={k} g={g}", hubness(sp, k, g)))
    for k in (3, 5, 10):
        for b in (0.5, 1.0, 2.0):
            methods.append((f"Rocchio PRF k={k} beta={b}", rocchio(sp, k, b)))
    rows = []
    for name, fn in methods:
        d, t = per_query(fn, True), per_query(fn, False)
        rows.append((name, d, t))
    print("| ranking | dev top-1 | dev MRR | dev P@5 | held-out top-1 | held-out MRR | held-out P@5 |")
    print("|---|---|---|---|---|---|---|")
    for name, d, t in rows:
        print(f"| {name} | " + " | ".join(f"{mean(x, k):.2f}" for x in (d, t) for k in range(3)) + " |")
    # The choice: dev precision@5, then dev MRR, then the simpler (listed first).
    best = max(range(len(rows)), key=lambda i: (round(mean(rows[i][1], 2), 6), round(mean(rows[i][1], 1), 6), -i))
    name, d, t = rows[best]
    base_d, base_t = rows[0][1], rows[0][2]
    diff = [a[2] - b[2] for a, b in zip(d, base_d)]
    random.seed(0)
    boot = sorted(sum(random.choice(diff) for _ in diff) / len(diff) for _ in range(5000))
    print(f"\nchosen on dev: {name}: dev P@5 {mean(d, 2):.2f} vs semantic {mean(base_d, 2):.2f} "
          f"(paired bootstrap 95% interval of the gain [{boot[125]:+.2f}, {boot[4875]:+.2f}]; "
          f"{sum(x > 0 for x in diff)} queries better, {sum(x < 0 for x in diff)} worse)")
    print(f"held out, measured once: P@5 {mean(t, 2):.2f} vs semantic {mean(base_t, 2):.2f}; "
          f"MRR {mean(t, 1):.2f} vs {mean(base_t, 1):.2f}")
    for label, space in (("headers", sp), ("headers with steps and verdict", spaces[2][1])):
        for k in (1, 5, 10):
            pur = sum(sum(FAMILY[j] == FAMILY[i] for j in space.nn[i][:k]) / k for i in range(N)) / N
            print(f"{label}: share of an episode's {k} nearest stored episodes in its own family: {pur:.2f}")


if __name__ == "__main__":
    main()
