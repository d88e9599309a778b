from django.core.management.commands.migrate import Command as DjangoMigrate


class Command(DjangoMigrate):
    """Django's migrate, run as the table owner (`owner` alias) unless told otherwise.

    The runtime role may not create or alter tables; only the owner may.
    """

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.set_defaults(database="owner")
