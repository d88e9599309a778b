from django.contrib.staticfiles.management.commands.runserver import Command as StaticRunserver


class Command(StaticRunserver):
    """runserver that also runs the database checks: it refuses a role RLS would not bind."""

    def check(self, *args, **kwargs):
        kwargs.setdefault("databases", ["default"])
        return super().check(*args, **kwargs)
