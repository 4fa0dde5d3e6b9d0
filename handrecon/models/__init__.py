"""Model families and the preset registry.

>>> from handrecon.models import build_model, list_models, save_model, load_model
>>> model = build_model("tiny")                # presets by name; overrides as keyword arguments
>>> out = model(images)                        # dict: vertices (B,778,3), keypoints_2d (B,21,2), ...
"""

from handrecon.models.registry import build_model, list_models, load_model, model_info, register_model, save_model

__all__ = ["build_model", "list_models", "load_model", "model_info", "register_model", "save_model"]
