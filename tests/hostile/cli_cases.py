"""The CLI half of the hostile corpus: one row per case, and the setup hooks rows name.

A row is data: an id, an argv template (`{name}` is filled from the case's World, see
conftest.py), the exit code it must end with, a setup hook (a key of SETUPS, run on the
case's fresh copy of the inputs before the CLI is called), and optionally a regular
expression the one stderr line must contain. Expected codes follow the CLI's
convention: 2 and one `error:` line for bad input, 0 for success, 130 for Ctrl-C
(one `interrupted` line) and 1 for a bug (one `internal error` line).
"""

from __future__ import annotations

import json
import pickle
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .conftest import World


@dataclass(frozen=True)
class CliCase:
    id: str
    argv: tuple[str, ...]
    code: int = 2
    setup: str = ""
    match: str = ""


# --- setup hooks ---------------------------------------------------------------------------

Hook = Callable[[World, object], None]
SETUPS: dict[str, Hook] = {}


def hook(name: str) -> Callable[[Hook], Hook]:
    def register(fn: Hook) -> Hook:
        SETUPS[name] = fn
        return fn

    return register


class OpensAFile:
    """A pickle that, when loaded, creates the file `marker`: proof that loading ran code."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


class ExecsCode:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


RED_KEY = "model.layers.0.mlp.down_proj.delta_vector"


def _pth(world: World) -> Path:
    folder = world.inp / "evil"
    folder.mkdir(exist_ok=True)
    world.paths["pth"] = str(folder / "delta_vector.pth")
    return folder / "delta_vector.pth"


@hook("pth_pickle_open")
def _(world, mp):
    _pth(world).write_bytes(pickle.dumps({f"{RED_KEY}.activation_scaling": OpensAFile(world.paths["marker"])}))


@hook("pth_pickle_exec")
def _(world, mp):
    _pth(world).write_bytes(pickle.dumps(ExecsCode(world.paths["marker"]), protocol=0))


@hook("pth_torchsave_evil")
def _(world, mp):
    torch.save({f"{RED_KEY}.activation_scaling": OpensAFile(world.paths["marker"])}, _pth(world))


@hook("pth_torchsave_exec")
def _(world, mp):
    torch.save([ExecsCode(world.paths["marker"])], _pth(world))


@hook("pth_not_tensors")
def _(world, mp):
    torch.save({f"{RED_KEY}.activation_scaling": 1, "x": "text"}, _pth(world))


@hook("pth_list")
def _(world, mp):
    torch.save([torch.ones(32)], _pth(world))


@hook("pth_nan")
def _(world, mp):
    torch.save({f"{RED_KEY}.activation_scaling": torch.full((32,), float("nan")),
                f"{RED_KEY}.activation_bias": torch.zeros(32)}, _pth(world))  # fmt: skip


@hook("pth_empty")
def _(world, mp):
    _pth(world).write_bytes(b"")


@hook("pth_junk")
def _(world, mp):
    _pth(world).write_bytes(bytes(range(256)) * 8)


@hook("pth_truncated")
def _(world, mp):
    path = _pth(world)
    torch.save({f"{RED_KEY}.activation_scaling": torch.ones(32), f"{RED_KEY}.activation_bias": torch.zeros(32)}, path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@hook("pth_is_folder")
def _(world, mp):
    _pth(world).mkdir()


# symlinks


@hook("dangling_link")
def _(world, mp):
    (world.inp / "dangling").symlink_to(world.inp / "nowhere")
    world.paths["dangling"] = str(world.inp / "dangling")


@hook("link_outside")
def _(world, mp):
    outside = world.root / "elsewhere"
    shutil.copytree(world.inp / "lora_a", outside / "lora")
    (world.inp / "linked").symlink_to(outside / "lora")
    world.paths["linked"] = str(world.inp / "linked")


@hook("link_loop")
def _(world, mp):
    (world.inp / "loop").symlink_to(world.inp / "loop")
    world.paths["loop"] = str(world.inp / "loop")


def _relink(world: World, adapter: str, file: str, target: str) -> None:
    path = world.inp / adapter / file
    path.unlink()
    path.symlink_to(target)


@hook("weights_link_passwd")
def _(world, mp):
    _relink(world, "lora_a", "adapter_model.safetensors", "/etc/passwd")


@hook("weights_link_dangling")
def _(world, mp):
    _relink(world, "lora_a", "adapter_model.safetensors", str(world.root / "gone.safetensors"))


@hook("weights_link_devnull")
def _(world, mp):
    _relink(world, "lora_a", "adapter_model.safetensors", "/dev/null")


@hook("config_link_outside")
def _(world, mp):
    _relink(world, "lora_a", "adapter_config.json", "/etc/hostname")


# wrong types, empty and missing files


def _write(adapter: str, file: str, data: bytes) -> Hook:
    def setup(world, mp):
        (world.inp / adapter / file).write_bytes(data)

    return setup


def _remove(adapter: str, file: str) -> Hook:
    def setup(world, mp):
        (world.inp / adapter / file).unlink()

    return setup


PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)
ZIP_BYTES = b"PK\x05\x06" + bytes(18)
SETUPS.update({
    "lora_config_png": _write("lora_a", "adapter_config.json", PNG),
    "lora_config_list": _write("lora_a", "adapter_config.json", b"[]"),
    "lora_config_null": _write("lora_a", "adapter_config.json", b"null"),
    "lora_config_no_type": _write("lora_a", "adapter_config.json", b"{}"),
    "lora_config_utf16": _write("lora_a", "adapter_config.json", '{"peft_type": "LORA"}'.encode("utf-16")),
    "lora_config_deep": _write("lora_a", "adapter_config.json", b"[" * 100_000 + b"]" * 100_000),
    "lora_config_huge_int": _write("lora_a", "adapter_config.json", b'{"peft_type": "LORA", "r": ' + b"9" * 5000
                                   + b"}"),
    "lora_config_empty": _write("lora_a", "adapter_config.json", b""),
    "lora_weights_json": _write("lora_a", "adapter_model.safetensors", b"{}"),
    "lora_weights_zip": _write("lora_a", "adapter_model.safetensors", ZIP_BYTES),
    "lora_weights_png": _write("lora_a", "adapter_model.safetensors", PNG),
    "lora_weights_empty": _write("lora_a", "adapter_model.safetensors", b""),
    "red_config_empty": _write("red_a", "pem_config.json", b""),
    "sparse_weights_empty": _write("sparse_a", "pem_model.safetensors", b""),
    "lora_no_weights": _remove("lora_a", "adapter_model.safetensors"),
    "lora_no_config": _remove("lora_a", "adapter_config.json"),
    "red_no_weights": _remove("red_a", "pem_model.safetensors"),
    "sparse_no_config": _remove("sparse_a", "pem_config.json"),
})  # fmt: skip


@hook("lora_weights_renamed_bin")
def _(world, mp):
    folder = world.inp / "lora_a"
    (folder / "adapter_model.safetensors").rename(folder / "adapter_model.bin")


@hook("lora_weights_pickle")
def _(world, mp):
    (world.inp / "lora_a" / "adapter_model.safetensors").write_bytes(pickle.dumps(OpensAFile(world.paths["marker"])))


@hook("empty_folder")
def _(world, mp):
    (world.inp / "emptydir").mkdir()
    world.paths["emptydir"] = str(world.inp / "emptydir")


# truncated safetensors


def _truncate(adapter: str, file: str, keep: Callable[[int], int]) -> Hook:
    def setup(world, mp):
        path = world.inp / adapter / file
        data = path.read_bytes()
        path.write_bytes(data[: keep(len(data))])

    return setup


SETUPS.update({
    "lora_trunc_half": _truncate("lora_a", "adapter_model.safetensors", lambda n: n // 2),
    "lora_trunc_last_byte": _truncate("lora_a", "adapter_model.safetensors", lambda n: n - 1),
    "lora_trunc_8": _truncate("lora_a", "adapter_model.safetensors", lambda n: 8),
    "lora_trunc_3": _truncate("lora_a", "adapter_model.safetensors", lambda n: 3),
    "ia3_trunc": _truncate("ia3_a", "adapter_model.safetensors", lambda n: n // 2),
    "red_trunc": _truncate("red_a", "pem_model.safetensors", lambda n: n // 2),
    "sparse_trunc": _truncate("sparse_a", "pem_model.safetensors", lambda n: n - 16),
    "base_trunc_half": _truncate("base", "model.safetensors", lambda n: n // 2),
    "base_trunc_header": _truncate("base", "model.safetensors", lambda n: 4),
})  # fmt: skip


@hook("lora_header_huge")
def _(world, mp):
    path = world.inp / "lora_a" / "adapter_model.safetensors"
    path.write_bytes(b"\xff" * 8 + path.read_bytes()[8:])


# bad numbers in tensors


def _edit(adapter: str, file: str, change: Callable[[dict], None]) -> Hook:
    def setup(world, mp):
        path = world.inp / adapter / file
        tensors = load_file(str(path))
        change(tensors)
        save_file(tensors, str(path), metadata={"format": "pt"})

    return setup


def _first(tensors: dict, fragment: str = "") -> str:
    return next(k for k in sorted(tensors) if fragment in k)


def _fill(fragment: str, value: float) -> Callable[[dict], None]:
    def change(tensors):
        tensors[_first(tensors, fragment)].view(-1)[0] = value

    return change


def _set_indices(value: int) -> Callable[[dict], None]:
    def change(tensors):
        tensors[_first(tensors, "indices")].view(-1)[0] = value

    return change


def _grow_rank(tensors):
    name = _first(tensors, "lora_A")
    tensors[name] = torch.cat([tensors[name], tensors[name][:1]])


def _int_lora(tensors):
    name = _first(tensors, "lora_A")
    tensors[name] = tensors[name].to(torch.int64)


SETUPS.update({
    "lora_nan": _edit("lora_a", "adapter_model.safetensors", _fill("lora_B", float("nan"))),
    "lora_inf": _edit("lora_a", "adapter_model.safetensors", _fill("lora_A", float("inf"))),
    "lora_b_nan": _edit("lora_b", "adapter_model.safetensors", _fill("lora_A", float("nan"))),
    "ia3_nan": _edit("ia3_a", "adapter_model.safetensors", _fill("ia3_l", float("nan"))),
    "red_neginf": _edit("red_a", "pem_model.safetensors", _fill("activation_bias", float("-inf"))),
    "sparse_nan": _edit("sparse_a", "pem_model.safetensors", _fill("values", float("nan"))),
    "sparse_index_oob": _edit("sparse_a", "pem_model.safetensors", _set_indices(10**9)),
    "sparse_index_negative": _edit("sparse_a", "pem_model.safetensors", _set_indices(-5)),
    "lora_wrong_rank_shape": _edit("lora_a", "adapter_model.safetensors", _grow_rank),
    "lora_int_tensor": _edit("lora_a", "adapter_model.safetensors", _int_lora),
    "base_nan": _edit("base", "model.safetensors", _fill("mlp.up_proj", float("nan"))),
    "base_inf": _edit("base", "model.safetensors", _fill("embed_tokens", float("inf"))),
})  # fmt: skip


# bad config fields (written raw, so NaN / 1e999 / broken JSON types reach the reader)


def _field(adapter: str, file: str, path: tuple[str, ...], raw: str) -> Hook:
    def setup(world, mp):
        target = world.inp / adapter / file
        config = json.loads(target.read_text())
        holder = config
        for key in path[:-1]:
            holder = holder[key]
        if path[-1] == "*":  # the first key of a mapping, e.g. a sparse shape
            path_last = next(iter(holder))
        else:
            path_last = path[-1]
        holder[path_last] = "__RAW__"
        target.write_text(json.dumps(config).replace('"__RAW__"', raw))

    return setup


CONFIG_FIELDS = [
    # (hook name, adapter, file, field path, raw JSON)
    ("cfg_lora_alpha_nan", "lora_a", "adapter_config.json", ("lora_alpha",), "NaN"),
    ("cfg_lora_alpha_1e999", "lora_a", "adapter_config.json", ("lora_alpha",), "1e999"),
    ("cfg_lora_alpha_neginf", "lora_a", "adapter_config.json", ("lora_alpha",), "-Infinity"),
    ("cfg_lora_alpha_eight", "lora_a", "adapter_config.json", ("lora_alpha",), '"eight"'),
    ("cfg_lora_alpha_zero", "lora_a", "adapter_config.json", ("lora_alpha",), "0"),
    ("cfg_lora_alpha_list", "lora_a", "adapter_config.json", ("lora_alpha",), "[8]"),
    ("cfg_r_four", "lora_a", "adapter_config.json", ("r",), '"four"'),
    ("cfg_r_zero", "lora_a", "adapter_config.json", ("r",), "0"),
    ("cfg_r_minus_one", "lora_a", "adapter_config.json", ("r",), "-1"),
    ("cfg_r_half", "lora_a", "adapter_config.json", ("r",), "2.5"),
    ("cfg_r_true", "lora_a", "adapter_config.json", ("r",), "true"),
    ("cfg_r_1e999", "lora_a", "adapter_config.json", ("r",), "1e999"),
    ("cfg_r_nan", "lora_a", "adapter_config.json", ("r",), "NaN"),
    ("cfg_r_1e30", "lora_a", "adapter_config.json", ("r",), "1000000000000000000000000000000"),
    ("cfg_target_regex_paren", "lora_a", "adapter_config.json", ("target_modules",), '"("'),
    ("cfg_target_regex_bracket", "lora_a", "adapter_config.json", ("target_modules",), '"[q"'),
    ("cfg_target_numbers", "lora_a", "adapter_config.json", ("target_modules",), "[1, 2]"),
    ("cfg_rank_pattern_nan", "lora_a", "adapter_config.json", ("rank_pattern",), '{"q_proj": NaN}'),
    ("cfg_rank_pattern_regex", "lora_a", "adapter_config.json", ("rank_pattern",), '{"(": 4}'),
    ("cfg_rank_pattern_negative", "lora_a", "adapter_config.json", ("rank_pattern",), '{"q_proj": -1}'),
    ("cfg_rank_pattern_string", "lora_a", "adapter_config.json", ("rank_pattern",), '"q_proj"'),
    ("cfg_alpha_pattern_inf", "lora_a", "adapter_config.json", ("alpha_pattern",), '{"q_proj": Infinity}'),
    ("cfg_alpha_pattern_regex", "lora_a", "adapter_config.json", ("alpha_pattern",), '{"[": 2}'),
    ("cfg_alpha_pattern_text", "lora_a", "adapter_config.json", ("alpha_pattern",), '{"q_proj": "x"}'),
    ("cfg_rslora_yes", "lora_a", "adapter_config.json", ("use_rslora",), '"yes"'),
    ("cfg_fan_in_fan_out_no", "lora_a", "adapter_config.json", ("fan_in_fan_out",), '"no"'),
    ("cfg_base_name_number", "lora_a", "adapter_config.json", ("base_model_name_or_path",), "12"),
    ("cfg_peft_prefix", "lora_a", "adapter_config.json", ("peft_type",), '"PREFIX_TUNING"'),
    ("cfg_peft_number", "lora_a", "adapter_config.json", ("peft_type",), "12"),
    ("cfg_ia3_feedforward_number", "ia3_a", "adapter_config.json", ("feedforward_modules",), "7"),
    ("cfg_ia3_target_regex", "ia3_a", "adapter_config.json", ("target_modules",), '"["'),
    ("cfg_red_fan_nan", "red_a", "pem_config.json", ("fan_in_fan_out",), "NaN"),
    ("cfg_red_target_regex", "red_a", "pem_config.json", ("target_modules",), '"(*"'),
    ("cfg_sparse_density_nan", "sparse_a", "pem_config.json", ("density",), "NaN"),
    ("cfg_sparse_density_1e999", "sparse_a", "pem_config.json", ("density",), "1e999"),
    ("cfg_sparse_density_zero", "sparse_a", "pem_config.json", ("density",), "0"),
    ("cfg_sparse_density_negative", "sparse_a", "pem_config.json", ("density",), "-0.5"),
    ("cfg_sparse_shape_negative", "sparse_a", "pem_config.json", ("shapes", "*"), "[128, -32]"),
    ("cfg_sparse_shape_nan", "sparse_a", "pem_config.json", ("shapes", "*"), "[128, NaN]"),
    ("cfg_sparse_shape_text", "sparse_a", "pem_config.json", ("shapes", "*"), '"abc"'),
]
for _name, _adapter, _file, _path, _raw in CONFIG_FIELDS:
    SETUPS[_name] = _field(_adapter, _file, _path, _raw)


# broken bases


@hook("base_config_junk")
def _(world, mp):
    (world.inp / "base" / "config.json").write_bytes(PNG)


@hook("base_config_empty")
def _(world, mp):
    (world.inp / "base" / "config.json").write_text("")


@hook("base_no_weights")
def _(world, mp):
    (world.inp / "base" / "model.safetensors").unlink()


@hook("base_config_unknown_type")
def _(world, mp):
    path = world.inp / "base" / "config.json"
    config = json.loads(path.read_text())
    config["model_type"] = "no-such-architecture"
    path.write_text(json.dumps(config))


@hook("base_no_chat_template")
def _(world, mp):
    path = world.inp / "base" / "tokenizer_config.json"
    config = json.loads(path.read_text())
    config.pop("chat_template", None)
    path.write_text(json.dumps(config))
    (world.inp / "base" / "chat_template.jinja").unlink(missing_ok=True)


# task files


@hook("latin1_txt")
def _(world, mp):
    (world.inp / "latin1.txt").write_bytes("café au lait \xff\xfe".encode("latin-1"))
    world.paths["latin1"] = str(world.inp / "latin1.txt")


@hook("empty_txt")
def _(world, mp):
    (world.inp / "empty.txt").write_text("")
    world.paths["emptytxt"] = str(world.inp / "empty.txt")


@hook("blank_txt")
def _(world, mp):
    (world.inp / "blank.txt").write_text(" \n\t\n")
    world.paths["blanktxt"] = str(world.inp / "blank.txt")


def _csv(name: str, data: bytes) -> Hook:
    def setup(world, mp):
        (world.inp / name).write_bytes(data)
        world.paths[name.replace(".", "_")] = str(world.inp / name)

    return setup


SETUPS.update({
    "csv_no_label": _csv("nolabel.csv", b"text,other\nhello,1\n"),
    "csv_empty": _csv("empty.csv", b""),
    "csv_header_only": _csv("header.csv", b"text,label\n"),
    "csv_binary": _csv("binary.csv", PNG + bytes(range(256))),
})  # fmt: skip


# outputs


@hook("out_file")
def _(world, mp):
    (world.root / "out").write_text("precious")


@hook("out_nonempty")
def _(world, mp):
    (world.root / "out").mkdir()
    (world.root / "out" / "keep.txt").write_text("precious")


@hook("out_empty_dir")
def _(world, mp):
    (world.root / "out").mkdir()


@hook("out_under_file")
def _(world, mp):
    (world.root / "file").write_text("x")
    world.paths["out"] = str(world.root / "file" / "out")


@hook("out_dangling")
def _(world, mp):
    (world.root / "out").symlink_to(world.root / "nowhere")


@hook("out_link_to_empty_dir")
def _(world, mp):
    (world.root / "emptydir").mkdir()
    (world.root / "out").symlink_to(world.root / "emptydir")


@hook("out_long_name")
def _(world, mp):
    world.paths["out"] = str(world.root / ("x" * 300))


@hook("out_is_input")
def _(world, mp):
    world.paths["out"] = world.paths["lora_a"]


@hook("out_traversal")
def _(world, mp):
    world.paths["out"] = str(world.root / "new" / ".." / "in")


# conventions: Ctrl-C and bugs


@hook("ctrl_c_on_load")
def _(world, mp):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    mp.setattr("workbench.cli.compose_command.load_module", interrupted)


@hook("bug_on_load")
def _(world, mp):
    def broken(*args, **kwargs):
        raise RuntimeError("boom\nsecond line")

    mp.setattr("workbench.cli.compose_command.load_module", broken)


@hook("ctrl_c_on_save")
def _(world, mp):
    import workbench.cli.compose_command as command

    real = command.save_composition

    def save(composition, modules, folder):
        real(composition, modules, folder)  # half of the work is on disk (in the staging)
        raise KeyboardInterrupt

    mp.setattr(command, "save_composition", save)


@hook("zip_adapter")
def _(world, mp):
    with zipfile.ZipFile(world.inp / "lora.zip", "w") as zipped:
        for path in (world.inp / "lora_a").iterdir():
            zipped.write(path, path.name)
    world.paths["zip"] = str(world.inp / "lora.zip")


# --- the table -----------------------------------------------------------------------------

BASE = ("--base", "{base}")
AB = ("--adapter", "a={lora_a}", "--adapter", "b={lora_b}")
OUT = ("--out", "{out}")


def compose(expr: str, *extra: str, adapters: tuple[str, ...] = AB) -> tuple[str, ...]:
    return ("compose", *BASE, *adapters, *OUT, "--expr", expr, *extra)


def one(adapter: str, expr: str = "a", *extra: str, base: str = "{base}") -> tuple[str, ...]:
    """compose of one adapter, bound to `a`."""
    return ("compose", "--base", base, "--adapter", f"a={adapter}", *OUT, "--expr", expr, *extra)


def sweep(*extra: str, expr: str = "lam*a + (1-lam)*b", grid: tuple[str, ...] = ("--grid", "lam=0,1"),
          task: tuple[str, ...] = ("--task", "ppl:{txt}")) -> tuple[str, ...]:  # fmt: skip
    return ("sweep", *BASE, *AB, *OUT, "--expr", expr, *grid, *task, *extra)


def generate(*extra: str, prompt: str = "hi", tokens: str = "2") -> tuple[str, ...]:
    return ("generate", *BASE, "--max-new-tokens", tokens, "--prompt", prompt, *extra)


def C(id: str, argv: tuple[str, ...], code: int = 2, setup: str = "", match: str = "") -> CliCase:
    return CliCase(id, argv, code, setup, match)


SEEDED = ("--adapter", "x={sparse_a}", "--adapter", "y={sparse_b}")

CLI_CASES: list[CliCase] = [
    # usage
    C("usage_no_subcommand", ()),
    C("usage_unknown_subcommand", ("explode",)),
    C("usage_unknown_flag", compose("a", "--frobnicate")),
    C("usage_compose_without_out", ("compose", *BASE, *AB, "--expr", "a")),
    C("usage_compose_without_adapter", ("compose", *BASE, *OUT, "--expr", "a")),
    C("usage_bad_mode", compose("a", "--mode", "turbo")),
    C("usage_bad_merge", compose("x + y", "--merge", "dare_all", adapters=SEEDED)),
    # expressions
    C("expr_module_product", compose("a*b"), match="multiply two modules"),
    C("expr_module_product_synonym", compose("a × b")),
    C("expr_divide_by_module", compose("a/b")),
    C("expr_divide_by_zero", compose("a/0")),
    C("expr_divide_by_computed_zero", compose("a/(1-1)")),
    C("expr_divide_by_parameter", compose("a/lam", "--set", "lam=0.5")),
    C("expr_divide_by_tiny", compose("a/1e-320")),
    C("expr_unbalanced_open", compose("(a + b")),
    C("expr_unbalanced_close", compose("a + b)")),
    C("expr_dangling_operator", compose("a +")),
    C("expr_only_operator", compose("+")),
    C("expr_empty", compose("")),
    C("expr_blank", compose("   ")),
    C("expr_empty_parens", compose("()*a")),
    C("expr_unknown_name", compose("zzz")),
    C("expr_unknown_module_scaled", compose("lam*zzz", "--set", "lam=0.5")),
    C("expr_add_parameter_to_module", compose("a + zzz")),
    C("expr_missing_parameter", compose("lam*a")),
    C("expr_plain_number", compose("2")),
    C("expr_module_power", compose("a^2")),
    C("expr_module_power_star", compose("(0.5*a)**2")),
    C("expr_power_17", compose("lam^17*a", "--set", "lam=0.5")),
    C("expr_power_negative", compose("lam^-1*a", "--set", "lam=0.5")),
    C("expr_power_fraction", compose("lam^2.5*a", "--set", "lam=0.5")),
    C("expr_power_chain", compose("lam^2^3*a", "--set", "lam=0.5")),
    C("expr_power_huge", compose("lam^" + "9" * 30 + "*a", "--set", "lam=0.5")),
    C("expr_power_sum_above_16", compose("lam^9*lam^9*a", "--set", "lam=0.5")),
    C("expr_power_of_parameter_name", compose("lam^mu*a", "--set", "lam=0.5", "--set", "mu=2")),
    C("expr_deep_parens", compose("(" * 40 + "a" + ")" * 40)),
    C("expr_deep_unary", compose("-" * 40 + "a")),
    C("expr_very_deep_parens", compose("(" * 5000 + "a" + ")" * 5000)),
    C("expr_long", compose("a+" * 300 + "a")),
    C("expr_huge_literal", compose("1" * 400 + "*a")),
    C("expr_literal_1e309", compose("1e309*a")),
    C("expr_1e308_overflows", compose("1e308*a"), match="overflow"),
    C("expr_1e39_overflows_float32", compose("1e39*a"), match="overflow"),
    C("expr_1e30_sum_overflows", compose("1e30*a + b")),
    C("expr_many_terms", compose("*".join(f"(p{i}+1)" for i in range(12)) + "*a",
                                 *(x for i in range(12) for x in ("--set", f"p{i}=0.1")))),  # fmt: skip
    C("expr_unicode_division", compose("a ÷ b")),
    C("expr_zero_width_space", compose("a\u200b+ b")),
    C("expr_rtl_override", compose("\u202ea + b")),
    C("expr_emoji", compose("a + 😀")),
    C("expr_fullwidth_name", compose("ａ + b")),
    C("expr_python_injection", compose("__import__('os').system('true')")),
    C("expr_semicolon", compose("a; b")),
    C("expr_python_ternary", compose("a if 1 else b")),
    C("expr_lambda", compose("lambda: a")),
    C("expr_attribute", compose("a.b")),
    C("expr_brackets", compose("a[0]")),
    C("expr_comparison", compose("a < b")),
    C("expr_hex_literal", compose("0x10*a")),
    C("expr_double_dot_number", compose("1..2*a")),
    C("expr_zero_times_module", compose("0*a"), match="zero"),
    C("expr_module_minus_itself", compose("a-a"), match="zero"),
    C("expr_cancels_in_three", compose("a - 0.5*a - 0.5*a")),
    C("expr_lam_zero", compose("lam*a", "--set", "lam=0")),
    # expressions that must work
    C("ok_single", compose("a"), 0),
    C("ok_leading_minus", compose("-a"), 0),
    C("ok_interpolation", compose("lam*a + (1-lam)*b", "--set", "lam=0.3"), 0),
    C("ok_power", compose("lam^2*a + b", "--set", "lam=0.5"), 0),
    C("ok_power_stars", compose("(1-lam)**2*a", "--set", "lam=0.5"), 0),
    C("ok_synonyms", compose("a ⊕ 0.5·b ⊖ 0.25×a"), 0),
    C("ok_lambda_name", compose("λ*a", "--set", "λ=0.5"), 0),
    C("ok_canonical_pasted_back", compose("(1 - 2*lam + lam^2)*a", "--set", "lam=0.5"), 0),
    C("ok_divide_by_number", compose("a/4 + b/3"), 0),
    C("ok_mixed_types", compose("a - 0.5*b", adapters=("--adapter", "a={lora_a}", "--adapter", "b={ia3_a}")), 0),
    C("ok_ties", compose("x + y", "--merge", "ties", "--density", "0.5", adapters=SEEDED), 0),
    C("ok_into_empty_folder", compose("a"), 0, "out_empty_dir"),
    C("ok_adapter_through_link_outside", one("{linked}"), 0, "link_outside"),
    # --set
    C("set_nan", compose("lam*a", "--set", "lam=nan")),
    C("set_NaN", compose("lam*a", "--set", "lam=NaN")),
    C("set_inf", compose("lam*a", "--set", "lam=inf")),
    C("set_minus_inf", compose("lam*a", "--set", "lam=-inf")),
    C("set_1e309", compose("lam*a", "--set", "lam=1e309")),
    C("set_1e308_overflows", compose("lam*a", "--set", "lam=1e308")),
    C("set_1e39_overflows_float32", compose("lam*a", "--set", "lam=1e39")),
    C("set_huge_power_overflows", compose("lam^16*a", "--set", "lam=1e30")),
    C("set_text", compose("lam*a", "--set", "lam=abc")),
    C("set_empty_value", compose("lam*a", "--set", "lam=")),
    C("set_no_name", compose("lam*a", "--set", "=0.5")),
    C("set_no_equals", compose("lam*a", "--set", "lam")),
    C("set_twice", compose("lam*a", "--set", "lam=0.5", "--set", "lam=0.6")),
    C("set_hex", compose("lam*a", "--set", "lam=0x10")),
    C("set_huge_digits", compose("lam*a", "--set", "lam=" + "9" * 400)),
    # adapter paths
    C("adapter_traversal_relative", one("../../../../../../../../etc")),
    C("adapter_absolute_etc", one("/etc")),
    C("adapter_absolute_file", one("/etc/passwd")),
    C("adapter_dev_null", one("/dev/null")),
    C("adapter_missing", one("{tmp}/missing")),
    C("adapter_missing_traversal", one("{inp}/../../../nope/../x")),
    C("adapter_empty_path", one("")),
    C("adapter_no_name", ("compose", *BASE, "--adapter", "={lora_a}", *OUT, "--expr", "a")),
    C("adapter_no_equals", ("compose", *BASE, "--adapter", "{lora_a}", *OUT, "--expr", "a")),
    C("adapter_name_twice", ("compose", *BASE, "--adapter", "a={lora_a}", "--adapter", "a={lora_b}", *OUT,
                             "--expr", "a")),  # fmt: skip
    C("adapter_name_traversal", ("compose", *BASE, "--adapter", "../x={lora_a}", *OUT, "--expr", "x")),
    C("adapter_name_absolute", ("compose", *BASE, "--adapter", "/tmp/x={lora_a}", *OUT, "--expr", "a")),
    C("adapter_dangling_link", one("{dangling}"), 2, "dangling_link"),
    C("adapter_link_loop", one("{loop}"), 2, "link_loop"),
    C("adapter_weights_link_passwd", one("{lora_a}"), 2, "weights_link_passwd"),
    C("adapter_weights_link_dangling", one("{lora_a}"), 2, "weights_link_dangling"),
    C("adapter_weights_link_devnull", one("{lora_a}"), 2, "weights_link_devnull"),
    C("adapter_config_link_outside", one("{lora_a}"), 2, "config_link_outside"),
    C("adapter_zip_file", one("{zip}"), 2, "zip_adapter"),
    C("adapter_empty_folder", one("{emptydir}"), 2, "empty_folder"),
    C("adapter_is_base_folder", one("{base}")),
    C("adapter_is_text_file", one("{txt}")),
    # pickles
    C("pth_pickle_opens_a_file", one("{pth}"), 2, "pth_pickle_open"),
    C("pth_pickle_execs_code", one("{pth}"), 2, "pth_pickle_exec"),
    C("pth_torch_save_opens_a_file", one("{pth}"), 2, "pth_torchsave_evil"),
    C("pth_torch_save_execs_code", one("{pth}"), 2, "pth_torchsave_exec"),
    C("pth_not_tensors", one("{pth}"), 2, "pth_not_tensors"),
    C("pth_list", one("{pth}"), 2, "pth_list"),
    C("pth_nan", one("{pth}"), 2, "pth_nan"),
    C("pth_empty", one("{pth}"), 2, "pth_empty"),
    C("pth_junk", one("{pth}"), 2, "pth_junk"),
    C("pth_truncated", one("{pth}"), 2, "pth_truncated"),
    C("pth_is_a_folder", one("{pth}"), 2, "pth_is_folder"),
    C("weights_are_a_pickle", one("{lora_a}"), 2, "lora_weights_pickle"),
    # wrong types, empty, missing
    *(C(name, one("{lora_a}"), 2, name) for name in (
        "lora_config_png", "lora_config_list", "lora_config_null", "lora_config_no_type", "lora_config_utf16",
        "lora_config_deep", "lora_config_huge_int", "lora_config_empty", "lora_weights_json", "lora_weights_zip",
        "lora_weights_png", "lora_weights_empty", "lora_no_weights", "lora_no_config", "lora_weights_renamed_bin",
        "lora_trunc_half", "lora_trunc_last_byte", "lora_trunc_8", "lora_trunc_3", "lora_header_huge",
        "lora_nan", "lora_inf", "lora_wrong_rank_shape", "lora_int_tensor",
    )),  # fmt: skip
    C("red_config_empty", one("{red_a}"), 2, "red_config_empty"),
    C("red_no_weights", one("{red_a}"), 2, "red_no_weights"),
    C("red_trunc", one("{red_a}"), 2, "red_trunc"),
    C("red_neginf", one("{red_a}"), 2, "red_neginf"),
    C("ia3_trunc", one("{ia3_a}"), 2, "ia3_trunc"),
    C("ia3_nan", one("{ia3_a}"), 2, "ia3_nan"),
    C("sparse_weights_empty", one("{sparse_a}"), 2, "sparse_weights_empty"),
    C("sparse_no_config", one("{sparse_a}"), 2, "sparse_no_config"),
    C("sparse_trunc", one("{sparse_a}"), 2, "sparse_trunc"),
    C("sparse_nan", one("{sparse_a}"), 2, "sparse_nan"),
    C("sparse_index_out_of_range", one("{sparse_a}"), 2, "sparse_index_oob"),
    C("sparse_index_negative", one("{sparse_a}"), 2, "sparse_index_negative"),
    C("nan_in_second_adapter", compose("a + b"), 2, "lora_b_nan"),
    # config fields
    *(C(name, one("{" + adapter + "}"), 2, name) for name, adapter, *_ in CONFIG_FIELDS),
    # mismatched bases
    C("gpt2_adapter_on_llama", one("{gpt2_lora}")),
    C("bert_adapter_on_llama", one("{bert_lora}")),
    C("llama_adapter_on_gpt2", one("{lora_a}", base="{gpt2base}")),
    C("mixed_bases_in_one_expression", compose("a + b", adapters=("--adapter", "a={lora_a}", "--adapter",
                                                                  "b={gpt2_lora}"))),  # fmt: skip
    C("base_missing", one("{lora_a}", base="{tmp}/no-base")),
    C("base_is_etc", one("{lora_a}", base="/etc")),
    C("base_is_a_file", one("{lora_a}", base="/etc/passwd")),
    C("base_is_empty_text", one("{lora_a}", base="")),
    C("base_hub_id_offline", one("{lora_a}", base="no-such-org/no-such-model")),
    C("base_traversal", one("{lora_a}", base="../../../../../../etc")),
    C("base_header_truncated_compose", one("{lora_a}"), 2, "base_trunc_header"),
    C("base_config_junk_compose", one("{lora_a}"), 2, "base_config_junk"),
    C("base_nan_generate", generate(), 2, "base_nan", match="NaN"),
    C("base_inf_generate", generate(), 2, "base_inf"),
    C("base_truncated_generate", generate(), 2, "base_trunc_half"),
    C("base_header_truncated_generate", generate(), 2, "base_trunc_header"),
    C("base_config_junk_generate", generate(), 2, "base_config_junk"),
    C("base_config_empty_generate", generate(), 2, "base_config_empty"),
    C("base_no_weights_generate", generate(), 2, "base_no_weights"),
    C("base_unknown_type_generate", generate(), 2, "base_config_unknown_type"),
    # grids
    C("grid_to_inf", sweep(grid=("--grid", "lam=0:inf:1"))),
    C("grid_from_minus_inf", sweep(grid=("--grid", "lam=-inf:0:1"))),
    C("grid_step_inf", sweep(grid=("--grid", "lam=0:1:inf"))),
    C("grid_tiny_step", sweep(grid=("--grid", "lam=0:1:1e-7"))),
    C("grid_huge_range_tiny_step", sweep(grid=("--grid", "lam=0:1e9:1e-9"))),
    C("grid_nan", sweep(grid=("--grid", "lam=nan"))),
    C("grid_nan_start", sweep(grid=("--grid", "lam=nan:1:0.1"))),
    C("grid_list_with_inf", sweep(grid=("--grid", "lam=0,inf"))),
    C("grid_zero_step", sweep(grid=("--grid", "lam=0:1:0"))),
    C("grid_negative_step", sweep(grid=("--grid", "lam=0:1:-0.1"))),
    C("grid_reversed", sweep(grid=("--grid", "lam=1:0:0.1"))),
    C("grid_two_parts", sweep(grid=("--grid", "lam=0:1"))),
    C("grid_four_parts", sweep(grid=("--grid", "lam=0:1:0.1:5"))),
    C("grid_words", sweep(grid=("--grid", "lam=a,b"))),
    C("grid_no_values", sweep(grid=("--grid", "lam="))),
    C("grid_no_name", sweep(grid=("--grid", "=0:1:0.1"))),
    C("grid_bad_name", sweep(grid=("--grid", "1x=0:1:0.1"))),
    C("grid_twice", sweep(grid=("--grid", "lam=0,1", "--grid", "lam=0,0.5"))),
    C("grid_two_big", sweep(expr="x*a + y*b", grid=("--grid", "x=0:440:1", "--grid", "y=0:440:1")),
      match="in all"),
    C("grid_three", sweep(expr="x*a + y*b + z*a", grid=("--grid", "x=0,1", "--grid", "y=0,1", "--grid", "z=0,1"))),
    C("grid_none", sweep(grid=())),
    C("grid_wrong_parameter", sweep(expr="mu*a", grid=("--grid", "lam=0,1"))),
    C("grid_overflowing_values", sweep(expr="lam*a", grid=("--grid", "lam=1e308:1e308:1"))),
    C("sweep_bad_expression", sweep(expr="a*b")),
    C("sweep_no_task", sweep(task=())),
    # counts
    C("n_minus_5", sweep("--n", "-5", task=("--task", "{csv}"))),
    C("n_zero", sweep("--n", "0", task=("--task", "{csv}"))),
    C("n_huge", sweep("--n", str(10**9), task=("--task", "{csv}"))),
    C("n_text", sweep("--n", "ten", task=("--task", "{csv}"))),
    C("samples_zero", sweep("--samples", "0", task=("--task", "toxicity"))),
    C("samples_negative", sweep("--samples", "-1", task=("--task", "toxicity"))),
    C("samples_huge", sweep("--samples", str(10**9), task=("--task", "toxicity"))),
    C("sweep_seed_2e70_toxicity", sweep("--samples", "1", "--seed", str(2**70), task=("--task", "toxicity"))),
    C("sweep_empty_prompt", sweep("--samples", "1", "--prompt", "", task=("--task", "toxicity"))),
    C("max_new_tokens_zero", generate(tokens="0")),
    C("max_new_tokens_negative", generate(tokens="-1")),
    C("max_new_tokens_huge", generate(tokens=str(10**9))),
    C("max_new_tokens_text", generate(tokens="many")),
    C("generate_seed_2e70", generate("--seed", str(2**70)), match="seed"),
    C("generate_seed_negative", generate("--seed", "-1")),
    C("dare_seed_2e80", compose("x + y", "--merge", "dare_linear", "--density", "0.5", "--seed", str(2**80),
                                adapters=SEEDED), match="seed"),  # fmt: skip
    C("dare_seed_negative", compose("x + y", "--merge", "dare_ties", "--density", "0.5", "--seed", "-3",
                                    adapters=SEEDED)),  # fmt: skip
    C("density_zero", compose("x + y", "--merge", "ties", "--density", "0", adapters=SEEDED)),
    C("density_two", compose("x + y", "--merge", "ties", "--density", "2", adapters=SEEDED)),
    C("density_nan", compose("x + y", "--merge", "dare_linear", "--density", "nan", adapters=SEEDED)),
    C("density_inf", compose("x + y", "--merge", "magnitude_prune", "--density", "inf", adapters=SEEDED)),
    C("density_negative", compose("x + y", "--merge", "ties", "--density", "-0.5", adapters=SEEDED)),
    C("density_text", compose("x + y", "--merge", "ties", "--density", "half", adapters=SEEDED)),
    # generate
    C("generate_device_tpu", generate("--device", "tpu"), match="device"),
    C("generate_device_meta", generate("--device", "meta"), match="device"),
    C("generate_device_cuda_99", generate("--device", "cuda:99")),
    C("generate_device_empty", generate("--device", "")),
    C("generate_dtype_bogus", generate("--dtype", "float8")),
    C("generate_dtype_half_on_cpu", generate("--device", "cpu", "--dtype", "float16")),
    C("generate_empty_prompt", generate(prompt=""), match="prompt"),
    C("generate_blank_prompt", generate(prompt=" \n\t ")),
    C("generate_chat_without_template", generate("--chat"), 2, "base_no_chat_template"),
    C("generate_bad_expression", generate("--adapter", "a={lora_a}", "--expr", "a*a")),
    C("generate_mismatched_adapter", generate("--adapter", "a={gpt2_lora}", "--expr", "a")),
    C("generate_overflowing_composition", generate("--adapter", "a={lora_a}", "--expr", "1e39*a")),
    C("generate_nan_adapter", generate("--adapter", "a={lora_a}", "--expr", "a"), 2, "lora_nan"),
    C("ok_generate", generate("--greedy"), 0),
    C("ok_generate_composed", generate("--adapter", "a={lora_a}", "--expr", "-0.5*a"), 0),
    # tasks
    C("ppl_not_utf8", sweep(task=("--task", "ppl:{latin1}")), 2, "latin1_txt", match="UTF-8"),
    C("ppl_empty_file", sweep(task=("--task", "ppl:{emptytxt}")), 2, "empty_txt"),
    C("ppl_blank_file", sweep(task=("--task", "ppl:{blanktxt}")), 2, "blank_txt"),
    C("ppl_missing_file", sweep(task=("--task", "ppl:{tmp}/missing.txt"))),
    C("ppl_folder", sweep(task=("--task", "ppl:{tmp}"))),
    C("ppl_dev_null", sweep(task=("--task", "ppl:/dev/null"))),
    C("ppl_no_path", sweep(task=("--task", "ppl:"))),
    C("task_unknown_zoo_name", sweep(task=("--task", "no-such-task"))),
    C("task_traversal", sweep(task=("--task", "../../../../../../etc/passwd"))),
    C("task_csv_no_label", sweep(task=("--task", "{nolabel_csv}")), 2, "csv_no_label"),
    C("task_csv_empty", sweep(task=("--task", "{empty_csv}")), 2, "csv_empty"),
    C("task_csv_header_only", sweep(task=("--task", "{header_csv}")), 2, "csv_header_only"),
    C("task_csv_binary", sweep(task=("--task", "{binary_csv}")), 2, "csv_binary"),
    C("detoxify_without_config", sweep("--detoxify-checkpoint", "{tmp}/nope.ckpt", task=("--task", "toxicity"))),
    C("detoxify_missing_checkpoint", sweep("--detoxify-checkpoint", "{tmp}/nope.ckpt", "--detoxify-config", "{base}",
                                           task=("--task", "toxicity"))),  # fmt: skip
    C("sweep_unknown_preset", ("sweep", "--preset", "../../etc/passwd", *OUT)),
    C("sweep_missing_adapter", sweep("--adapter", "c={tmp}/nope")),
    C("ok_sweep", sweep(grid=("--grid", "lam=0,1")), 0),
    # --out
    C("out_existing_file_compose", compose("a"), 2, "out_file"),
    C("out_nonempty_compose", compose("a"), 2, "out_nonempty"),
    C("out_nonempty_sweep", sweep(), 2, "out_nonempty"),
    C("out_under_file_compose", compose("a"), 2, "out_under_file"),
    C("out_under_file_sweep", sweep(), 2, "out_under_file"),
    C("out_dangling_link_compose", compose("a"), 2, "out_dangling"),
    C("out_dangling_link_sweep", sweep(), 2, "out_dangling"),
    C("out_link_to_empty_dir", compose("a"), 2, "out_link_to_empty_dir"),
    C("out_name_too_long", compose("a"), 2, "out_long_name"),
    C("out_is_an_input_folder", compose("a"), 2, "out_is_input"),
    C("out_traversal_to_inputs", compose("a"), 2, "out_traversal"),
    C("out_root", ("compose", *BASE, *AB, "--out", "/", "--expr", "a")),
    C("out_empty_text", ("compose", *BASE, *AB, "--out", "", "--expr", "a")),
    C("out_dev_null", ("compose", *BASE, *AB, "--out", "/dev/null", "--expr", "a")),
    C("out_under_proc", ("compose", *BASE, *AB, "--out", "/proc/self/x/out", "--expr", "a")),
    # zoo
    C("zoo_train_unknown", ("zoo", "train", "../../etc/passwd")),
    C("zoo_train_samples_negative", ("zoo", "train", "minilm-sentiment-s0-lora", "--samples", "-1")),
    C("zoo_study_out_under_file", ("zoo", "study", "--out", "{tmp}/file/x.md"), 2, "out_under_file"),
    C("zoo_study_out_folder", ("zoo", "study", "--out", "{tmp}")),
    C("zoo_unknown_action", ("zoo", "destroy")),
    # the CLI's own conventions
    C("ctrl_c_while_loading", compose("a"), 130, "ctrl_c_on_load"),
    C("ctrl_c_after_writing_staging", compose("a"), 130, "ctrl_c_on_save"),
    C("bug_is_one_internal_error_line", compose("a"), 1, "bug_on_load"),
]

IDS = [case.id for case in CLI_CASES]
assert len(IDS) == len(set(IDS)), sorted(i for i in IDS if IDS.count(i) > 1)
assert all(case.setup in SETUPS for case in CLI_CASES if case.setup), [c.setup for c in CLI_CASES if c.setup
                                                                        and c.setup not in SETUPS]  # fmt: skip
