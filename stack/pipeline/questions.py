"""What a question (or a search query) must be before the pipeline looks for passages.

One check for every way in: the embedded CLI, the stack's client and the API all call
``check_question``, so an empty or absurdly long question gets the same code and message
everywhere (exit 2 on the CLI, the JSON error envelope with 422 from the API).
"""

from __future__ import annotations

from stack.pipeline.errors import PipelineError

#: The longest question (or search query) accepted, in characters.  Retrieval and the
#: extractive answer use only the first few hundred tokens of a question; anything longer is a
#: document pasted by mistake, not a question.  docs/api.md documents this number.
MAX_QUESTION_CHARS = 4000


class InvalidQuestion(PipelineError):
    """A question that cannot be asked: empty, blank or over the length limit (usage error)."""

    code = "invalid_question"
    exit_code = 2

    def __init__(self, code: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.code = code


def check_question(text: str | None, *, what: str = "question") -> str:
    """Return ``text`` unchanged when it can be asked; raise ``InvalidQuestion`` otherwise."""
    if text is None or not text.strip():
        raise InvalidQuestion(
            "empty_question", "question is empty",
            hint='ask something, e.g. ragctl ask "what is the upload limit?"' if what == "question"
            else 'search for something, e.g. ragctl search "upload limit"',
        )
    if len(text) > MAX_QUESTION_CHARS:
        raise InvalidQuestion(
            "question_too_long",
            f"question is too long: {len(text):,} characters, over the limit of {MAX_QUESTION_CHARS:,}",
            hint=f"ask a shorter {what} (at most {MAX_QUESTION_CHARS:,} characters)",
        )
    return text
