"""Build the PEM Workbench UI and launch it (locally on 127.0.0.1, or as a Space)."""

import argparse
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home; the app runs offline

from workbench.ui.app import DEFAULT_PRESET, LAUNCH_OPTIONS, build_app  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description="PEM Workbench")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    parser.add_argument("--preset", default=DEFAULT_PRESET)
    args = parser.parse_args()
    build_app(preset=args.preset).queue().launch(server_name=args.host, server_port=args.port, **LAUNCH_OPTIONS)


if __name__ == "__main__":
    main()
