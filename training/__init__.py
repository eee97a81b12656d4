"""Fine-tuning recipe for deckgen's self-hosted model (LoRA with transformers + peft + trl).

Needs the `train` extra (`pip install -e '.[train]'`); the service itself never imports this."""
