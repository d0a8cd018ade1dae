"""Text tokenizers: a local word-level tokenizer for the synthetic benchmark, or any local checkpoint's.

The synthetic benchmark has a closed vocabulary (``vocab.txt``, every word of every question and answer),
so a word-level BERT-style tokenizer built from it is exact and tiny. It is saved as a standard
``transformers`` fast tokenizer, so the training code loads it exactly as it loads a pretrained BERT's
tokenizer for the real datasets: ``load_tokenizer(path)``. Nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from siasamrea.data.records import read_utf8

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def build_word_tokenizer(words: list[str], directory: str | Path):
    """Build a lower-casing, punctuation-splitting word-level tokenizer and save it to ``directory``.

    Special tokens get ids 0–4 (``[PAD]`` = 0, as BERT's padding index expects). Single sentences are encoded
    ``[CLS] a [SEP]``, pairs ``[CLS] a [SEP] b [SEP]`` with token types 0 / 1.

    Returns:
        the ``transformers.PreTrainedTokenizerFast``.
    """

    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for w in sorted(set(words)):
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    cls_id, sep_id = vocab["[CLS]"], vocab["[SEP]"]
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    Path(directory).mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(directory))
    return fast


def build_from_vocab_file(vocab_file: str | Path, directory: str | Path):
    """:func:`build_word_tokenizer` from a file with one word per line (the synthetic ``vocab.txt``)."""
    path = Path(vocab_file)
    if not path.is_file():
        raise FileNotFoundError(f"vocabulary file not found: {path}")

    words = [w.strip() for w in read_utf8(path).splitlines() if w.strip()]
    # The tokenizer splits punctuation off words, so the vocabulary must hold the pieces too.

    pieces = {p for w in words for p, _ in pre_tokenizers.Whitespace().pre_tokenize_str(w.lower())}
    return build_word_tokenizer(sorted(pieces), directory)


def load_tokenizer(path: str | Path):
    """Load a tokenizer from a local directory (a saved tokenizer or a pretrained checkpoint's folder)."""

    p = Path(path)
    if not p.is_dir():
        raise FileNotFoundError(f"tokenizer directory not found: {p}")
    try:
        return AutoTokenizer.from_pretrained(str(p), local_files_only=True)
    except (UnicodeDecodeError, ValueError, OSError) as e:
        # transformers' errors name no file: a vocabulary that is not UTF-8 is reported with its line.

        for f in sorted(p.iterdir()):
            if f.suffix in (".txt", ".json") and f.is_file():
                read_utf8(f)
        raise ValueError(f"{p}: cannot load a tokenizer from this directory ({e})") from e
