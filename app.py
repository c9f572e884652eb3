"""Entry point for `make run` and Hugging Face Spaces: build the workbench UI and launch it."""

import sys

MESSAGE = (
    "The PEM Workbench UI is not built yet (it lands with the Gradio issue).\n"
    "The composition CLI works today: python -m workbench compose --help"
)

if __name__ == "__main__":
    print(MESSAGE, file=sys.stderr)
    sys.exit(1)
