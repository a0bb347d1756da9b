"""Data: document sources, causal packing, grain batches (DESIGN.md §2.3).

Typical use::

  corpus = load_corpus(config.data)
  stream = TrainStream(corpus, tokenizer, config.seq_len, config.batch_size,
                       config.data.seed, config.data.max_tokens,
                       config.objective, *sharding.process_shard(mesh))
  batch = sharding.to_global(stream.local_batch(step), mesh)
"""

from scaling.data.packing import BATCH_DTYPES
from scaling.data.packing import BATCH_KEYS
from scaling.data.packing import CausalRows
from scaling.data.packing import cap_documents
from scaling.data.packing import segment_row
from scaling.data.pipeline import TrainStream
from scaling.data.pipeline import eval_batches
from scaling.data.pipeline import unigram_entropy_bits_per_byte
from scaling.data.sources import Corpus
from scaling.data.sources import load_corpus

__all__ = [
    "BATCH_DTYPES", "BATCH_KEYS", "CausalRows", "Corpus", "TrainStream",
    "cap_documents", "eval_batches", "load_corpus", "segment_row",
    "unigram_entropy_bits_per_byte",
]
