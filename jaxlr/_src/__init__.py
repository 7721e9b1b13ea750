"""Private helpers shared by every jaxlr layer (imports nothing else of jaxlr)."""
