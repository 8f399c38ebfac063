"""The evaluation layer: eval cases (`cases`), scoring and gates (`metrics`), reports (`report`), and
fitting on the train split (`tune`, `finetune`, `calibrate`).
"""
