"""Foundation encoders as teachers from outside: a ``transformers`` vision model and its processor, turned into
"images in, embeddings out" (``load_encoder``, ``embed_images``).

It lives beside the models, never inside the training loop: ``embed``, ``suggest`` and ``check-labels`` use it,
and what fewlabels trains and exports stays one of its own models, so an exported student runs without
``transformers``. ``transformers`` is an optional extra (``pip install 'fewlabels[foundation]'``), imported only
when an encoder is loaded.
"""

from fewlabels.foundation.embedding import embed_images, embeddings_npz
from fewlabels.foundation.loading import Encoder, load_encoder

__all__ = ["Encoder", "embed_images", "embeddings_npz", "load_encoder"]
