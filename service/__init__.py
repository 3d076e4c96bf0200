"""The HTTP service, its settings and the memberlens command line entry point."""
