"""``scaling generate RUN_DIR@STEP --prompt TEXT``: a run's continuation of a text.

The run's ``config.json`` gives the model; its checkpoint at STEP gives the
parameters (only those: :meth:`scaling.checkpoint.Checkpointer.
restore_params`), laid out on this machine's devices (the recorded mesh is
not used). A pretraining run continues the prompt's UTF-8 bytes as plain
text (causal, positions from 0); a fine-tuning run (``finetune.task`` set)
reads the prompt as a task input, laid out as in its training rows (``input,
SEP`` with its ``finetune.attention``), and generates the target. Decoding is
:func:`scaling.decode.generate`: greedy at temperature 0, else sampled with
the seed; it stops at EOS, after ``max_new_tokens`` or at the run's
``seq_len``.
"""

from __future__ import annotations

from scaling import checkpoint as ckpt_lib
from scaling import config as config_lib
from scaling import decode
from scaling import program as program_lib
from scaling import rundir
from scaling import sharding
from scaling import tokenizer as tok_lib
from scaling.config import ConfigError
from scaling.tasks import rows as rows_lib


def load_run(spec: str):
  """``RUN_DIR@STEP`` → (config, program, params) on this machine's devices.

  Raises:
    ConfigError: (``RUN_DIR@STEP``) a malformed spec, no such checkpoint,
      or no readable ``config.json``.
  """
  try:
    run_dir, step = rundir.parse_init_from(spec)
  except ConfigError as e:
    raise ConfigError("RUN_DIR@STEP", str(e).split(": ", 1)[1]) from e
  recorded = rundir.read_run_config(run_dir, "RUN_DIR@STEP")["config"]
  config = config_lib.from_dict(recorded, f"{run_dir}/config.json")
  config.mesh = config_lib.default_config().mesh  # this machine's devices
  program = program_lib.build(config, sharding.make_mesh(config))
  ckpt = ckpt_lib.Checkpointer(run_dir / "checkpoints", 1, False)
  try:
    with program.context():
      params = ckpt.restore_params(step, program.abstract_state["params"])
  finally:
    ckpt.close()
  return config, program, params


def prompt_tokens(config, prompt: str):
  """The prompt as the run reads it: ``(tokens int32 [n], n_prefix)``.

  Raises:
    ConfigError: (``--prompt``) empty for a pretraining run, or longer than
      the run's ``seq_len`` allows.
  """
  if config.finetune.task:
    tokens, n_prefix = rows_lib.prompt_fields(
        prompt, attention=config.finetune.attention)
  else:
    tokens, n_prefix = tok_lib.ByteTokenizer().encode(prompt), 0
    if not tokens.size:
      raise ConfigError("--prompt", "is empty; give at least one character "
                        "to continue.")
  if tokens.size >= config.seq_len:
    raise ConfigError("--prompt", (
        f"takes {tokens.size} tokens, but the run's rows hold "
        f"{config.seq_len} (seq_len) and at least one must be generated; "
        "shorten the prompt."))
  return tokens, n_prefix


def generate(spec: str, prompt: str, *, max_new_tokens: int = 256,
             temperature: float = 0.0, seed: int = 0) -> str:
  """The run's continuation of ``prompt`` (module docstring).

  Args:
    spec: ``RUN_DIR@STEP``.
    prompt: the text to continue (a fine-tuning run: the task input).
    max_new_tokens: the most tokens generated.
    temperature: 0 for greedy decoding, else the sampling temperature.
    seed: the sampling seed.

  Returns:
    The generated text, up to (not including) EOS.

  Raises:
    ConfigError: see :func:`load_run` and :func:`prompt_tokens`;
      (``--max-new-tokens``, ``--temperature``) out of range.
  """
  if max_new_tokens < 1:
    raise ConfigError("--max-new-tokens", f"is {max_new_tokens}; generate at "
                      "least 1 token.")
  if not temperature >= 0:
    raise ConfigError("--temperature", f"is {temperature}; use 0 (greedy) or "
                      "a positive temperature.")
  config, program, params = load_run(spec)
  tokens, n_prefix = prompt_tokens(config, prompt)
  batch = decode.prompt_batch([tokens], [n_prefix])
  n_real = tok_lib.ByteTokenizer(config.tokenizer.n_sentinels).n_real
  with program.context():
    out = decode.generate(program.model, params, batch,
                          max_new_tokens=max_new_tokens, n_real=n_real,
                          temperature=temperature, seed=seed)
  return decode.texts(out)[0]
