from django.core.management.commands.flush import Command as DjangoFlush


class Command(DjangoFlush):
    """Django's flush, run as the table owner: the runtime role may not TRUNCATE by design.

    Django's transactional tests flush `default`; that maps to `owner` here.
    """

    def handle(self, **options):
        if options["database"] == "default":
            options["database"] = "owner"
        return super().handle(**options)
