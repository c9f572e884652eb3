"""Rebuild the tiny example the README's compose command uses (seeded, so reproducible).

A random 2-layer LLaMA (hidden size 32, vocabulary 128) and two random PEFT LoRAs on it.
They carry no skill: they exist so the CLI can be tried in seconds, offline. The real,
trained modules live in the zoo.

    python assets/examples/make_tiny.py
"""

import json
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM

from workbench.tiny import save_char_tokenizer

HERE = Path(__file__).parent


def main() -> None:
    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=128, max_position_embeddings=64,
    )  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(HERE / "tiny-llama")
    save_char_tokenizer(HERE / "tiny-llama")
    for seed, name in ((1, "lora-a"), (2, "lora-b")):
        torch.manual_seed(seed)
        model = LlamaForCausalLM.from_pretrained(HERE / "tiny-llama")
        lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.0)
        peft_model = get_peft_model(model, lora)
        with torch.no_grad():
            for parameter_name, parameter in peft_model.named_parameters():
                if "lora_B" in parameter_name:
                    parameter.normal_(0, 0.1)
        peft_model.save_pretrained(HERE / name)
        (HERE / name / "README.md").unlink(missing_ok=True)
        config_path = HERE / name / "adapter_config.json"
        adapter_config = json.loads(config_path.read_text())
        adapter_config["base_model_name_or_path"] = "assets/examples/tiny-llama"  # not this machine's path
        config_path.write_text(json.dumps(adapter_config, indent=2) + "\n")


if __name__ == "__main__":
    main()
