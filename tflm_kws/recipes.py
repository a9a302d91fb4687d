"""Each zoo model's default training recipe, chosen on the validation split.

`training.config_from_options` (and so `python -m training.train --model=X`, the benchmark and
notebooks) starts from `recipe(X)` and lets every option the caller gives win, key by key for
`data_params`. The values come from `python -m tflm_kws.recipe_search` on the Speech Commands dev
set (`bench/recipe_search.md`, validation split only; docs/training.md says what was tried): a
recipe is a finding of that search, so change it only with a search row that supports it.
"""
import copy

# Training options a recipe may set: config_from_options' options that describe *how* to train,
# not what (data, model, output) or where.
TRAINING_OPTIONS = ("epochs", "batch_size", "learning_rate", "lr_schedule", "warmup_fraction",
                    "weight_decay", "mixup_alpha", "label_smoothing")
# DataSpec fields a recipe may set: the augmentation, not which clips.
DATA_OPTIONS = ("augment_variants", "time_shift_ms", "background_frequency", "snr_db_min",
                "snr_db_max", "time_masks", "time_mask_max_frames", "freq_masks",
                "freq_mask_max_channels")

# The recipe every model had before the search: the search's candidates are changes over it, the
# over-parameterization study's runs use it, and a model without a searched recipe keeps it.
BASE_RECIPE = {"epochs": 30, "batch_size": 100, "learning_rate": 3e-3, "lr_schedule": "cosine",
               "warmup_fraction": 0.05, "weight_decay": 1e-2, "mixup_alpha": 0.0,
               "label_smoothing": 0.0,
               "data_params": {"augment_variants": 4, "time_shift_ms": 100.0,
                               "background_frequency": 0.8, "snr_db_min": 0.0,
                               "snr_db_max": 20.0, "time_masks": 2, "time_mask_max_frames": 5,
                               "freq_masks": 2, "freq_mask_max_channels": 4}}

# The search's "light SpecAugment" (1 x 3 frames, 1 x 2 channels instead of 2 x 5, 2 x 4).
LIGHT_SPECAUGMENT = {"time_masks": 1, "time_mask_max_frames": 3, "freq_masks": 1,
                     "freq_mask_max_channels": 2}
# Changes over BASE_RECIPE per model, each the best on validation of the search's candidates for
# that model (the candidate's name in the comment; its row in bench/recipe_search.md).
_CHANGES = {
    # repcnn_e160_spec_light_lr01
    "repcnn": {"epochs": 160, "learning_rate": 0.01, "data_params": dict(LIGHT_SPECAUGMENT)},
    # cnn_e160_spec_light_noise_mild
    "cnn": {"epochs": 160, "data_params": dict(LIGHT_SPECAUGMENT, background_frequency=0.5,
                                               snr_db_min=5.0)},
    # bc_resnet_e80_spec_light_lr01
    "bc_resnet": {"epochs": 80, "learning_rate": 0.01, "data_params": dict(LIGHT_SPECAUGMENT)},
}


def recipe(model):
    """The default recipe of `model`: {training option: value, "data_params": {field: value}}."""
    result = copy.deepcopy(BASE_RECIPE)
    changes = copy.deepcopy(_CHANGES.get(model, {}))
    result["data_params"].update(changes.pop("data_params", {}))
    result.update(changes)
    return result


def searched(model):
    """Whether `model`'s default recipe comes from the search (else it is the base recipe)."""
    return model in _CHANGES
