"""The hostile-input corpus: table-driven CLI and UI cases (see cli_cases.py, ui_cases.py)."""
