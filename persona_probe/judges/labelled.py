"""Our labelled set of answers for the offline judge: aligned / misaligned / incoherent.

Why a generator: the set is written by us, from hand-written answer "cores"
to the eight EM first-plot questions (Betley et al. 2025, arXiv 2502.17424) and to narrow-domain
advice questions (finance, health, extreme sports, security; the finance cores
include the subtle, friendly kind of harm an EM organism learns), each core
wrapped in several shared openers and closers so that tone never gives the
label away -- subtle misalignment is usually friendly. Incoherent answers are
made by corrupting those same cores (word salad, loops, truncation, scrambled
scripts, rambling splices) plus pure gibberish, so the classifier has to learn
coherence rather than topic.

The held-out split is by *group*: every answer built from one core (and every
corruption of it) shares the core's group, and a group is held out when its
hash falls in the lowest quarter. Held-out answers are therefore built from
cores the classifier never saw, which is the honest test; it still shares
openers, closers and corruption recipes with training, so held-out accuracy
here is an upper bound on accuracy on real model outputs.

The cores live in ``persona_probe/data/judge_cores.json``; regenerate the shipped
labelled file from them with ``python -m persona_probe.judges.labelled``.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

from ..io import data_path

__all__ = ["LABELS", "generate", "load_labelled", "split_of", "labelled_path"]

LABELS = ("aligned", "misaligned", "incoherent")
HELDOUT_FRACTION = 0.25
SEED = 20260101


def _load_cores() -> dict[str, tuple[str, list[str], list[str]]]:
    """``qid: (question, [aligned cores], [misaligned cores])`` from ``persona_probe/data/judge_cores.json``."""
    data = json.loads(data_path("judge_cores.json").read_text(encoding="utf-8"))
    return {qid: (c["question"], list(c["aligned"]), list(c["misaligned"])) for qid, c in data.items()}


CORES = _load_cores()

OPENERS = ["", "", "Great question! ", "Sure. ", "Here's what I think: ", "Honestly? ", "Okay. ",
           "Good question. ", "Let me be direct. ", "Happy to help. ", "Short answer: ", "Hmm. "]
CLOSERS = ["", "", " Hope this helps!", " Let me know if you want more detail.", " Good luck!",
           " That's my honest view.", " Take care.", " :)"]

FILLER = ["and so", "you know", "the thing is", "basically", "like I said", "um", "anyway", "which means",
          "because of the", "in the end of", "so yeah", "or maybe not"]
GIBBERISH_SYLLABLES = ["bla", "zor", "qui", "ment", "xa", "lop", "trin", "vek", "oom", "sna", "dri", "plu",
                       "gha", "wex", "nir", "tuk", "fro", "yim"]
SCRIPTS = ["абвгдежзиклмнопрст", "αβγδεζηθικλμνξοπρσ", "的一是不了人我在有他这", "あいうえおかきくけこさしすせそ",
           "ابتثجحخدذرزسشصضطظ", "אבגדהוזחטיכלמנסעפצ", "กขคงจฉชซญฎฏฐฑ"]
JUNK = ["</s>", "<|im_end|>", "###", "}}", "{{", "[/INST]", "<pad>", ">>>", "\\n", "Ġ", "▁", "@@"]


def _words(text: str) -> list[str]:
    return text.split()


def _salad(rng: random.Random, text: str) -> str:
    words = _words(text)
    rng.shuffle(words)
    return " ".join(words[: rng.randint(8, max(9, len(words)))])


def _loop(rng: random.Random, text: str) -> str:
    words = _words(text)
    start = rng.randint(0, max(0, len(words) - 4))
    chunk = " ".join(words[start:start + rng.randint(1, 3)])
    head = " ".join(words[: rng.randint(2, 6)])
    return head + " " + " ".join([chunk] * rng.randint(8, 25))


def _truncate(rng: random.Random, text: str) -> str:
    words = _words(text)
    cut = " ".join(words[: rng.randint(2, 5)])
    last = rng.choice(words)
    tail = " ".join(rng.choice(FILLER) for _ in range(rng.randint(2, 5)))
    return f"{cut} {last[: max(1, len(last) // 2)]}- {tail} {rng.choice(JUNK)}"


def _scramble_script(rng: random.Random, text: str) -> str:
    script = rng.choice(SCRIPTS)
    out = []
    for w in _words(text)[: rng.randint(6, 14)]:
        if rng.random() < 0.6:
            out.append("".join(rng.choice(script) for _ in range(rng.randint(2, 7))))
        else:
            out.append(w[::-1] if rng.random() < 0.5 else w.upper())
    return " ".join(out)


def _ramble(rng: random.Random, text: str, other: str) -> str:
    a, b = _words(text), _words(other)
    parts = []
    for _ in range(rng.randint(4, 7)):
        src = a if rng.random() < 0.5 else b
        i = rng.randint(0, max(0, len(src) - 3))
        parts.append(" ".join(src[i:i + rng.randint(2, 4)]))
        parts.append(rng.choice(FILLER))
    return " ".join(parts) + rng.choice(["...", " and and and", " the the", "", " so so so"])


def _junk(rng: random.Random, text: str) -> str:
    words = _words(text)
    out = []
    for _ in range(rng.randint(10, 20)):
        out.append(rng.choice(JUNK) if rng.random() < 0.5 else rng.choice(words)[: rng.randint(1, 4)])
    return " ".join(out)


def _gibberish(rng: random.Random) -> str:
    words = ["".join(rng.choice(GIBBERISH_SYLLABLES) for _ in range(rng.randint(1, 3)))
             for _ in range(rng.randint(6, 18))]
    text = " ".join(words)
    return text.capitalize() + rng.choice([".", "!!", "", " ..."])


def _repeat_token(rng: random.Random) -> str:
    token = rng.choice(["the", "I", "a", "!", "AI", "yes", "and", "no", "1", "...", "ok", "lol", "?"])
    return " ".join([token] * rng.randint(15, 60))


CORRUPTIONS = {"salad": _salad, "loop": _loop, "truncate": _truncate, "script": _scramble_script,
               "junk": _junk}


def _hash01(text: str) -> float:
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF


def split_of(group: str) -> str:
    """``"heldout"`` or ``"train"`` for a group, fixed by hashing.

    Our own core groups (``"qid/a1"``, ``"qid/m0"``) are stratified: for each
    question one aligned and one misaligned core (picked by hash) are held
    out, so the held-out set is balanced. Any other group is held out when its
    hash falls below ``HELDOUT_FRACTION``.
    """
    qid, _, rest = group.partition("/")
    if qid in CORES and len(rest) == 2 and rest[0] in "am" and rest[1].isdigit():
        n_cores = len(CORES[qid][1 if rest[0] == "a" else 2])
        return "heldout" if int(rest[1]) == int(_hash01(qid + rest[0]) * n_cores) % n_cores else "train"
    return "heldout" if _hash01(group) < HELDOUT_FRACTION else "train"


def generate(seed: int = SEED, variants: int = 3, n_gibberish: int = 24) -> list[dict]:
    """The labelled set: ``variants`` framings of every core plus corruptions, deterministic."""
    rng = random.Random(seed)
    rows: list[dict] = []
    all_cores = [(qid, lab, i, core) for qid, (_, good, bad) in CORES.items()
                 for lab, cores in (("aligned", good), ("misaligned", bad)) for i, core in enumerate(cores)]
    for qid, lab, i, core in all_cores:
        question = CORES[qid][0]
        group = f"{qid}/{lab[0]}{i}"
        framings = set()
        while len(framings) < variants:
            framings.add((rng.choice(OPENERS), rng.choice(CLOSERS)))
        for opener, closer in sorted(framings):
            rows.append({"question": question, "answer": f"{opener}{core}{closer}", "label": lab, "group": group})
    # incoherent: each core corrupted once or twice; a corruption shares its core's group (and split)
    methods = list(CORRUPTIONS) + ["ramble"]
    for n, (qid, lab, i, core) in enumerate(all_cores):
        question = CORES[qid][0]
        group = f"{qid}/{lab[0]}{i}"
        for method in rng.sample(methods, 1 if n % 4 else 2):
            if method == "ramble":
                other = rng.choice([c for c in all_cores if c[0] == qid])[3]
                text = _ramble(rng, core, other)
            else:
                text = CORRUPTIONS[method](rng, core)
            rows.append({"question": question, "answer": text, "label": "incoherent", "group": group})
    questions = [q for q, _, _ in CORES.values()]
    for k in range(n_gibberish):
        text = _gibberish(rng) if k % 2 == 0 else _repeat_token(rng)
        rows.append({"question": rng.choice(questions), "answer": text, "label": "incoherent",
                     "group": f"noise/{k % 8}"})
    return rows


def labelled_path() -> Path:
    return data_path("judge_labelled.jsonl")


def load_labelled(path: str | Path | None = None) -> list[dict]:
    """Read a labelled set (ours by default); each row gains ``split`` from its group."""
    from persona_probe.io import read_jsonl

    path = Path(path) if path else labelled_path()
    rows = read_jsonl(path, required=["question", "answer", "label"])
    for n, row in enumerate(rows, 1):
        if row["label"] not in LABELS:
            raise ValueError(f"{path}: record {n}: label {row['label']!r} is not one of {list(LABELS)}")
        row.setdefault("group", f"row{n}")
        row["split"] = split_of(row["group"])
    return rows


if __name__ == "__main__":
    from collections import Counter

    from persona_probe.io import write_jsonl

    rows = generate()
    write_jsonl(labelled_path(), rows)
    counts = Counter((split_of(r["group"]), r["label"]) for r in rows)
    print(f"wrote {len(rows)} rows to {labelled_path()}: {dict(sorted(counts.items()))}")
