"""The scikit-learn estimator contract, without importing scikit-learn.

clvcast's RFM scorer and purchase models follow scikit-learn's habits: parameters are the
arguments of ``__init__``, ``get_params``/``set_params`` read and set them (``part__name``
for a part's), ``fit`` returns ``self`` and learned state ends in ``_``. So
``sklearn.base.clone``, ``set_params`` and scikit-learn's tools work on them. Inheriting from
``sklearn.base.BaseEstimator`` would make every command import scikit-learn (and SciPy's
sparse stack with it): a second or more before ``clvcast rfm`` reads its first row. The
small part of that contract clvcast uses is here; the churn classifier, which needs
scikit-learn anyway, still inherits from it.
"""

from __future__ import annotations

import inspect
from typing import Any

from clvcast.errors import NotFittedError


class Estimator:
    """Base class: parameters from ``__init__``'s signature, as scikit-learn's."""

    @classmethod
    def _param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return sorted(
            name
            for name, parameter in signature.parameters.items()
            if name != "self"
            and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
        )

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The parameters by name; with ``deep``, a part's as ``part__name`` too."""
        params = {}
        for name in self._param_names():
            value = getattr(self, name)
            params[name] = value
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                params.update({f"{name}__{k}": v for k, v in value.get_params().items()})
        return params

    def set_params(self, **params: Any) -> Estimator:
        """Set parameters (``part__name`` for a part's); returns self."""
        names = self._param_names()
        nested: dict[str, dict[str, Any]] = {}
        for key, value in params.items():
            name, _, sub = key.partition("__")
            if name not in names:
                raise ValueError(
                    f"{type(self).__name__} has no parameter {name!r}; parameters: {names}."
                )
            if sub:
                nested.setdefault(name, {})[sub] = value
            else:
                setattr(self, name, value)
        for name, values in nested.items():
            getattr(self, name).set_params(**values)
        return self

    def __repr__(self) -> str:
        defaults = {
            name: parameter.default
            for name, parameter in inspect.signature(type(self).__init__).parameters.items()
        }
        changed = [
            f"{name}={value!r}"
            for name, value in self.get_params(deep=False).items()
            if not _same_value(value, defaults.get(name, inspect.Parameter.empty))
        ]
        return f"{type(self).__name__}({', '.join(changed)})"


def _same_value(value: Any, default: Any) -> bool:
    try:
        return bool(value == default)
    except (TypeError, ValueError):
        return value is default


def clone(estimator: Any) -> Any:
    """A new, unfitted estimator with the same parameters (parts cloned too), as
    ``sklearn.base.clone`` makes one."""
    params = estimator.get_params(deep=False)
    copies = {
        name: clone(value)
        if hasattr(value, "get_params") and not isinstance(value, type)
        else value
        for name, value in params.items()
    }
    return type(estimator)(**copies)


def check_fitted(estimator: Any, *attributes: str) -> None:
    """Raise :class:`~clvcast.errors.NotFittedError` unless ``estimator`` has every fitted
    attribute in ``attributes`` (default: any attribute ending in ``_``)."""
    if attributes:
        fitted = all(hasattr(estimator, name) for name in attributes)
    else:
        fitted = any(k.endswith("_") and not k.startswith("__") for k in vars(estimator))
    if not fitted:
        raise NotFittedError(
            f"This {type(estimator).__name__} is not fitted yet: call fit before using it."
        )
