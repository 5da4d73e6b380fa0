"""The admin HTTP API (users now; server info, config and index rebuild later) and its client."""
