"""Zero-shot evaluation API (the implementation lives in :mod:`lightclip.evaluation`)."""

from lightclip.evaluation import (
    DatasetUnavailable,
    EvalConfig,
    evaluate_dataset,
    evaluate_model,
    markdown_table,
    write_results,
)

__all__ = ["DatasetUnavailable", "EvalConfig", "evaluate_dataset", "evaluate_model", "markdown_table", "write_results"]
