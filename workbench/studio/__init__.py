"""The studio: the pipelines that make the zoo's published artefacts.

Training (`training`), model cards (`cards`), studies (`studies`), the negation ablation
(`ablation`) and data extraction (`extract`) sit at the top of the layers, beside the CLI
and the UI (docs/architecture.md): they use everything below and nothing imports them but
`python -m workbench zoo`.
"""
