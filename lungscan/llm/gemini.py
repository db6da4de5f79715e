"""A small Gemini client on the supported ``google-genai`` SDK.

The SDK does the HTTP work: its ``HttpRetryOptions`` retry 408/429/5xx responses and
transport timeouts with exponential backoff (tenacity), and ``HttpOptions.timeout``
bounds every attempt. This module adds what LungScan needs on top: one place that
turns every way a call can fail into `LLMUnavailable`, `LLMSafetyBlocked` or
`LLMBadOutput`, so callers fall back to the offline knowledge base with a clear message.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from typing import NoReturn, TypeVar

from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from ..config import Settings
from ..errors import LLMBadOutput, LLMSafetyBlocked, LLMUnavailable

logger = logging.getLogger(__name__)

ModelT = TypeVar("ModelT", bound=BaseModel)

#: HTTP statuses the SDK retries with backoff before we give up and fall back.
RETRY_STATUS_CODES: tuple[int, ...] = (408, 429, 500, 502, 503, 504)

#: Finish or block reasons that mean "a safety or policy filter stopped this".
_BLOCKING_REASONS = frozenset(
    {"SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "RECITATION", "IMAGE_SAFETY"}
)

# Medical education talks about drugs, blood and death; block only clearly dangerous content.
SAFETY_SETTINGS: tuple[types.SafetySetting, ...] = (
    types.SafetySetting(category=types.HarmCategory.HARM_CATEGORY_HARASSMENT,
                        threshold=types.HarmBlockThreshold.BLOCK_MEDIUM_AND_ABOVE),
    types.SafetySetting(category=types.HarmCategory.HARM_CATEGORY_HATE_SPEECH,
                        threshold=types.HarmBlockThreshold.BLOCK_MEDIUM_AND_ABOVE),
    types.SafetySetting(category=types.HarmCategory.HARM_CATEGORY_SEXUALLY_EXPLICIT,
                        threshold=types.HarmBlockThreshold.BLOCK_MEDIUM_AND_ABOVE),
    types.SafetySetting(category=types.HarmCategory.HARM_CATEGORY_DANGEROUS_CONTENT,
                        threshold=types.HarmBlockThreshold.BLOCK_ONLY_HIGH),
)


def _httpx_errors(name: str) -> tuple[type[BaseException], ...]:
    """`name` from whichever httpx flavour is installed (the SDK uses httpx2 in 3.x)."""
    found: list[type[BaseException]] = []
    for module_name in ("httpx2", "httpx"):
        try:
            module = __import__(module_name)
        except ImportError:
            continue
        found.append(getattr(module, name))
    return tuple(found)


_TIMEOUT_ERRORS = (TimeoutError, *_httpx_errors("TimeoutException"))
_TRANSPORT_ERRORS = (OSError, *_httpx_errors("HTTPError"))


class ChatTurn(BaseModel):
    """One earlier message of a conversation, as sent to the model."""

    role: str  # "user" or "assistant"
    content: str


class GeminiClient:
    """Structured and streaming generation with timeouts, retries and typed failures."""

    def __init__(
        self,
        *,
        api_key: str,
        model: str,
        base_url: str | None = None,
        timeout_s: float = 60.0,
        attempts: int = 3,
        initial_delay_s: float = 1.0,
        max_delay_s: float = 8.0,
    ) -> None:
        if not api_key:
            raise LLMUnavailable("No Gemini API key is configured (set GEMINI_API_KEY).")
        self.model = model
        self.timeout_s = timeout_s
        retry = types.HttpRetryOptions(
            attempts=attempts,
            initial_delay=initial_delay_s,
            max_delay=max_delay_s,
            exp_base=2.0,
            http_status_codes=list(RETRY_STATUS_CODES),
        )
        http_options = types.HttpOptions(
            base_url=base_url, timeout=max(1, int(timeout_s * 1000)), retry_options=retry
        )
        self._client = genai.Client(api_key=api_key, vertexai=False, http_options=http_options)

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: float | int) -> GeminiClient | None:
        """The configured client, or None when no key is set (the app then works offline)."""
        key = settings.gemini_api_key.get_secret_value().strip() if settings.gemini_api_key else ""
        if not key:
            return None
        return cls(
            api_key=key,
            model=settings.gemini_model,
            base_url=settings.gemini_base_url or None,
            timeout_s=settings.gemini_timeout_s,
            **overrides,  # type: ignore[arg-type]
        )

    def generate_structured(self, prompt: str, *, schema: type[ModelT], system_instruction: str) -> ModelT:
        """One JSON answer validated against `schema` (also sent as the response schema)."""
        config = types.GenerateContentConfig(
            system_instruction=system_instruction,
            response_mime_type="application/json",
            response_schema=schema,
            safety_settings=list(SAFETY_SETTINGS),
        )
        try:
            response = self._client.models.generate_content(model=self.model, contents=prompt, config=config)
        except Exception as exc:
            _reraise(exc)
        _raise_if_blocked(response)
        text = (response.text or "").strip()
        if not text:
            raise LLMBadOutput("Gemini returned an empty answer.")
        try:
            return schema.model_validate(json.loads(text))
        except (json.JSONDecodeError, PydanticValidationError) as exc:
            logger.warning("Gemini structured output rejected: %s", exc)
            raise LLMBadOutput("Gemini's answer was not valid structured output.") from exc

    def stream_text(
        self, question: str, *, history: Sequence[ChatTurn] = (), system_instruction: str
    ) -> Iterator[str]:
        """Yield answer text as it arrives; raises the LLM errors above, also mid-stream."""
        contents = [
            types.Content(role="model" if turn.role == "assistant" else "user", parts=[types.Part(text=turn.content)])
            for turn in history
        ]
        contents.append(types.Content(role="user", parts=[types.Part(text=question)]))
        config = types.GenerateContentConfig(
            system_instruction=system_instruction, safety_settings=list(SAFETY_SETTINGS)
        )
        produced = False
        try:
            for chunk in self._client.models.generate_content_stream(
                model=self.model, contents=contents, config=config
            ):
                _raise_if_blocked(chunk)
                if chunk.text:
                    produced = True
                    yield chunk.text
        except (LLMSafetyBlocked, LLMBadOutput):
            raise
        except Exception as exc:
            _reraise(exc)
        if not produced:
            raise LLMBadOutput("Gemini returned an empty answer.")


def _reraise(exc: Exception) -> NoReturn:
    """Raise the LungScan error for an SDK or transport failure; anything else (a bug) propagates as is."""
    mapped = _translate(exc)
    if mapped is exc:
        raise exc
    raise mapped from exc


def _translate(exc: Exception) -> Exception:
    """Map SDK and transport failures to LungScan's LLM errors; returns `exc` itself when it is neither."""
    if isinstance(exc, genai_errors.APIError):
        logger.warning("Gemini API error %s: %s", exc.code, exc.message)
        if exc.code == 429:
            return LLMUnavailable("Gemini is rate-limiting requests (HTTP 429) and retries did not help.")
        if exc.code in (401, 403):
            return LLMUnavailable(f"Gemini refused the API key (HTTP {exc.code}).")
        if exc.code == 404:
            return LLMUnavailable("Gemini does not know the configured model name (HTTP 404).")
        return LLMUnavailable(f"Gemini failed with HTTP {exc.code}.")
    if isinstance(exc, _TIMEOUT_ERRORS):
        logger.warning("Gemini timed out: %r", exc)
        return LLMUnavailable("Gemini did not answer in time.")
    if isinstance(exc, _TRANSPORT_ERRORS):
        logger.warning("Gemini transport error: %r", exc)
        return LLMUnavailable("Gemini could not be reached.")
    if isinstance(exc, (json.JSONDecodeError, genai_errors.UnknownApiResponseError)):
        logger.warning("Gemini response could not be parsed: %r", exc)
        return LLMBadOutput("Gemini's answer could not be read.")
    return exc


def _raise_if_blocked(response: types.GenerateContentResponse) -> None:
    feedback = response.prompt_feedback
    if feedback is not None and feedback.block_reason:
        reason = _enum_name(feedback.block_reason)
        raise LLMSafetyBlocked(f"Gemini's safety filters blocked the request ({reason}).")
    for candidate in response.candidates or ():
        reason = _enum_name(candidate.finish_reason) if candidate.finish_reason else ""
        if reason in _BLOCKING_REASONS:
            raise LLMSafetyBlocked(f"Gemini's safety filters blocked the answer ({reason}).")


def _enum_name(value: object) -> str:
    return str(getattr(value, "value", value))
