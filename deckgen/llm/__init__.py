"""Model access. Every model, local or remote, is reached the same way: the `openai` client
pointed at an OpenAI-compatible base URL (llama.cpp's server, vLLM, or OpenAI itself)."""
