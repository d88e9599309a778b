"""Document URLs on the staff host: the local-file download link the admin hands out."""

from documents.urls import file_patterns

urlpatterns = file_patterns
