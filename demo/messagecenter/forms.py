"""The form that sends a notification."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

# ntfy sends longer messages as attachments, not as text.
MESSAGE_MAX_LENGTH = 4096
TITLE_MAX_LENGTH = 250


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

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")  # labels sit above their fields, no colon needed
        super().__init__(*args, **kwargs)

    def clean_title(self) -> str | None:
        title: str = self.cleaned_data["title"]
        # A title travels in an HTTP header, which ends at the first line break.
        if any(not character.isprintable() for character in title):
            raise ValidationError("The title must be one line of printable text.")
        return title or None
