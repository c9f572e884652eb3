"""The README's compose example runs as written, offline, and its output is a PEFT LoRA."""

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_example() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- readme-example -->\s*```bash\n(.*?)```", text, re.S).group(1)
    return shlex.split(block.replace("\\\n", " "))


def test_readme_compose_example_runs(tmp_path) -> None:
    command = readme_example()
    assert command[:4] == [".venv/bin/python", "-m", "workbench", "compose"]
    out_index = command.index("--out") + 1
    command[out_index] = str(tmp_path / "merged")
    result = subprocess.run([sys.executable, *command[1:]], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "lam*a + (1 - lam)*b" in result.stdout
    config = json.loads((tmp_path / "merged" / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 8


def test_readme_front_matter_is_a_gradio_space() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    front = text.split("---")[1]
    for line in ("sdk: gradio", "app_file: app.py", "sdk_version:"):
        assert line in front
