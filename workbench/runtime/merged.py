"""A composition merged into its base, written as a plain transformers model.

Every PEM type folds into the base's weights (`workbench.modules.edits`), so a serving
engine that takes no adapter of a type ((IA)³, RED, sparse) or of a mix still serves the
composition as an ordinary model. The weights written are the ones the workbench runs:
the session's composition made live in the loaded base (`SessionManager.model_for`),
then saved with the base's tokenizer and generation config, in safetensors.

Two things have no place in a plain checkout: a bias RED adds to a Linear the
architecture builds without one (LLaMA's down_proj; transformers would drop it on
loading), and a task head a module carries for a bare encoder. Both are refused.
"""

from __future__ import annotations

from pathlib import Path

from workbench.algebra.compose import check_exportable
from workbench.errors import IncompatibleError, WorkbenchError
from workbench.runtime.session import SessionManager


def save_merged(manager: SessionManager, session: str, folder: Path) -> str:
    """Write `session`'s composition merged into its base to `folder`; returns the model's
    class name. Raises IncompatibleError, before writing, for what a plain model cannot hold."""
    composition = manager.state(session).composition
    if composition is None:
        raise WorkbenchError("there is no composition to merge; give an expression")
    check_exportable(composition)
    if composition.heads:
        heads = ", ".join(sorted({module for head in composition.heads.values() for module in head.modules}))
        raise IncompatibleError(f"the composition carries a task head ({heads}), which a merged plain model has no "
                                "place for; export the adapter instead (without --merged)")  # fmt: skip
    with manager.model_for(session) as loaded:
        model = loaded.model
        added = sorted(set(dict(model.named_parameters(remove_duplicate=False))) - set(loaded.base_tensors))
        if added:
            raise IncompatibleError(
                f"the composition adds {added[0]} ({len(added)} such parameter(s)), which {type(model).__name__} "
                "builds without, so a plain model cannot hold it (RED's shift on a Linear with no bias); "
                "export the adapter instead (without --merged)"
            )
        model.save_pretrained(folder)
        if loaded.tokenizer is not None:
            loaded.tokenizer.save_pretrained(folder)
    return type(model).__name__
