"""Keyword-spotting data: Speech Commands, test-set layouts, user folders, synthetic wake words."""
import tflm_kws  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from tflm_kws.data.loader import KwsData, load
from tflm_kws.data.spec import (DataSpec, SILENCE_LABEL, STANDARD_WORDS, UNKNOWN_LABEL)

__all__ = ["DataSpec", "KwsData", "load", "SILENCE_LABEL", "UNKNOWN_LABEL", "STANDARD_WORDS"]
