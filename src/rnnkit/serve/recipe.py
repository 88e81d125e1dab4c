"""Every default and limit of ``rnnkit serve`` (torch-free)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServeRecipe:
    """Where the playground listens and what one request may ask for."""

    host: str = "127.0.0.1"  # address to bind (loopback: only this machine can connect)
    port: int = 8000  # TCP port
    max_prime: int = 1000  # characters of a language model's prime
    max_length: int = 2000  # tokens one generation may ask for
    max_text: int = 1000  # characters of a text to translate
    max_beam: int = 16  # beam width (and n-best list) of one request
    max_body: int = 64 * 1024  # bytes of a request body (JSON)
    max_upload: int = 2 * 1024 * 1024  # bytes of an uploaded file (a CSV to forecast)
    max_audio: int = 16 * 1024 * 1024  # bytes of an uploaded or recorded audio file
    max_audio_seconds: float = 20.0  # seconds of audio one request may transcribe
    max_image: int = 16 * 1024 * 1024  # bytes of an uploaded picture to caption
    top_alternatives: int = 5  # alternatives shown per generated token
