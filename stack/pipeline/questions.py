"""What a question (or a search query) must be before the pipeline looks for passages.

One check for every way in: the embedded CLI, the stack's client and the API all call
``check_question``, so an empty or absurdly long question gets the same code and message
everywhere (exit 2 on the CLI, the JSON error envelope with 422 from the API).
"""

from __future__ import annotations

# Defined in the contract (the stack's client checks a question before sending it, on a base install).
from stack.contract import MAX_QUESTION_CHARS, InvalidQuestion, check_question  # noqa: F401
