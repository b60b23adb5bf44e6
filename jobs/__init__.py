"""Entry points users run: each command of the CLI is a thin wrapper over jobs/<command>.py."""
