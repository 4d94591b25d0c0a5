"""Switching the active LoRA adapter in microseconds.

``PeftModel.set_adapter`` walks every module of the model and, in every LoRA layer,
every adapter's parameters to set ``requires_grad``; ``disable_adapter()`` walks them
again. With four adapters on gemma-3-270m a switch and its restore cost ~7 ms, the
time of ~30 matrix-vector products. Our adapters are loaded frozen
(``is_trainable=False``) and only ever run for inference, so a switch needs none of
that: it only has to change which adapter each LoRA layer runs. :class:`AdapterSwitch`
lists the LoRA layers once (after every adapter load) and flips their two state
fields, the ones peft's own ``set_adapter`` / ``enable_adapters`` write
(``_active_adapter``, ``_disable_adapters``), plus the model-level ``active_adapter``.
``tests/test_backbone_speed.py`` pins the result to peft's own switching.

Models with peft auxiliary modules (``modules_to_save``, trainable tokens) fall back to
peft's ``set_adapter``: those wrappers keep more state.
"""

from __future__ import annotations

from typing import Any

from memlora_engine.errors import require

__all__ = ["AdapterState", "AdapterSwitch"]

AdapterState = tuple[str, bool]
"""(active adapter name, adapters disabled)"""


class AdapterSwitch:
    """Fast adapter switching on a ``peft.PeftModel`` whose adapters are all frozen.

    Args:
        peft_model: the model; call :meth:`refresh` after loading or deleting an adapter.
    """

    def __init__(self, peft_model: Any) -> None:
        self._model = peft_model
        self._layers: list[Any] = []
        self._fast = False
        self.refresh()

    def refresh(self) -> None:
        """Re-list the LoRA layers (after an adapter was loaded or deleted)."""
        peft = require("peft", "hf")
        from peft.tuners.tuners_utils import BaseTunerLayer
        from peft.utils.other import AuxiliaryTrainingWrapper

        modules = list(self._model.base_model.model.modules())
        self._layers = [m for m in modules if isinstance(m, BaseTunerLayer)]
        self._fast = isinstance(self._model, peft.PeftModel) and not any(
            isinstance(m, AuxiliaryTrainingWrapper) for m in modules
        )

    def state(self) -> AdapterState:
        """The current (active adapter, disabled) pair, to restore later."""
        disabled = bool(self._layers) and all(layer.disable_adapters for layer in self._layers)
        return str(self._model.active_adapter), disabled

    def activate(self, adapter: str) -> None:
        """Run ``adapter`` (enabled) from the next forward on."""
        self.restore((adapter, False))

    def disable(self) -> None:
        """Run the base model (the active adapter stays selected, switched off)."""
        self.restore((str(self._model.active_adapter), True))

    def restore(self, state: AdapterState) -> None:
        """Go back to a state from :meth:`state`."""
        adapter, disabled = state
        if not self._fast:
            if disabled:
                self._model.base_model.disable_adapter_layers()
            else:
                self._model.base_model.enable_adapter_layers()  # makes the adapter trainable ...
            self._model.set_adapter(adapter, inference_mode=True)  # ... so freeze it again
            return
        self._model.active_adapter = adapter  # PeftModel's and, through it, the tuner's record
        self._model.base_model.active_adapter = adapter
        names = [adapter]
        for layer in self._layers:
            layer._active_adapter = names
            layer._disable_adapters = disabled
