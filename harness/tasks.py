"""The two ABAW challenges this harness covers: their names, class order, file headers and invalid-label markers."""

from typing import Literal

Task = Literal["va", "expr"]
TASKS: tuple[Task, ...] = ("va", "expr")

EXPR_CLASSES: tuple[str, ...] = ("Neutral", "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise", "Other")
NUM_EXPR_CLASSES = len(EXPR_CLASSES)
VA_DIMENSIONS: tuple[str, ...] = ("valence", "arousal")

VA_INVALID = -5.0
EXPR_INVALID = -1

ANNOTATION_HEADER: dict[Task, str] = {"va": ",".join(VA_DIMENSIONS), "expr": ",".join(EXPR_CLASSES)}
PREDICTION_HEADER: dict[Task, str] = {task: "image_location," + header for task, header in ANNOTATION_HEADER.items()}
