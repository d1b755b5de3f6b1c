"""One module per kind of Slack input; each has a `register(app, services)`."""
