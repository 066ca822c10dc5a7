"""Training, evaluation and export for vssavsr's SAVSR network (never imported by ``vssavsr`` itself).

- ``python -m training.train --config cpu-default --out runs/cpu``   (configs in ``training/configs/``)
- ``python -m training.evaluate --checkpoint runs/cpu/last.pt --quick``
- ``python -m training.export runs/cpu -o mine.safetensors``  -> ``core.savsr.Upscale(..., checkpoint=...)``
- ``python -m training.plot_log runs/cpu``

The network and checkpoint format come from ``vssavsr.model``; the LR inputs of training and evaluation come
from one function, ``training.degrade.asbi``. Data: ``training/DATA.md``; runs: ``training/RUNS.md``.
"""
