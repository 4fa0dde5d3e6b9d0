"""handrecon: camera-space 3D hand mesh recovery from a single RGB image.

Subpackages: ``handrecon.hand`` (open hand model, MANO loading), ``handrecon.mesh`` (topology, spirals,
mesh files), ``handrecon.render`` (previews). See README.md.

>>> from handrecon import Predictor                  # imported on first use: ``import handrecon`` stays light
>>> pred = Predictor.from_pretrained().predict("hand.jpg")
"""

__version__ = "0.1.0"
__all__ = ["__version__", "Predictor", "Prediction"]

_LAZY = {"Predictor": "handrecon.predict", "Prediction": "handrecon.predict"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'handrecon' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
