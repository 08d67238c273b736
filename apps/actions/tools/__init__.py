"""One module per tool, each exposing `TOOL` (apps.actions.registry.Tool). See docs/actions.md."""
