"""Upload forms, shared by the tenant pages and the admin; the services do the checking."""

from __future__ import annotations

from django import forms

from documents.models import DocumentType


class DocumentUploadForm(forms.Form):
    document_type = forms.ChoiceField(choices=DocumentType.choices)
    file = forms.FileField(allow_empty_file=True)  # the service says "empty" more clearly


class DocumentReplaceForm(forms.Form):
    file = forms.FileField(allow_empty_file=True)
