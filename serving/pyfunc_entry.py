"""MLflow "models from code" entry point: the registry logs this file instead of a pickle.

Loading runs it, so `mlflow.pyfunc.load_model(...)` needs the `thumbloop` distribution installed
(the model's pip requirements name it); nothing is unpickled.
"""

from mlflow.models import set_model

from serving.pyfunc import ThumbloopPyfunc

set_model(ThumbloopPyfunc())
