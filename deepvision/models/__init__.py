"""Model families as Linen modules; their named variants live in `deepvision.zoo`."""

from deepvision.models.convnets import CifarConvNet, LeNet5, LeNet5_1998, MultiStageConvNet

__all__ = ["CifarConvNet", "LeNet5", "LeNet5_1998", "MultiStageConvNet"]
