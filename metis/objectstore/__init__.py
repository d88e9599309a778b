"""The one door to object storage (S3, or an S3-compatible server such as SeaweedFS or MinIO).

Every app reaches its bucket through an `ObjectStore` (`store.documents_store()`,
`store.backups_store()`); nothing else builds S3 clients or derives the encryption arguments.
Key layouts belong to the apps (documents/keys.py); tenant-prefix checks live here so every
store enforces them the same way.
"""
