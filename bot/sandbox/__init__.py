"""The offline sandbox: local stand-ins of Slack for running the bot without a workspace."""
