"""Model factories: text encoder, image backbones, softmax heads, CLIP-style models."""

from ecmm.models.text import TextEncoder, load_text_encoder

__all__ = ["TextEncoder", "load_text_encoder"]
