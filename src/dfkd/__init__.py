"""dfkd: data-free knowledge distillation (PRE-DFKD generative pseudo replay and its baselines).

Importing the package has no side effects (no files written, no seeds or threads changed).

    import dfkd
    data = dfkd.load_dataset("digits")
    teacher, kw = dfkd.new_teacher_model("lenet5", data.info, seed=0)
    dfkd.train_teacher(teacher, data, dfkd.recipe("digits"))
    result = dfkd.distill(teacher, "lenet5-half", method="pre-dfkd", info=data.info, eval_data=data)
"""
from .checkpoint import load_checkpoint, load_model, model_payload, save_checkpoint
from .data import DatasetInfo, ImageDataset, list_datasets, load_dataset
from .engine import DistillResult, distill
from .errors import DfkdError
from .evaluate import accuracy
from .export import export
from .models import count_parameters, create_model, list_models
from .teacher import TeacherConfig, new_teacher_model, recipe, train_teacher

__version__ = "0.1.0"

__all__ = [
    "DfkdError", "DatasetInfo", "ImageDataset", "load_dataset", "list_datasets", "create_model", "list_models",
    "count_parameters", "TeacherConfig", "new_teacher_model", "recipe", "train_teacher", "accuracy", "load_model",
    "load_checkpoint", "save_checkpoint", "model_payload", "distill", "DistillResult", "export", "__version__",
]
