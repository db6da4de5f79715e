"""Offline retrieval over the curated knowledge base in ``lungscan/knowledge``.

Each Markdown file is a topic (``# Title``); each ``## Heading {#id}`` section is a
passage that ends with a ``Sources:`` line of keys from ``SOURCES.md``. Retrieval is
TF-IDF (word unigrams and bigrams, scikit-learn) with cosine similarity: small, fast,
deterministic and needs no downloads. Scores below `MIN_SCORE` mean "not covered".
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer

from ..errors import KnowledgeBaseError

logger = logging.getLogger(__name__)

KNOWLEDGE_DIR = Path(__file__).resolve().parent.parent / "knowledge"
SOURCES_FILE = "SOURCES.md"

#: Cosine similarity below which a passage is not considered an answer.
MIN_SCORE = 0.12
#: Passages scoring below this fraction of the best one are left out of an answer.
RELATIVE_CUTOFF = 0.6
#: Added to the similarity of a passage whose heading names a word of the question ("stage III", "EGFR").
HEADING_BONUS = 0.1

_HEADING_RE = re.compile(r"^##\s+(?P<heading>.+?)\s*\{#(?P<id>[A-Za-z0-9-]+)\}\s*$")
_SOURCES_RE = re.compile(r"^Sources?:\s*(?P<keys>.+)$")
_SOURCE_ROW_RE = re.compile(r"^\|\s*(?P<key>[a-z0-9-]+)\s*\|\s*(?P<name>[^|]+?)\s*\|\s*(?P<url>https?://\S+?)\s*\|$")


_SYNONYMS: dict[str, str] = {
    "chemo": "chemotherapy",
    "radiotherapy": "radiation",
    "sabr": "sbrt",
    "tumor": "tumour",
    "tumors": "tumour",
    "diarrhea": "diarrhoea",
    "hemoptysis": "coughing blood",
    "haemoptysis": "coughing blood",
    "cigarettes": "smoking",
    "cigarette": "smoking",
    "nsclc": "non-small cell lung cancer",
    "hereditary": "family history",
    "inherited": "family history",
    "genetic": "gene",
}
#: Words too common in this knowledge base to show that a question is covered by it.
_GENERIC_TERMS = frozenset({"lung", "cancer", "non-small", "cell", "patient", "doctor"})
_STAGE_RE = re.compile(r"\bstage\s+(iv|4|four|iii|3|three|ii|2|two|i|1|one|0|zero)[abc]?\d?\b", re.IGNORECASE)
_STAGE_WORDS = {"4": "iv", "four": "iv", "3": "iii", "three": "iii", "2": "ii", "two": "ii", "1": "i", "one": "i",
                "zero": "0"}
_TOKEN_RE = re.compile(r"[a-z0-9][a-z0-9_-]*")


# Words common in questions and passages alike that say nothing about the topic.
_EXTRA_STOP_WORDS = frozenset(
    {"explain", "best", "tell", "know", "want", "need", "like", "mean", "means", "happen", "happens", "good",
     "use", "used", "make", "help", "way", "thing", "things", "usually", "often", "really", "write", "give"}
)
_STOP_WORDS = ENGLISH_STOP_WORDS | _EXTRA_STOP_WORDS


def _stem(token: str) -> str:
    """A deliberately tiny suffix stripper, so "screened", "screening" and "screen" meet."""
    for suffix in ("ing", "ed", "es", "s"):
        if len(token) > len(suffix) + 3 and token.endswith(suffix) and not token.endswith("ss"):
            token = token[: -len(suffix)]
            if suffix in ("ing", "ed") and len(token) > 3 and token[-1] == token[-2] and token[-1] not in "ls":
                token = token[:-1]  # stopping -> stop, quitting -> quit
            return token
    return token


def analyse(text: str) -> list[str]:
    """Tokens for TF-IDF: lower case, stage words joined ("stage_iii"), synonyms, stop words out, stemmed."""
    text = _STAGE_RE.sub(lambda m: f" stage_{_STAGE_WORDS.get(m[1].lower(), m[1].lower())} ", text.lower())
    tokens: list[str] = []
    for token in _TOKEN_RE.findall(text):
        for word in _SYNONYMS.get(token, token).split():
            if word not in _STOP_WORDS and len(word) > 1:
                tokens.append(_stem(word))
    return tokens + [f"{a} {b}" for a, b in zip(tokens, tokens[1:])]


@dataclass(frozen=True)
class Source:
    key: str
    name: str
    url: str

    def markdown(self) -> str:
        return f"[{self.name}]({self.url})"


@dataclass(frozen=True)
class Passage:
    id: str
    topic: str
    heading: str
    text: str
    sources: tuple[Source, ...]

    @property
    def bullets(self) -> list[str]:
        """The passage's bullet items, or its paragraphs when it has none."""
        items = [line[2:].strip() for line in self.text.splitlines() if line.startswith("- ")]
        return items or [p.strip() for p in self.text.split("\n\n") if p.strip()]

    @property
    def intro(self) -> str:
        """The passage text before its first bullet."""
        lines = []
        for line in self.text.splitlines():
            if line.startswith("- "):
                break
            lines.append(line)
        return " ".join(lines).strip()

    def as_source_dict(self) -> dict[str, object]:
        """JSON-ready citation stored with chat messages and offline plans."""
        return {
            "passage_id": self.id,
            "title": f"{self.topic}: {self.heading}",
            "sources": [{"name": s.name, "url": s.url} for s in self.sources],
        }


@dataclass(frozen=True)
class Hit:
    passage: Passage
    score: float


@dataclass
class KnowledgeBase:
    passages: list[Passage]
    _vectorizer: TfidfVectorizer = field(init=False, repr=False)
    _matrix: object = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._by_id = {p.id: p for p in self.passages}
        self._vectorizer = TfidfVectorizer(analyzer=analyse, sublinear_tf=True)
        documents = [f"{p.topic} {p.heading} {p.text}" for p in self.passages]
        self._matrix = self._vectorizer.fit_transform(documents)
        self._heading_terms = [set(analyse(p.heading)) for p in self.passages]

    def get(self, passage_id: str) -> Passage:
        try:
            return self._by_id[passage_id]
        except KeyError:
            raise KnowledgeBaseError(f"No knowledge-base passage {passage_id!r}.") from None

    def search(self, query: str, *, k: int = 3, min_score: float = MIN_SCORE) -> list[Hit]:
        """The best `k` passages for `query` above `min_score`, best first.

        A question most of whose specific words ("mesothelioma", "python") appear nowhere in
        the knowledge base gets no hits, even though "lung cancer" or "list" would match something.
        """
        specific = [t for t in analyse(query) if " " not in t and t not in _GENERIC_TERMS]
        vocabulary = self._vectorizer.vocabulary_
        if specific and sum(t in vocabulary for t in specific) * 2 < len(specific):
            return []
        scores = self._scores(query, specific)
        order = np.argsort(-scores, kind="stable")[:k]
        best = float(scores[order[0]]) if len(order) else 0.0
        return [
            Hit(self.passages[i], float(scores[i]))
            for i in order
            if scores[i] >= min_score and scores[i] >= best * RELATIVE_CUTOFF
        ]

    def _scores(self, query: str, specific: list[str]) -> np.ndarray:
        """Cosine similarity of TF-IDF vectors, plus HEADING_BONUS where the heading names a query word."""
        vector = self._vectorizer.transform([query])
        scores = (self._matrix @ vector.T).toarray().ravel()
        for i, heading in enumerate(self._heading_terms):
            if scores[i] > 0 and heading.intersection(specific):
                scores[i] += HEADING_BONUS
        return scores


def load_sources(folder: Path = KNOWLEDGE_DIR) -> dict[str, Source]:
    sources: dict[str, Source] = {}
    for line in (folder / SOURCES_FILE).read_text(encoding="utf-8").splitlines():
        match = _SOURCE_ROW_RE.match(line.strip())
        if match:
            sources[match["key"]] = Source(match["key"], match["name"], match["url"])
    if not sources:
        raise KnowledgeBaseError(f"{folder / SOURCES_FILE} lists no sources.")
    return sources


def parse_topic(path: Path, sources: dict[str, Source]) -> list[Passage]:
    """Passages of one topic file; every passage must cite at least one known source."""
    topic = path.stem.replace("_", " ")
    passages: list[Passage] = []
    heading: str | None = None
    passage_id = ""
    body: list[str] = []

    def close(cited: list[Source]) -> None:
        text = "\n".join(body).strip()
        if not text:
            raise KnowledgeBaseError(f"{path.name}: passage {passage_id!r} is empty.")
        passages.append(Passage(passage_id, topic, heading or "", text, tuple(cited)))

    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.rstrip()
        if line.startswith("# "):
            topic = line[2:].strip()
            continue
        heading_match = _HEADING_RE.match(line)
        if heading_match:
            if heading is not None:
                raise KnowledgeBaseError(f"{path.name}:{number}: passage {passage_id!r} has no Sources line.")
            heading, passage_id, body = heading_match["heading"], heading_match["id"], []
            continue
        if line.startswith("## "):
            raise KnowledgeBaseError(f"{path.name}:{number}: heading without an {{#id}}.")
        sources_match = _SOURCES_RE.match(line)
        if sources_match and heading is not None:
            keys = [k.strip() for k in sources_match["keys"].split(",") if k.strip()]
            unknown = [k for k in keys if k not in sources]
            if unknown or not keys:
                raise KnowledgeBaseError(f"{path.name}:{number}: unknown source keys {unknown}.")
            close([sources[k] for k in keys])
            heading = None
            continue
        if heading is not None:
            body.append(line)
    if heading is not None:
        raise KnowledgeBaseError(f"{path.name}: passage {passage_id!r} has no Sources line.")
    return passages


def load_knowledge_base(folder: Path = KNOWLEDGE_DIR) -> KnowledgeBase:
    """Parse every topic file in `folder`; raises KnowledgeBaseError on any malformed passage."""
    sources = load_sources(folder)
    passages: list[Passage] = []
    for path in sorted(folder.glob("*.md")):
        if path.name != SOURCES_FILE:
            passages.extend(parse_topic(path, sources))
    ids = [p.id for p in passages]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise KnowledgeBaseError(f"Duplicate passage ids: {', '.join(duplicates)}.")
    logger.info("Loaded %d knowledge-base passages from %s", len(passages), folder)
    return KnowledgeBase(passages)


@lru_cache(maxsize=1)
def default_knowledge_base() -> KnowledgeBase:
    """The repository's knowledge base, parsed and indexed once per process."""
    return load_knowledge_base()
