"""Synthetic training text with structure a byte-level model can learn (no downloads).

A small probabilistic grammar over invented words: spelling (syllable-built words),
morphology (plural -s, verb agreement with the subject), syntax (nested clauses,
prepositional phrases), Zipf-distributed word choice, and a little arithmetic whose
answers are determined by the question. Same seed, same bytes.

    /usr/bin/python3 -m deai_trainer.corpus --bytes 4194304 --seed 1 --out train.txt
"""
from __future__ import annotations

import argparse
import random
from pathlib import Path

_ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "sh", "tr", "pl", "gr"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ou"]
_CODAS = ["", "", "", "n", "r", "l", "s", "k", "m"]
_NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
            "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen"]


class Grammar:
    def __init__(self, seed: int) -> None:
        # The lexicon is fixed (seed 0) so train and held-out text share a language;
        # `seed` only drives which sentences are generated.
        lex = random.Random(0)
        self.rng = random.Random(seed)
        self.nouns = self._words(lex, 160, 2)
        self.verbs = self._words(lex, 90, 2)
        self.adjs = self._words(lex, 70, 2)
        self.names = [w.capitalize() for w in self._words(lex, 40, 3)]
        self.preps = ["in", "on", "under", "near", "with", "behind"]
        self.dets_sg = ["the", "a", "every", "this"]
        self.dets_pl = ["the", "some", "many", "these"]

    @staticmethod
    def _words(rng: random.Random, count: int, max_syllables: int) -> list[str]:
        out: set[str] = set()
        while len(out) < count:
            n = rng.randint(1, max_syllables)
            out.add("".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS) for _ in range(n)))
        return sorted(out)

    def _zipf(self, words: list[str]) -> str:
        # Zipf-like: index ~ floor(len * u^2) favours the head of the list.
        return words[int(len(words) * self.rng.random() ** 2.2)]

    def noun_phrase(self, depth: int) -> tuple[str, bool]:
        r = self.rng
        if r.random() < 0.2:
            return r.choice(self.names), False
        plural = r.random() < 0.4
        det = r.choice(self.dets_pl if plural else self.dets_sg)
        if det == "a" and not plural:
            pass
        adjs = " ".join(self._zipf(self.adjs) for _ in range(r.choice([0, 0, 1, 1, 2])))
        noun = self._zipf(self.nouns) + ("s" if plural else "")
        words = [det] + ([adjs] if adjs else []) + [noun]
        if depth < 2 and r.random() < 0.25:
            pp, _ = self.noun_phrase(depth + 1)
            words += [r.choice(self.preps), pp]
        return " ".join(words), plural

    def clause(self, depth: int = 0) -> str:
        r = self.rng
        subject, plural = self.noun_phrase(depth)
        verb = self._zipf(self.verbs) + ("" if plural else "s")
        roll = r.random()
        if depth < 2 and roll < 0.2:
            return f"{subject} {verb} that {self.clause(depth + 1)}"
        if roll < 0.7:
            obj, _ = self.noun_phrase(depth + 1)
            return f"{subject} {verb} {obj}"
        place, _ = self.noun_phrase(depth + 1)
        return f"{subject} {verb} {r.choice(self.preps)} {place}"

    def arithmetic(self) -> str:
        a, b = self.rng.randint(0, 9), self.rng.randint(0, 9)
        return f"{_NUMBERS[a]} plus {_NUMBERS[b]} is {_NUMBERS[a + b]}."

    def paragraph(self) -> str:
        sentences = []
        for _ in range(self.rng.randint(2, 6)):
            if self.rng.random() < 0.15:
                sentences.append(self.arithmetic())
            else:
                s = self.clause()
                sentences.append(s[0].upper() + s[1:] + ".")
        return " ".join(sentences) + "\n"


def generate(n_bytes: int, seed: int) -> bytes:
    g = Grammar(seed)
    parts: list[str] = []
    total = 0
    while total < n_bytes:
        p = g.paragraph()
        parts.append(p)
        total += len(p)
    return "".join(parts).encode("ascii")[:n_bytes]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bytes", type=int, required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    args.out.write_bytes(generate(args.bytes, args.seed))


if __name__ == "__main__":
    main()
