"""The multi-stage experiment pipelines: importing this module registers their trainers.

Each pipeline registers itself in `deepvision.train.loop.TRAINERS` under the name a config's `trainer`
field selects, so `train_and_evaluate` runs it; the library itself names none of them:

  'dbn'         experiments/dbn.py: a deep belief net stacked from RBMs, fine-tuned against a scratch net;
  'deep_gmrf'   experiments/deep_gmrf.py: a deep gated MRF on natural-image patches, a tiled mcRBM;
  'gmrf_images' experiments/gmrf_images.py: whole-image models of the photographs, sampled and compared;
  'inpainting'  experiments/inpainting.py: a gated MRF of faces fills in held-out faces, against Gaussians;
  'occlusion'   experiments/occlusion.py: recognition under occlusion with a gated MRF's fill-in and features;
  'sdae'        experiments/sdae.py: stacked denoising autoencoders, fine-tuned with the DBN's machinery.

The launcher (`experiments.main`), the export script and the notebooks import it before running a config.
"""

from experiments import dbn, deep_gmrf, gmrf_images, inpainting, occlusion, sdae  # noqa: F401  pylint: disable=unused-import
