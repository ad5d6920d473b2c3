"""Model factories: text encoder, image backbones, softmax heads, CLIP-style models."""

from ecmm.models.heads import Classifier, SoftmaxHead
from ecmm.models.image import create_image_backbone
from ecmm.models.text import TextEncoder, load_text_encoder

__all__ = ["Classifier", "SoftmaxHead", "TextEncoder", "create_image_backbone", "load_text_encoder"]
