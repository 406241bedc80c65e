"""Cross-cutting code shared by every orderdesk process: settings, servers, logging, auth, HTTP."""
