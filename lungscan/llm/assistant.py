"""The lung-cancer health assistant: streaming Gemini answers, offline retrieval otherwise.

`answer` returns an `AssistantReply` to iterate (``st.write_stream(reply)``); while it
streams it records where the text came from (``mode``), the knowledge-base passages
behind it (``sources``) and any fallback ``notice``. Guardrails run first and identically
in both modes. If Gemini fails at any point, the reply says so and continues with the
offline answer; the question, the history and the scan are only read.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from ..errors import LLMError
from .gemini import ChatTurn, GeminiClient
from .guardrails import NOT_COVERED_REPLY, check_question, is_on_topic
from .retrieval import Hit, KnowledgeBase, default_knowledge_base

logger = logging.getLogger(__name__)

#: Earlier turns sent to Gemini, and the characters kept of each, so requests stay small.
HISTORY_TURNS = 6
HISTORY_CHARS = 1500
MAX_QUESTION_CHARS = 2000

SYSTEM_INSTRUCTION = """\
You are LungScan's patient-education assistant about lung cancer and lung health. LungScan is a research and \
education tool; you are not a doctor.

Rules:
- Stay on lung cancer and lung health: symptoms, risk factors and screening, diagnosis and staging, biomarker \
testing, treatments and their side effects, supportive care, stopping smoking, follow-up, questions for the care team. \
Politely decline anything else in one sentence.
- Never diagnose anyone, never interpret a person's own scan as showing or excluding cancer, and never give \
drug doses or advice to start, stop or change a medicine; point to the care team instead.
- If the user describes red-flag symptoms (coughing up blood, severe breathlessness, chest pain, confusion, \
fainting, fever during treatment), tell them first to seek emergency or same-day care.
- Prefer the reference passages provided; say when something is uncertain or varies between people. \
Be concise (under about 250 words), plain English, no invented statistics.
- A selected scan summary, when given, is de-identified model output for context only, not a diagnosis.
"""


@dataclass
class AssistantReply:
    """An answer to stream; `mode`, `sources` and `notice` are final once iteration ends."""

    _chunks: Iterator[str]
    mode: str = "offline"  # "gemini", "offline" or "guardrail"
    sources: list[dict[str, object]] = field(default_factory=list)
    notice: str | None = None
    text: str = ""

    def __iter__(self) -> Iterator[str]:
        for chunk in self._chunks:
            self.text += chunk
            yield chunk


def answer(
    question: str,
    history: Sequence[ChatTurn] = (),
    scan_context: str | None = None,
    client: GeminiClient | None = None,
    *,
    kb: KnowledgeBase | None = None,
) -> AssistantReply:
    """Answer one question; iterate the result to stream it."""
    reply = AssistantReply(iter(()))
    reply._chunks = _run(reply, question.strip()[:MAX_QUESTION_CHARS], history, scan_context, client,
                         kb or default_knowledge_base())
    return reply


def _run(
    reply: AssistantReply,
    question: str,
    history: Sequence[ChatTurn],
    scan_context: str | None,
    client: GeminiClient | None,
    kb: KnowledgeBase,
) -> Iterator[str]:
    guard = check_question(question)
    # A follow-up ("and after surgery?") or a question about the selected scan stays in the conversation's topic.
    in_context = bool(scan_context) or any(is_on_topic(t.content) for t in _recent(history) if t.role == "user")
    if guard.dosing or not (guard.on_topic or in_context):
        reply.mode = "guardrail"
        for notice in guard.notices():
            yield notice + "\n\n"
        if guard.refusal:
            yield guard.refusal
        return
    for notice in guard.notices():
        yield notice + "\n\n"

    query = question
    if not guard.on_topic:  # a follow-up: retrieve with the last on-topic question for context
        earlier = [t.content for t in _recent(history) if t.role == "user" and is_on_topic(t.content)]
        query = f"{earlier[-1]} {question}" if earlier else question
    hits = kb.search(query)
    if client is not None:
        produced = False
        try:
            prompt = _gemini_prompt(question, scan_context, hits)
            for chunk in client.stream_text(prompt, history=_recent(history), system_instruction=SYSTEM_INSTRUCTION):
                produced = True
                yield chunk
            reply.mode = "gemini"
            reply.sources = [hit.passage.as_source_dict() for hit in hits]
            return
        except LLMError as exc:
            logger.warning("Assistant falls back to offline: %s", exc)
            reply.notice = f"{exc} Showing the offline knowledge-base answer instead."
            yield ("\n\n---\n\n" if produced else "") + f"*{reply.notice}*\n\n"
    reply.mode = "offline"
    yield from _offline_answer(reply, hits)


def _recent(history: Sequence[ChatTurn]) -> list[ChatTurn]:
    turns = [t for t in history if t.role in ("user", "assistant") and t.content.strip()][-HISTORY_TURNS:]
    return [ChatTurn(role=t.role, content=t.content[:HISTORY_CHARS]) for t in turns]


def _gemini_prompt(question: str, scan_context: str | None, hits: list[Hit]) -> str:
    parts = []
    if scan_context:
        parts.append(f"Selected scan (de-identified, model output only):\n{scan_context}")
    if hits:
        references = "\n\n".join(
            f"[{n}] {hit.passage.heading}: {hit.passage.text}" for n, hit in enumerate(hits, start=1)
        )
        parts.append(f"Reference passages from LungScan's knowledge base:\n{references}")
    parts.append(f"Question: {question}")
    return "\n\n".join(parts)


def _offline_answer(reply: AssistantReply, hits: list[Hit]) -> Iterator[str]:
    """Quote the passages retrieved, each with its sources; or say plainly that nothing covers it."""
    if not hits:
        yield NOT_COVERED_REPLY
        return
    reply.sources = [hit.passage.as_source_dict() for hit in hits]
    yield "From LungScan's offline knowledge base (quoted passages, not a generated answer):\n\n"
    for hit in hits:
        passage = hit.passage
        quoted = "\n".join(f"> {line}" if line else ">" for line in passage.text.splitlines())
        cited = "; ".join(source.markdown() for source in passage.sources)
        yield f"**{passage.heading}** ({passage.topic})\n\n{quoted}\n\nSource: {cited}\n\n"
