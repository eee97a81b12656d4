"""The embedded local model: SmolLM2-135M-Instruct (GGUF) run by llama.cpp.

We run llama.cpp's OpenAI-compatible server (llama-cpp-python's, with the JSON grammar
checked lazily: deckgen/llm/lazy_grammar.py) as a child process rather than calling
llama.cpp in-process. Why: every route then goes through the
same `openai` client code (request shape, usage accounting, errors, timeouts), so the local
route exercises exactly what serves production; the model runs in its own process, free of
our GIL and killable on a timeout; and one server can be shared by many deckgen processes
(DECKGEN_LOCAL_URL). The cost is about a second of start-up per process. A LoRA adapter in
GGUF form (DECKGEN_LOCAL_LORA, training/embedded.sh) is applied by the same server.

Token counts for this model are exact: `LlamaCounter` loads only the GGUF's vocabulary and
formats messages with the same chat formatter the server uses."""

from __future__ import annotations

import functools
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from itertools import pairwise
from pathlib import Path
from typing import Any

from deckgen.errors import ConfigError, ModelError

Message = dict[str, str]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalServer:
    """llama.cpp's OpenAI-compatible server for one GGUF, on a free port of 127.0.0.1."""

    def __init__(self, model_path: Path, context: int, threads: int,
                 start_timeout: float = 120.0, lora_path: Path | None = None,
                 server_module: str = "deckgen.llm.lazy_grammar") -> None:
        self.model_path = model_path
        # llama-cpp-python's server with a grammar checked lazily (deckgen/llm/lazy_grammar.py);
        # "llama_cpp.server" is the library's own, for comparison (bench/local_phases.py)
        self.server_module = server_module
        self.lora_path = lora_path
        self.context = context
        self.threads = threads
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = tempfile.NamedTemporaryFile(prefix="deckgen-llama-", suffix=".log")
        self.url = ""

    def start(self) -> str:
        if self.lora_path is not None and not self.lora_path.is_file():
            raise ConfigError(f"DECKGEN_LOCAL_LORA names no file: {self.lora_path} (a GGUF "
                              "LoRA adapter for the local model: training/embedded.sh writes one)")
        port = free_port()
        cmd = [
            sys.executable, "-m", self.server_module,
            "--model", str(self.model_path),
            "--model_alias", self.model_path.stem,
            "--host", "127.0.0.1", "--port", str(port),
            "--n_ctx", str(self.context),
            "--n_threads", str(self.threads),
            # Requests queue instead of cutting each other off: sections arrive together.
            "--interrupt_requests", "False",
        ]
        if self.lora_path is not None:
            cmd += ["--lora_path", str(self.lora_path)]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{port}/v1"
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ModelError(f"the local llama.cpp server "
                                 f"{exit_reason(self.proc.returncode)} at start:\n{self.tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/models", timeout=2) as resp:
                    if resp.status == 200:
                        return self.url
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)
        self.stop()
        raise ModelError(f"the local llama.cpp server did not start in {self.start_timeout:.0f}s")

    def crash(self) -> str | None:
        """What killed the server, in words, with the last lines of its log; None while it
        runs (or was never started). A crashed server is not a slow one: it will not answer."""
        if self.proc is None or self.proc.poll() is None:
            return None
        return f"the local llama.cpp server {exit_reason(self.proc.returncode)}\n" \
               f"its last log lines:\n{self.tail(8)}"

    def state(self) -> str:
        if self.proc is None:
            return "stopped"
        return "running" if self.proc.poll() is None else "crashed"

    def tail(self, lines: int = 15) -> str:
        self.log.flush()
        text = Path(self.log.name).read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


# What each fatal signal usually means for llama.cpp, for the one message a person reads.
_SIGNAL_HINTS = {
    signal.SIGILL: "illegal instruction: the llama.cpp runtime was built for another CPU; "
                   "rebuild it with scripts/build_llama.sh (make install)",
    signal.SIGKILL: "killed: out of memory, or stopped by an operator",
    signal.SIGSEGV: "segmentation fault in llama.cpp",
    signal.SIGBUS: "bus error in llama.cpp",
    signal.SIGABRT: "aborted by llama.cpp (see its log)",
}


def exit_reason(returncode: int) -> str:
    """`died from SIGILL (illegal instruction: ...)` or `exited with status 1`. A signal shows
    as a negative code from Popen, or as 128+N when a shell sat in between."""
    number = -returncode if returncode < 0 else returncode - 128 if returncode > 128 else 0
    if number:
        try:
            sig = signal.Signals(number)
        except ValueError:
            return f"died from signal {number}"
        hint = _SIGNAL_HINTS.get(sig)
        return f"died from {sig.name}" + (f" ({hint})" if hint else "")
    return f"exited with status {returncode}"


_QUIET: Any = None


def _silence_llama_logs() -> None:
    """llama.cpp logs to stderr from C, even with verbose=False (loading a vocabulary alone
    warns about the missing context); in this process it only tokenizes, so drop its logs.
    The callback must stay referenced for as long as llama.cpp may call it."""
    global _QUIET
    import ctypes

    import llama_cpp

    if _QUIET is None:
        _QUIET = llama_cpp.llama_log_callback(lambda level, text, data: None)
        llama_cpp.llama_log_set(_QUIET, ctypes.c_void_p(0))


PART_CACHE_CHARS = 20_000


def _overlap(a: str, b: str) -> bool:
    """Whether one text contains the other, or one's end is the other's start."""
    if not b or a in b or b in a:
        return bool(b)
    return any(a.endswith(b[:k]) or b.endswith(a[:k]) for k in range(1, min(len(a), len(b))))


class LlamaCounter:
    """Exact prompt tokens for a GGUF model, as llama.cpp's server will count them."""

    def __init__(self, model_path: Path) -> None:
        from llama_cpp import Llama, llama_chat_format

        _silence_llama_logs()
        self.name = f"llama.cpp:{model_path.name}"
        self.llm = Llama(model_path=str(model_path), vocab_only=True, verbose=False)
        self._lock = threading.Lock()  # one llama.cpp vocab, shared by section threads
        fmt = self.llm.chat_format or "chat_template.default"
        if fmt == "chat_template.default":
            model = self.llm._model
            eos, bos = self.llm.token_eos(), self.llm.token_bos()
            self.formatter: Any = llama_chat_format.Jinja2ChatFormatter(
                template=self.llm.metadata["tokenizer.chat_template"],
                eos_token=model.token_get_text(eos) if eos != -1 else "",
                bos_token=model.token_get_text(bos) if bos != -1 else "",
                stop_token_ids=[eos],
            )
        else:
            # A format llama.cpp recognised from the template ("chatml", ...): the server
            # uses its registered formatter, format_<name>.
            self.formatter = getattr(llama_chat_format, "format_" + fmt.replace("-", "_"))
        self._cached = functools.lru_cache(maxsize=2048)(self._tokens)
        self._splitter = self._split_tokens()

    def count(self, messages: list[Message]) -> int:
        result = self.formatter(messages=messages)
        prompt, add_bos = result.prompt, not result.added_special
        if self._splitter is None or not prompt:
            return self._tokens(prompt, add_bos)
        # llama.cpp cuts a prompt at its special tokens and tokenizes the text between them
        # one piece at a time, so counting it in parts that start at such a token is exact;
        # the parts a prompt shares with earlier ones (instructions, examples) are cached.
        cuts = [0, *(m.start() for m in self._splitter.finditer(prompt, 1)), len(prompt)]
        return sum(self._part(prompt[a:b], add_bos and a == 0) for a, b in pairwise(cuts))

    def _tokens(self, text: str, add_bos: bool) -> int:
        with self._lock:
            return len(self.llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True))

    def _part(self, text: str, add_bos: bool) -> int:
        if len(text) > PART_CACHE_CHARS:  # a long brief's turn: not worth keeping
            return self._tokens(text, add_bos)
        return self._cached(text, add_bos)

    def _split_tokens(self) -> re.Pattern[str] | None:
        """The special tokens a prompt can be cut before and counted in parts: control
        tokens that take no whitespace from their left and overlap no other special token's
        text (so llama.cpp always matches them where they occur); None if there are none."""
        import llama_cpp

        model = self.llm._model
        special = (llama_cpp.LLAMA_TOKEN_ATTR_CONTROL | llama_cpp.LLAMA_TOKEN_ATTR_USER_DEFINED
                   | llama_cpp.LLAMA_TOKEN_ATTR_UNKNOWN)
        texts: dict[str, int] = {}
        for token in range(model.n_vocab()):
            attr = model.token_get_attr(token)
            if attr & special:
                texts[str(model.token_get_text(token))] = attr
        splits = [text for text, attr in texts.items()
                  if text and attr & llama_cpp.LLAMA_TOKEN_ATTR_CONTROL
                  and not attr & llama_cpp.LLAMA_TOKEN_ATTR_LSTRIP
                  and not any(_overlap(text, other) for other in texts if other != text)]
        if not splits:
            return None
        return re.compile("|".join(re.escape(t) for t in sorted(splits, key=len, reverse=True)))

    def tokens(self, text: str) -> int:
        """The tokens of `text` on its own (no chat template, no BOS): the budget's search
        estimates with these and then counts the prompts it chooses whole."""
        with self._lock:
            return len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))
