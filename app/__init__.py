"""AI gateway: the OpenAI API in front of Ollama, OpenAI-compatible servers and llama.cpp."""

__version__ = "0.1.0"
