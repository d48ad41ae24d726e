"""The MLflow pyfunc model of a clvcast run, as code (MLflow's "models from code").

:class:`~clvcast.tracking.MlflowStore` logs this file, not a pickled Python object, as
the model's code: a registered version holds this file, ``MLmodel`` and clvcast's own model
file (JSON and allow-listed types), and no pickle at all. ``mlflow.pyfunc.load_model``
runs this file, which only builds clvcast's installed wrapper.
"""

import mlflow

from clvcast.tracking import ClvcastPyfuncModel

mlflow.models.set_model(ClvcastPyfuncModel())
