from .label_agreement import label_image_agreement

__all__ = ['label_image_agreement']
