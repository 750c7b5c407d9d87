"""Small helpers for the sentences greenloop writes (progress, messages, the report)."""

__all__ = [
    "plural",
]


def plural(n: int, word: str) -> str:
    """ "1 test", "2 tests": the count with its noun. Only for nouns that take an -s."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
