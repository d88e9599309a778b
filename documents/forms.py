"""Upload forms, shared by the tenant pages and the admin; the services do the checking."""

from __future__ import annotations

from django import forms

from documents.models import DocumentType
from documents.validation import SUBJECT_REF_MAX_CHARS, DocumentRejected, check_subject_ref


class DocumentUploadForm(forms.Form):
    document_type = forms.ChoiceField(choices=DocumentType.choices)
    file = forms.FileField(allow_empty_file=True)  # the service says "empty" more clearly
    # The borrower this document is about (the tenant's customer id): how erasure and
    # portability find a borrower's documents.
    subject_ref = forms.CharField(
        required=False,
        max_length=SUBJECT_REF_MAX_CHARS,
        label="Subject reference",
        help_text="The customer id of the person this document is about (optional).",
    )

    def clean_subject_ref(self) -> str:
        try:
            return check_subject_ref(self.cleaned_data.get("subject_ref"))
        except DocumentRejected as exc:
            raise forms.ValidationError(exc.messages[0], code="bad_subject_ref") from exc


class DocumentReplaceForm(forms.Form):
    file = forms.FileField(allow_empty_file=True)
