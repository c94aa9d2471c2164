"""Tools for development and the demo: the simulated caseload and the local mail and webhook
sinks. Never imported by a production service."""
