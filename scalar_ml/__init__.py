"""scalar-ml: translation-equivariant networks on dual-representation lattice phi^4 data.

Layout (physics -> data -> models -> training -> evaluation):

- :mod:`scalar_ml.physics`    dual flux representation, weights W(f), worm sampler, observables;
                              :mod:`scalar_ml.physics.theory` is what the rest may know of it
- :mod:`scalar_ml.tasks`      one object per learning task (targets, labels, loss, metrics, figures)
- :mod:`scalar_ml.data`       ensemble cache, flux-violation insertion, the Lightning data module
- :mod:`scalar_ml.models`     EQ / ST / FL networks from layer specs, presets, equivariance check
- :mod:`scalar_ml.training`   LightningModule and the ``train(cfg)`` entry used by ``train.py``
- :mod:`scalar_ml.evaluation` grids of lattice sizes and physics parameters, tables and plots

The apps :mod:`scalar_ml.train`, :mod:`scalar_ml.evaluate` and :mod:`scalar_ml.sample` (console
scripts ``scalar-ml-train``, ``scalar-ml-evaluate``, ``scalar-ml-sample``; in a checkout also
``python train.py`` and ``python evaluate.py``) compose their configs from :data:`scalar_ml.paths.CONF_DIR`,
which the wheel carries as package data. "SPEC §N" in the docstrings is section N of
``docs/spec.md``.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("scalar-ml")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]

from scalar_ml.paths import register_resolvers as _register_resolvers
from scalar_ml.schemas import register_schemas as _register_schemas

_register_resolvers()
_register_schemas()
