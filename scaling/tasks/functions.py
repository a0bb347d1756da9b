"""Functions of Python documents, found with :mod:`ast`, for the built-in tasks.

A *function* here is a ``def`` (or ``async def``) at module level or in a
class body (also inside module- or class-level ``if``, ``for``, ``while``,
``with`` and ``try`` blocks), never one nested in another function: a nested
function's text is part of its parent's, and two examples sharing text could
land in different splits. Each function gives:

* ``code``: its source from the first decorator through its last statement,
  with its docstring's lines removed and the ``def``'s indentation removed
  from every line that has it (methods read like top-level functions);
* ``raw``: the same lines exactly as they are in the document (for the
  overlap check against training documents);
* ``docstring``: :func:`ast.get_docstring` (cleaned), or None.

A function is kept when its docstring (if any) has lines of its own (no
code shares them) and, without the docstring, its body has at least one
statement other than ``pass`` or ``...``; the rest are counted as skipped.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
from typing import Iterator

_FUNCTION_NODES = (ast.FunctionDef, ast.AsyncFunctionDef)


@dataclasses.dataclass(frozen=True)
class Function:
  """One function of a document (see the module docstring).

  Attributes:
    document: the document's name (``json/decoder.py``).
    qualname: dotted name within the module (``JSONDecoder.decode``).
    id: ``document::qualname``, with ``#k`` added for the k-th repeat of a
      qualname in the document (k >= 1; property setters, ``if``/``else``
      definitions).
    code: source without the docstring, dedented.
    raw: the function's source lines as in the document (docstring kept).
    docstring: the cleaned docstring, or None.
    lineno: 1-based line of its first decorator or ``def``.
  """
  document: str
  qualname: str
  id: str
  code: str
  raw: str
  docstring: str | None
  lineno: int


def _walk(body: list[ast.stmt], prefix: str) -> Iterator[tuple[str, ast.AST]]:
  """(qualname, node) of the functions in a module or class body."""
  for node in body:
    if isinstance(node, _FUNCTION_NODES):
      yield prefix + node.name, node
    elif isinstance(node, ast.ClassDef):
      yield from _walk(node.body, prefix + node.name + ".")
    elif isinstance(node, (ast.If, ast.For, ast.While, ast.With,
                           ast.AsyncWith)):
      yield from _walk(node.body, prefix)
      yield from _walk(getattr(node, "orelse", []), prefix)
    elif isinstance(node, ast.Try) or type(node).__name__ == "TryStar":
      yield from _walk(node.body, prefix)
      for handler in node.handlers:
        yield from _walk(handler.body, prefix)
      yield from _walk(node.orelse, prefix)
      yield from _walk(node.finalbody, prefix)


def _trivial(stmt: ast.stmt) -> bool:
  return isinstance(stmt, ast.Pass) or (
      isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
      and stmt.value.value is Ellipsis)


def _dedent(lines: list[str], indent: str) -> list[str]:
  out = []
  for line in lines:
    if line.startswith(indent):
      out.append(line[len(indent):])
    elif not line.strip():
      out.append("")
    else:  # a string literal's continuation line: leave it as it is
      out.append(line)
  return out


@functools.lru_cache(maxsize=1024)
def document_functions(name: str,
                       text: bytes) -> tuple[tuple[Function, ...], int]:
  """The functions of one document, in source order (cached in memory).

  Args:
    name: the document's name.
    text: its bytes (UTF-8 Python source).

  Returns:
    ``(functions, skipped)``: the kept functions, and how many were skipped
    (a docstring sharing a line with code, or an empty body). A document
    that does not decode or parse gives ``((), 0)``.
  """
  try:
    source = text.decode("utf-8")
    tree = ast.parse(source)
  except (UnicodeDecodeError, SyntaxError, ValueError):
    return (), 0
  lines = source.split("\n")
  seen: dict[str, int] = {}
  out, skipped = [], 0
  for qualname, node in _walk(tree.body, ""):
    repeat = seen.get(qualname, 0)
    seen[qualname] = repeat + 1
    first = min([node.lineno] + [d.lineno for d in node.decorator_list])
    last = node.end_lineno
    body = list(node.body)
    docstring = ast.get_docstring(node)
    drop = set()
    if docstring is not None:
      ds = body.pop(0)
      before = lines[ds.lineno - 1].encode("utf-8")[:ds.col_offset]
      if before.strip() or (body and body[0].lineno <= ds.end_lineno):
        skipped += 1  # the docstring shares a line with other code
        continue
      drop = set(range(ds.lineno, ds.end_lineno + 1))
    if not body or (len(body) == 1 and _trivial(body[0])):
      skipped += 1
      continue
    indent = lines[node.lineno - 1][:node.col_offset]
    span = range(first, last + 1)
    code = _dedent([lines[i - 1] for i in span if i not in drop], indent)
    raw = "\n".join(lines[i - 1] for i in span)
    fid = f"{name}::{qualname}" + (f"#{repeat}" if repeat else "")
    out.append(Function(document=name, qualname=qualname, id=fid,
                        code="\n".join(code), raw=raw, docstring=docstring,
                        lineno=first))
  return tuple(out), skipped
