"""The write side: domain, command handlers, unit of work, command API and relay."""
