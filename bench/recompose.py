"""Recompose latency, cache bytes and generation speed, against the naive PEFT ways.

    .venv/bin/python bench/recompose.py [--base smollm2-135m-instruct] [--repeats 20]

On SmolLM2-135M-Instruct with two rank-8 LoRAs on q_proj and v_proj (random factors:
this measures speed, not skill), it prints a markdown table of:

1. the time from a new λ to the composition being live (cold: not cached; warm: cached),
   the floor (bytes of the touched weights read once and written once, over a copy
   bandwidth measured in this run), and PEFT's `add_weighted_adapter` + `set_adapter`
   and deepcopy + `merge_and_unload`, all in the same run;
2. bytes per cached composition over the bytes of the parameters it touches;
3. generation tokens/s of the composed model over the base model, and of PEFT's
   unmerged forward over the base model.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path

import torch


def timed(fn, repeats: int) -> list[float]:
    times = []
    for index in range(repeats):
        start = time.perf_counter()
        fn(index)
        times.append(time.perf_counter() - start)
    return times


def copy_bandwidth(nbytes: int = 256 << 20) -> float:
    """Bytes per second that one read plus one write of a large float tensor moves."""
    source = torch.rand(nbytes // 4)
    target = torch.empty_like(source)
    target.copy_(source)
    best = min(timed(lambda _: target.copy_(source), 5))
    return 2 * nbytes / best


def make_loras(base_folder: Path, out: Path, rank: int) -> list[Path]:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    paths = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_pretrained(base_folder)
        peft_model = get_peft_model(
            model, LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=["q_proj", "v_proj"], lora_dropout=0.0)
        )
        with torch.no_grad():
            for name, parameter in peft_model.named_parameters():
                if "lora_B" in name:
                    parameter.normal_(0, 0.02)
        peft_model.save_pretrained(out / f"lora{seed}")
        paths.append(out / f"lora{seed}")
    return paths


def tokens_per_second(model, tokenizer, new_tokens: int) -> float:
    inputs = tokenizer("The history of the city begins", return_tensors="pt")
    settings = {"max_new_tokens": new_tokens, "min_new_tokens": new_tokens, "do_sample": False, "pad_token_id": 0}
    with torch.inference_mode():
        model.generate(**inputs, **{**settings, "max_new_tokens": 4, "min_new_tokens": 4})
        seconds = timed(lambda _: model.generate(**inputs, **settings), 1)[0]
    return new_tokens / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="smollm2-135m-instruct")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=48)
    args = parser.parse_args()

    import transformers
    from peft import PeftModel

    from workbench.runtime import SessionManager
    from workbench.runtime.cache import tensor_bytes
    from workbench.runtime.loading import resolve_folder

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    folder, _ = resolve_folder(args.base)
    work = Path(tempfile.mkdtemp())
    paths = make_loras(Path(folder), work, args.rank)

    manager = SessionManager()
    manager.rebuild("bench", args.base, {"a": paths[0], "b": paths[1]})
    base = manager.base(args.base)
    lambdas = [round(0.05 + 0.9 * i / (args.repeats - 1), 4) for i in range(args.repeats)]

    def recompose(index: int) -> None:
        manager.set_composition("bench", "lam*a + (1-lam)*b", {"lam": lambdas[index]})
        with manager.model_for("bench"):
            pass

    cold = timed(recompose, args.repeats)
    warm = timed(recompose, args.repeats)
    stats = manager.stats()
    assert stats.misses == args.repeats and stats.hits >= args.repeats, stats
    one_entry = stats.bytes // stats.entries

    def recompose_new(index: int) -> None:
        manager.set_composition("bench", "lam*a + (1-lam)*b", {"lam": 0.001 * (index + 1) + 0.5 * phase[0]})
        with manager.model_for("bench"):
            pass

    phase = [1]
    manager.cache.budget = 2 * one_entry  # steady state of a full cache: each miss evicts, and folds into that memory
    full = timed(recompose_new, args.repeats)
    phase[0] = 2
    manager.cache.budget = 0  # no cache at all (a forked ZeroGPU worker): each call re-folds
    uncached = timed(recompose_new, args.repeats)
    manager.cache.budget = 1 << 30
    touched = {n: t for n, t in base.base_tensors.items() if n.endswith(("q_proj.weight", "v_proj.weight"))}
    touched_bytes = tensor_bytes(touched)
    bandwidth = copy_bandwidth()
    floor = 2 * touched_bytes / bandwidth
    bytes_ratio = stats.bytes / stats.entries / touched_bytes

    peft_model = PeftModel.from_pretrained(
        transformers.AutoModelForCausalLM.from_pretrained(folder), str(paths[0]), adapter_name="a"
    )
    peft_model.load_adapter(str(paths[1]), adapter_name="b")
    peft_model.eval()

    def peft_weighted(index: int) -> None:
        name = f"m{index}"
        lam = lambdas[index]
        peft_model.add_weighted_adapter(["a", "b"], [lam, 1 - lam], adapter_name=name, combination_type="cat")
        peft_model.set_adapter(name)

    peft_times = timed(peft_weighted, args.repeats)

    # Generation speeds interleaved over rounds (best of each), so machine noise hits all three alike.
    manager.set_composition("bench", "lam*a + (1-lam)*b", {"lam": 0.3})
    speeds: dict[str, list[float]] = {"base": [], "composed": [], "peft": []}
    for _ in range(5):
        with manager.model_for("bench", use_base=True):
            speeds["base"].append(tokens_per_second(base.model, base.tokenizer, args.new_tokens))
        with manager.model_for("bench"):
            speeds["composed"].append(tokens_per_second(base.model, base.tokenizer, args.new_tokens))
        speeds["peft"].append(tokens_per_second(peft_model, base.tokenizer, args.new_tokens))
    base_tps, composed_tps, peft_tps = (max(speeds[k]) for k in ("base", "composed", "peft"))

    def peft_deepcopy_merge(index: int) -> None:
        clone = copy.deepcopy(peft_model)
        clone.set_adapter(f"m{index}")
        clone.merge_and_unload()

    merge_times = timed(peft_deepcopy_merge, min(5, args.repeats))

    median = statistics.median
    rows = [
        ("recompose, cold, cache filling (fresh memory)", f"{median(cold) * 1e3:.1f} ms",
         f"{median(cold) / floor:.1f}× floor"),
        ("recompose, cold, cache full (reuses evicted memory)", f"{median(full) * 1e3:.1f} ms",
         f"{median(full) / floor:.1f}× floor"),
        ("recompose, cold, no cache", f"{median(uncached) * 1e3:.1f} ms", f"{median(uncached) / floor:.1f}× floor"),
        ("recompose, warm (λ cached)", f"{median(warm) * 1e3:.2f} ms", ""),
        ("floor: touched bytes read + written", f"{floor * 1e3:.1f} ms", f"{touched_bytes / 2**20:.1f} MiB at "
         f"{bandwidth / 2**30:.1f} GiB/s"),
        ("PEFT add_weighted_adapter + set_adapter", f"{median(peft_times) * 1e3:.1f} ms",
         f"ours cold is {median(peft_times) / median(cold):.1f}× (filling) to "
         f"{median(peft_times) / median(full):.1f}× (full) faster"),
        ("PEFT deepcopy + merge_and_unload", f"{median(merge_times) * 1e3:.0f} ms",
         f"ours cold is {median(merge_times) / median(cold):.0f}× to {median(merge_times) / median(full):.0f}× faster"),
        ("cached bytes / touched parameter bytes", f"{bytes_ratio:.3f}", f"{stats.bytes / stats.entries / 2**20:.1f} "
         "MiB per composition"),
        ("generation, base model", f"{base_tps:.1f} tok/s", ""),
        ("generation, composed (folded)", f"{composed_tps:.1f} tok/s", f"{composed_tps / base_tps:.3f}× base"),
        ("generation, PEFT unmerged adapter", f"{peft_tps:.1f} tok/s", f"{peft_tps / base_tps:.3f}× base"),
    ]  # fmt: skip
    print(f"base {args.base}, two rank-{args.rank} LoRAs on q_proj,v_proj, {torch.get_num_threads()} threads, "
          f"device {base.device}, median of {args.repeats}")  # fmt: skip
    print("| measure | value | comparison |\n|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
