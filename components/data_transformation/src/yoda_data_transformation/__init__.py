"""Step 1 of the Yoda pipeline: raw sentences CSV -> conversational train/test JSON Lines."""

from yoda_data_transformation.transform import (
    TARGET_COLUMNS,
    TransformResult,
    build_conversations,
    clean_rows,
    parse_raw_csv,
    split_records,
    to_conversation,
    transform,
)

__all__ = [
    "TARGET_COLUMNS",
    "TransformResult",
    "build_conversations",
    "clean_rows",
    "parse_raw_csv",
    "split_records",
    "to_conversation",
    "transform",
]
