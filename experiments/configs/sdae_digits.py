r"""Stacked denoising autoencoders on the embedded 8×8 digits, then fine-tuned as a classifier.

  python -m experiments.main --config=experiments/configs/sdae_digits.py --workdir=runs/sdae_digits

Vincent et al. 2010 at digits scale, beside `dbn_digits` (same sizes, same fine-tuning): denoising
autoencoder 1 (64 × 256, pixels in [0, 1], 25% masking noise, cross-entropy) and autoencoder 2 (256 × 256, on
autoencoder 1's clean codes, 25% masking noise), each trained with SGD (momentum 0.9, rate 0.1, cosine) for 30
epochs; then a 64-256-256-10 sigmoid MLP initialised from the two encoders and fine-tuned with SGD, beside the
same MLP trained from random weights (`test/accuracy` vs `test/accuracy_scratch` in metrics.jsonl). Cost on a
2-core CPU: about a minute; `:smoke` runs in seconds (64 × 12 × 8).
"""

import ml_collections

from deepvision import schema
from deepvision.train import autoencoder
from experiments.configs import common, dbn_digits


def get_config(arg: str | None = None):
  smoke = common.check_arg(arg, "sdae_digits")
  config = schema.defaults(autoencoder.AutoencoderConfig)
  config.trainer = "sdae"
  config.model = "dae"
  config.model_kwargs.n_visible = 64
  config.dataset = "dv_digits"
  config.batch_size = 20
  config.num_epochs = 30
  config.corruption = 0.25
  config.optimizer.schedule = "cosine"
  config.steps_per_dispatch = 16

  config.sdae = ml_collections.ConfigDict()
  config.sdae.hidden = (256, 256)  # n_hidden of each autoencoder, bottom first
  config.sdae.num_epochs = ()  # one per layer; () = config.num_epochs for every layer
  config.sdae.upper_model = "dae"  # the autoencoder of layers 2 … L
  config.sdae.evaluate_upper = False  # linear read-out of the upper layers' codes too

  # The DBN's fine-tuning, unchanged, so that the two pre-trainings are compared on equal terms.
  dbn = dbn_digits.get_config("smoke" if smoke else None)
  config.finetune = ml_collections.ConfigDict(dbn.finetune.to_dict())

  if smoke:
    config.sdae.hidden = (12, 8)
    config.num_epochs = 2
    config.linear_eval.enabled = False
  return common.locked(config)
