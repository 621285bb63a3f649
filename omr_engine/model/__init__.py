"""Recognition model, training and export (needs the ``[train]`` extra: torch, onnx).

Modules: ``config`` (ModelConfig, presets; torch-free), ``network`` (OMRModel), ``loss``,
``data`` (collate, sampler), ``train`` (train, compute_ser), ``export`` (export_model),
``metrics`` (edit distance, SER; torch-free). Import them directly; this package's import
stays light.
"""
