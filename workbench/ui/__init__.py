"""The Gradio face: `app.build()` lays out the tabs; `Controller` holds what they call, plain
functions the tests call too (docs/architecture.md)."""
