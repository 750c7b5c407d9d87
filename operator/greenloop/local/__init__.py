"""Local mode: suites run as processes, a redeploy is a command or a webhook."""
