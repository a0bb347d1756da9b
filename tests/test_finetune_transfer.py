"""Pretraining helps: fine-tuned beats from-scratch at equal fine-tuning steps.

A d_model 32, 2-layer byte LM pretrained for 150 steps (16 rows of 64) on
the stdlib corpus's training documents, then fine-tuned for 120 steps on
``stdlib_package`` (which function of a held-out package is it from: 4
balanced classes, chance 0.25), against the same model fine-tuned from a
fresh init with the same config, over 3 seeds: the pretrained mean test
accuracy is higher, and so is its gold-answer likelihood (lower bits per
byte). Measured once while writing it: 0.41 against 0.27 mean accuracy
(scratch at chance for 2 of 3 seeds), gold bpb 2.5 against 4.2; with 40
fine-tuning steps both arms sat at chance, so fewer steps would not test
the accuracy. Run in a subprocess with the persistent compilation cache, so
the six fine-tunes compile once (about a minute of CPU time in all).
``python bench/finetune_transfer.py`` prints the same comparison for the
generation task's BLEU and draws the figure.
"""

import json

import pytest

from tests.conftest import run_subprocess

pytestmark = pytest.mark.slow  # a pretraining run and six fine-tunes, ~1 min

_SCRIPT = r'''
import json, sys
from experiments import compile_cache, transfer
workdir, cache = sys.argv[1], sys.argv[2]
compile_cache.enable_compile_cache(cache)
source = transfer.pretrain(workdir, transfer.source_config(
    seq_len=64, steps=150, d_model=32))
runs = transfer.compare(source, 150, "stdlib_package", workdir, overrides=[
    ("train.steps", "120"), ("eval.every", "120"), ("checkpoint.every", "120"),
    ("train.log_every", "20"), ("checkpoint.async_save", "false")])
keys = ("test_accuracy", "test_macro_f1", "test_gold_bpb")
print("RESULT" + json.dumps({arm: [{k: s[k] for k in keys} for s in summaries]
                             for arm, summaries in runs.items()}))
'''


def test_pretrained_beats_scratch_on_test_accuracy(tmp_path):
  from experiments import transfer  # pylint: disable=import-outside-toplevel
  code = (f"import sys; sys.argv = ['-', {str(tmp_path / 'runs')!r}, "
          f"{str(tmp_path / 'cache')!r}]\n" + _SCRIPT)
  out = run_subprocess(code, devices=1, timeout=600)
  result = json.loads(out.split("RESULT", 1)[1].strip().splitlines()[0])
  stats = {arm: {k: transfer.mean_se([r[k] for r in runs]) for k in runs[0]}
           for arm, runs in result.items()}
  print(json.dumps(stats, indent=1))
  assert len(result["pretrained"]) == len(result["scratch"]) == 3
  pre, scratch = stats["pretrained"], stats["scratch"]
  assert pre["test_accuracy"][0] > scratch["test_accuracy"][0]
  assert pre["test_gold_bpb"][0] < scratch["test_gold_bpb"][0]
