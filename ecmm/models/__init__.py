"""Model factories: text encoder, image backbones, softmax heads, CLIP-style models (one protocol)."""

from ecmm.models.clip import ClipLike, create_clip_model, load_clip_model
from ecmm.models.heads import Classifier, SoftmaxHead
from ecmm.models.image import create_image_backbone
from ecmm.models.text import TextEncoder, load_text_encoder

__all__ = ["ClipLike", "Classifier", "SoftmaxHead", "TextEncoder", "create_clip_model", "create_image_backbone",
           "load_clip_model", "load_text_encoder"]
