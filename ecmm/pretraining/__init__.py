"""Source-domain pretraining recipes (the kit's stand-ins for ImageNet / LAION pretraining)."""
