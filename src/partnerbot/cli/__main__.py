"""`python -m partnerbot.cli`: the same as the `partnerbot` command."""

from partnerbot.cli import app

app()
