"""The UI half of the hostile corpus: Controller calls that must fail with one line.

A row names a Controller method, its arguments after the session id (strings may hold
`{name}` placeholders, filled from the case's paths), keyword arguments, and a setup
hook (a key of UI_SETUPS) run after the standard session is set up: the tiny LLaMA with
modules `a` and `toxic` and one composition, `lam*a + (1-lam)*toxic` at lam=0.3.
Every row expects a WorkbenchError with a one-line message and the session unchanged.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .cli_cases import ExecsCode, OpensAFile


@dataclass(frozen=True)
class UiCase:
    id: str
    method: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    setup: str = ""
    match: str = ""


@dataclass
class UiWorld:
    controller: Any
    session: str
    root: Path
    paths: dict[str, str]
    monkeypatch: Any

    def fill(self, value: Any) -> Any:
        if isinstance(value, str):
            for key in sorted(self.paths, key=len, reverse=True):
                value = value.replace("{" + key + "}", self.paths[key])
            return value
        if isinstance(value, list | tuple):
            return type(value)(self.fill(item) for item in value)
        if isinstance(value, dict):
            return {self.fill(k): self.fill(v) for k, v in value.items()}
        return value


UiHook = Callable[[UiWorld], None]
UI_SETUPS: dict[str, UiHook] = {}


def ui_hook(name: str) -> Callable[[UiHook], UiHook]:
    def register(fn: UiHook) -> UiHook:
        UI_SETUPS[name] = fn
        return fn

    return register


def _uploads(world: UiWorld) -> Path:
    folder = world.root / "uploads"
    folder.mkdir(exist_ok=True)
    return folder


def _copy_lora(world: UiWorld, into: Path, source: str = "lora_a") -> tuple[Path, Path]:
    into.mkdir(parents=True, exist_ok=True)
    src = Path(world.paths[source])
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        shutil.copyfile(src / name, into / name)
    return into / "adapter_config.json", into / "adapter_model.safetensors"


@ui_hook("junk_files")
def _(world):
    folder = _uploads(world)
    for name in ("evil.py", "x.pkl", "x.bin", "x.pt", "x.zip", "noext", "X.SAFETENSORS", "a.json.py",
                 "a.safetensors.exe", "x.ckpt"):  # fmt: skip
        (folder / name).write_bytes(b"junk")


@ui_hook("pth_open")
def _(world):
    (_uploads(world) / "delta_vector.pth").write_bytes(pickle.dumps({"x": OpensAFile(world.paths["marker"])}))


@ui_hook("pth_exec")
def _(world):
    (_uploads(world) / "delta_vector.pth").write_bytes(pickle.dumps(ExecsCode(world.paths["marker"]), protocol=0))


@ui_hook("pth_torchsave")
def _(world):
    torch.save({"x": OpensAFile(world.paths["marker"])}, _uploads(world) / "delta_vector.pth")


@ui_hook("weights_pickle")
def _(world):
    _, weights = _copy_lora(world, _uploads(world))
    weights.write_bytes(pickle.dumps(OpensAFile(world.paths["marker"])))


@ui_hook("empty_weights")
def _(world):
    _, weights = _copy_lora(world, _uploads(world))
    weights.write_bytes(b"")


@ui_hook("junk_config")
def _(world):
    (_uploads(world) / "adapter_config.json").write_text("{not json")


@ui_hook("nan_weights")
def _(world):
    _, weights = _copy_lora(world, _uploads(world))
    tensors = load_file(str(weights))
    next(iter(tensors.values())).view(-1)[0] = float("nan")
    save_file(tensors, str(weights))


@ui_hook("truncated_weights")
def _(world):
    _, weights = _copy_lora(world, _uploads(world))
    weights.write_bytes(weights.read_bytes()[:100])


@ui_hook("gpt2_upload")
def _(world):
    _copy_lora(world, _uploads(world), "gpt2_lora")


@ui_hook("config_only")
def _(world):
    _copy_lora(world, _uploads(world))
    (_uploads(world) / "adapter_model.safetensors").unlink()


@ui_hook("folder_upload")
def _(world):
    (_uploads(world) / "dir.safetensors").mkdir()


@ui_hook("dangling_upload")
def _(world):
    (_uploads(world) / "adapter_model.safetensors").symlink_to(world.root / "nowhere")


@ui_hook("config_link_outside")
def _(world):
    (_uploads(world) / "adapter_config.json").symlink_to("/etc/passwd")


@ui_hook("many_files")
def _(world):
    for i in range(9):
        (_uploads(world) / f"c{i}.json").write_text("{}")


@ui_hook("sparse_huge_file")
def _(world):
    _, weights = _copy_lora(world, _uploads(world))
    with open(weights, "r+b") as handle:
        handle.truncate(201 * 2**20)  # a sparse file: 201 MB on paper, nothing on disk


@ui_hook("small_limit")
def _(world):
    import workbench.ui.controller as controller_module

    world.monkeypatch.setattr(controller_module, "UPLOAD_LIMIT_BYTES", 1000)
    _copy_lora(world, _uploads(world))


@ui_hook("no_composition")
def _(world):
    world.controller.recompose(world.session, "", {})


@ui_hook("bare_session")
def _(world):
    world.controller.release(world.session)
    world.controller.start(world.session, base=world.paths["llama"])
    world.controller.add_adapter(world.session, "a", world.paths["lora_a"])


def _copy_base(world: UiWorld, into: Path) -> Path:
    shutil.copytree(world.paths["llama"], into)
    return into


@ui_hook("outside_base")
def _(world):
    _copy_base(world, world.root / "outside" / "base")
    shutil.copytree(world.paths["lora_a"], world.root / "outside" / "lora")


def _allow(world: UiWorld) -> Path:
    allowed = world.root / "allowed"
    allowed.mkdir(exist_ok=True)
    world.monkeypatch.setenv("WORKBENCH_ALLOWED_PATHS", os.pathsep.join([world.paths["allowed_root"], str(allowed)]))
    return allowed


@ui_hook("allowed_links_outside")
def _(world):
    UI_SETUPS["outside_base"](world)
    allowed = _allow(world)
    (allowed / "base").symlink_to(world.root / "outside" / "base")
    (allowed / "lora").symlink_to(world.root / "outside" / "lora")
    (allowed / "dotdot").mkdir()


@ui_hook("allowed_nan_base")
def _(world):
    folder = _copy_base(world, _allow(world) / "nanbase")
    tensors = load_file(str(folder / "model.safetensors"))
    next(t for k, t in sorted(tensors.items()) if "up_proj" in k).view(-1)[0] = float("nan")
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})


@ui_hook("allowed_truncated_base")
def _(world):
    folder = _copy_base(world, _allow(world) / "truncbase")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])


@ui_hook("allowed_junk_base")
def _(world):
    folder = _copy_base(world, _allow(world) / "junkbase")
    (folder / "config.json").write_text(json.dumps({"model_type": "no-such-architecture"}))


@ui_hook("allowed_nan_adapter")
def _(world):
    _, weights = _copy_lora(world, _allow(world) / "nanlora")
    tensors = load_file(str(weights))
    next(iter(tensors.values())).view(-1)[0] = float("inf")
    save_file(tensors, str(weights))


@ui_hook("allowed_pickle_pth")
def _(world):
    (_allow(world) / "delta_vector.pth").write_bytes(pickle.dumps({"x": OpensAFile(world.paths["marker"])}))


# --- the table -----------------------------------------------------------------------------

GOOD_FILES = ["{cfg}", "{weights}"]


def U(id: str, method: str, *args: Any, setup: str = "", match: str = "", **kwargs: Any) -> UiCase:
    return UiCase(id, method, args, kwargs, setup, match)


HOSTILE_NAMES = {
    "parent": "../victim", "parent2": "../../victim", "parent_deep": "../../../../../../victim",
    "absolute": "{victim}", "dotdot": "..", "dot": ".", "slash": "a/b", "backslash": "a\\b",
    "down_and_up": "victim/../../victim", "tilde": "~", "root": "/", "space": "lora a", "long_500": "x" * 500,
    "long_65": "x" * 65, "nul": "a\x00b", "digit_first": "1abc", "rtl": "\u202etxt", "call": "print(1)",
    "shell": "a;rm -rf ~", "drive": "C:\\x", "newline": "a\nb", "glob": "*", "dash": "-a",
}  # fmt: skip

JUNK = ["evil.py", "x.pkl", "x.bin", "x.pt", "x.zip", "noext", "X.SAFETENSORS", "a.json.py", "a.safetensors.exe",
        "x.ckpt"]  # fmt: skip

UP = "{tmp}/uploads"
PAIR = [f"{UP}/adapter_config.json", f"{UP}/adapter_model.safetensors"]
TOXICITY = ("toxic", ["hello"], 2)
GRID = {"lam": "0,1"}
PPL = ["austen-perplexity"]

UI_CASES: list[UiCase] = [
    # uploads: names, types, contents, sizes
    *(U(f"upload_name_{key}", "add_upload", name, GOOD_FILES) for key, name in HOSTILE_NAMES.items()),
    *(U(f"upload_type_{name.replace('.', '_')}", "add_upload", "up", ["{cfg}", f"{UP}/{name}"], setup="junk_files")
      for name in JUNK),  # fmt: skip
    U("upload_only_junk_type", "add_upload", "up", [f"{UP}/evil.py"], setup="junk_files"),
    U("upload_pickle_pth_opens_a_file", "add_upload", "up", [f"{UP}/delta_vector.pth"], setup="pth_open"),
    U("upload_pickle_pth_execs_code", "add_upload", "up", [f"{UP}/delta_vector.pth"], setup="pth_exec"),
    U("upload_torch_save_pth_opens_a_file", "add_upload", "up", [f"{UP}/delta_vector.pth"], setup="pth_torchsave"),
    U("upload_weights_are_a_pickle", "add_upload", "up", PAIR, setup="weights_pickle"),
    U("upload_empty_weights", "add_upload", "up", PAIR, setup="empty_weights"),
    U("upload_junk_config", "add_upload", "up", [f"{UP}/adapter_config.json"], setup="junk_config"),
    U("upload_nan_weights", "add_upload", "up", PAIR, setup="nan_weights"),
    U("upload_truncated_weights", "add_upload", "up", PAIR, setup="truncated_weights"),
    U("upload_gpt2_adapter_on_llama", "add_upload", "up", PAIR, setup="gpt2_upload"),
    U("upload_config_only", "add_upload", "up", [f"{UP}/adapter_config.json"], setup="config_only"),
    U("upload_missing_file", "add_upload", "up", ["{tmp}/never-arrived.safetensors"]),
    U("upload_no_files", "add_upload", "up", []),
    U("upload_a_folder", "add_upload", "up", [f"{UP}/dir.safetensors"], setup="folder_upload"),
    U("upload_dangling_link", "add_upload", "up", ["{cfg}", f"{UP}/adapter_model.safetensors"],
      setup="dangling_upload"),  # fmt: skip
    U("upload_config_link_outside", "add_upload", "up", [f"{UP}/adapter_config.json", "{weights}"],
      setup="config_link_outside"),  # fmt: skip
    U("upload_too_many_files", "add_upload", "up", [f"{UP}/c{i}.json" for i in range(9)], setup="many_files"),
    U("upload_201_mb", "add_upload", "up", PAIR, setup="sparse_huge_file", match="limit"),
    U("upload_over_patched_limit", "add_upload", "up", PAIR, setup="small_limit", match="limit"),
    U("upload_bad_replaces_existing_name", "add_upload", "a", PAIR, setup="nan_weights"),
    # recompose
    U("recompose_nan", "recompose", "lam*a + (1-lam)*toxic", {"lam": float("nan")}),
    U("recompose_inf", "recompose", "lam*a + (1-lam)*toxic", {"lam": float("inf")}),
    U("recompose_minus_inf", "recompose", "lam*a + (1-lam)*toxic", {"lam": float("-inf")}),
    U("recompose_2_5", "recompose", "lam*a + (1-lam)*toxic", {"lam": 2.5}),
    U("recompose_just_below_minus_2", "recompose", "lam*a + (1-lam)*toxic", {"lam": -2.0001}),
    U("recompose_1e30", "recompose", "lam*a + (1-lam)*toxic", {"lam": 1e30}),
    U("recompose_1e308", "recompose", "lam*a", {"lam": 1e308}),
    U("recompose_value_is_text", "recompose", "lam*a", {"lam": "0.5"}),
    U("recompose_value_is_none", "recompose", "lam*a", {"lam": None}),
    U("recompose_missing_value", "recompose", "lam*a", {}),
    U("recompose_module_product", "recompose", "a*toxic", {}),
    U("recompose_divide_by_module", "recompose", "a/toxic", {}),
    U("recompose_divide_by_zero", "recompose", "a/0", {}),
    U("recompose_deep", "recompose", "(" * 40 + "a" + ")" * 40, {}),
    U("recompose_long", "recompose", "a+" * 300 + "a", {}),
    U("recompose_power_17", "recompose", "lam^17*a", {"lam": 0.5}),
    U("recompose_module_power", "recompose", "a^2", {}),
    U("recompose_nul", "recompose", "a\x00", {}),
    U("recompose_unknown_name", "recompose", "zzz", {}),
    U("recompose_unicode_junk", "recompose", "a ÷ toxic\u200b", {}),
    U("recompose_1e39_overflows_float32", "recompose", "1e39*a", {}),
    U("recompose_1e308_overflows", "recompose", "1e308*a", {}),
    U("recompose_unknown_mode", "recompose", "a", {}, mode="turbo"),
    U("recompose_expression_not_text", "recompose", None, {}),
    U("parameters_too_many", "parameters", "p1*a + p2*a + p3*a + p4*a + p5*toxic"),
    U("parameters_bad_expression", "parameters", "a*toxic"),
    # toxicity
    U("toxicity_lambda_1e30", "toxicity", *TOXICITY, [1e30]),
    U("toxicity_lambda_nan", "toxicity", *TOXICITY, [float("nan")]),
    U("toxicity_lambda_inf", "toxicity", *TOXICITY, [float("inf")]),
    U("toxicity_lambda_minus_3", "toxicity", *TOXICITY, [-3.0]),
    U("toxicity_12_lambdas", "toxicity", *TOXICITY, [0.1] * 12),
    U("toxicity_samples_zero", "toxicity", "toxic", ["hello"], 0, [0.5]),
    U("toxicity_samples_negative", "toxicity", "toxic", ["hello"], -1, [0.5]),
    U("toxicity_samples_huge", "toxicity", "toxic", ["hello"], 10**9, [0.5]),
    U("toxicity_samples_float", "toxicity", "toxic", ["hello"], 2.5, [0.5]),
    U("toxicity_unknown_module", "toxicity", "missing", ["hello"], 2, [0.5]),
    U("toxicity_module_traversal", "toxicity", "../a", ["hello"], 2, [0.5]),
    U("toxicity_empty_prompt", "toxicity", "toxic", [""], 2, [0.5]),
    U("toxicity_huge_prompt", "toxicity", "toxic", ["x" * 3000], 2, [0.5]),
    U("toxicity_seed_2e70", "toxicity", "toxic", ["hello"], 1, [0.5], seed=2**70),
    # chat
    U("chat_empty", "chat", ""),
    U("chat_blank", "chat", "   "),
    U("chat_whitespace", "chat", "\n\t\r "),
    U("chat_over_long", "chat", "x" * 4001, match="characters long"),
    U("chat_huge", "chat", "x" * 1_000_000),
    U("chat_zero_tokens", "chat", "hi", max_new_tokens=0),
    U("chat_negative_tokens", "chat", "hi", max_new_tokens=-1),
    U("chat_huge_tokens", "chat", "hi", max_new_tokens=10**9),
    U("chat_seed_2e70", "chat", "hi", max_new_tokens=2, seed=2**70),
    U("chat_seed_negative", "chat", "hi", max_new_tokens=2, seed=-1),
    # sweep
    *(U(f"sweep_grid_{key}", "sweep", "lam*a", {"lam": spec}, PPL) for key, spec in {
        "to_inf": "0:inf:1", "tiny_step": "0:1:1e-7", "huge_range": "0:1e9:1e-9", "nan": "nan",
        "nan_start": "nan:1:0.1", "reversed": "1:0:0.1", "zero_step": "0:1:0", "empty": "", "words": "abc",
        "list_inf": "0,inf", "four_parts": "0:1:0.1:5",
    }.items()),  # fmt: skip
    U("sweep_two_big_grids", "sweep", "x*a + y*toxic", {"x": "0:440:1", "y": "0:440:1"}, PPL),
    U("sweep_no_grid", "sweep", "lam*a", {}, PPL),
    U("sweep_grid_for_other_parameter", "sweep", "lam*a", {"mu": "0,1"}, PPL),
    U("sweep_bad_expression", "sweep", "a*toxic", GRID, PPL),
    U("sweep_overflowing_grid", "sweep", "lam*a", {"lam": "1e308,1e308"}, PPL),
    U("sweep_n_zero", "sweep", "lam*a", GRID, ["sentiment-validation"], n=0),
    U("sweep_n_negative", "sweep", "lam*a", GRID, ["sentiment-validation"], n=-5),
    U("sweep_n_huge", "sweep", "lam*a", GRID, ["sentiment-validation"], n=10**9),
    U("sweep_samples_zero", "sweep", "lam*a", GRID, ["toxicity"], samples=0),
    U("sweep_samples_huge", "sweep", "lam*a", GRID, ["toxicity"], samples=10**9),
    U("sweep_no_tasks", "sweep", "lam*a", GRID, []),
    U("sweep_unknown_task", "sweep", "lam*a", GRID, ["no-such-task"]),
    U("sweep_task_traversal", "sweep", "lam*a", GRID, ["../../../../etc/passwd"]),
    # history, export, presets, hub
    U("restore_missing_index", "restore", 5, match="no entry"),
    U("restore_index_one_past", "restore", 1),
    U("restore_negative_index", "restore", -1),
    U("restore_huge_index", "restore", 10**9),
    U("export_no_composition", "export", setup="no_composition", match="no composition"),
    U("export_bare_session", "export", setup="bare_session"),
    U("start_unknown_preset", "start", "no-such-preset"),
    U("start_preset_traversal", "start", "../../../etc/passwd"),
    U("start_preset_nul", "start", "unlearning-lora\x00"),
    U("push_without_repo_or_token", "push_to_hub", "", ""),
    U("push_offline", "push_to_hub", "someone/something", "hf_token"),
    # bases and adapters by path
    U("load_base_outside_allowed", "load_base", "{tmp}/outside/base", setup="outside_base", match="outside"),
    U("load_base_etc", "load_base", "/etc"),
    U("load_base_root", "load_base", "/"),
    U("load_base_home", "load_base", "~"),
    U("load_base_traversal", "load_base", "../../../../../../etc"),
    U("load_base_link_inside_allowed_to_outside", "load_base", "{tmp}/allowed/base", setup="allowed_links_outside"),
    U("load_base_dotdot_out_of_allowed", "load_base", "{tmp}/allowed/dotdot/../../outside/base",
      setup="allowed_links_outside"),  # fmt: skip
    U("load_base_empty", "load_base", ""),
    U("load_base_blank", "load_base", "   "),
    U("load_base_missing_folder", "load_base", "/no/such/folder"),
    U("load_base_hub_id_offline", "load_base", "no-such-org/no-such-model"),
    U("load_base_nan_weights", "load_base", "{tmp}/allowed/nanbase", setup="allowed_nan_base"),
    U("load_base_truncated", "load_base", "{tmp}/allowed/truncbase", setup="allowed_truncated_base"),
    U("load_base_unknown_architecture", "load_base", "{tmp}/allowed/junkbase", setup="allowed_junk_base"),
    U("add_adapter_outside_allowed", "add_adapter", "x", "{tmp}/outside/lora", setup="outside_base"),
    U("add_adapter_etc", "add_adapter", "x", "/etc"),
    U("add_adapter_traversal", "add_adapter", "x", "../../../../../../etc"),
    U("add_adapter_link_to_outside", "add_adapter", "x", "{tmp}/allowed/lora", setup="allowed_links_outside"),
    U("add_adapter_gpt2_on_llama", "add_adapter", "x", "{gpt2_lora}"),
    U("add_adapter_unknown_zoo_name", "add_adapter", "x", "no-such-zoo-adapter"),
    U("add_adapter_hostile_name", "add_adapter", "../x", "{lora_a}"),
    U("add_adapter_name_from_bad_path", "add_adapter", "", "{tmp}/allowed/nanlora", setup="allowed_nan_adapter"),
    U("add_adapter_nan_replaces_existing", "add_adapter", "a", "{tmp}/allowed/nanlora", setup="allowed_nan_adapter"),
    U("add_adapter_pickle_pth", "add_adapter", "x", "{tmp}/allowed/delta_vector.pth", setup="allowed_pickle_pth"),
    U("add_adapter_empty_source", "add_adapter", "x", ""),
]

UI_IDS = [case.id for case in UI_CASES]
assert len(UI_IDS) == len(set(UI_IDS)), sorted(i for i in UI_IDS if UI_IDS.count(i) > 1)
assert all(case.setup in UI_SETUPS for case in UI_CASES if case.setup)
