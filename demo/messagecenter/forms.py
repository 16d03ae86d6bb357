"""The form that sends a notification."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from messagecenter.ntfy import TOPIC_PATTERN

# ntfy sends longer messages as attachments, not as text.
MESSAGE_MAX_LENGTH = 4096
TITLE_MAX_LENGTH = 250
# A broadcast goes to the demo's topic and at most this many others.
MAX_OTHER_TOPICS = 5
TOPIC_SEPARATORS = re.compile(r"[\s,]+")


class MessageForm(forms.Form):
    message = forms.CharField(
        max_length=MESSAGE_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3}),
        error_messages={"required": "Write a message to send."},
    )
    title = forms.CharField(
        max_length=TITLE_MAX_LENGTH,
        required=False,
        help_text="Optional; shown in bold above the message.",
    )

    topics = forms.CharField(
        label="Also to topics",
        required=False,
        help_text="Optional: other topics on the same server, separated by spaces or commas; "
        "the message goes to each in turn, with a progress bar.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")  # labels sit above their fields, no colon needed
        super().__init__(*args, **kwargs)

    def clean_title(self) -> str | None:
        title: str = self.cleaned_data["title"]
        # A title travels in an HTTP header, which ends at the first line break.
        if any(not character.isprintable() for character in title):
            raise ValidationError("The title must be one line of printable text.")
        return title or None

    def clean_topics(self) -> list[str]:
        """The other topics, in order, each once."""
        names = [name for name in TOPIC_SEPARATORS.split(self.cleaned_data["topics"]) if name]
        wrong = [name for name in names if not TOPIC_PATTERN.fullmatch(name)]
        if wrong:
            raise ValidationError(
                f"Not a topic name (1 to 64 letters, digits, '-' or '_'): {wrong[0][:70]}"
            )
        unique = list(dict.fromkeys(names))
        if len(unique) > MAX_OTHER_TOPICS:
            raise ValidationError(f"At most {MAX_OTHER_TOPICS} other topics.")
        return unique
