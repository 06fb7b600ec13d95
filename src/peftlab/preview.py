"""``peftlab data preview``: which tokens of a training record carry loss."""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

from peftlab.config import Config
from peftlab.data.examples import IGNORE_INDEX, tokenize_example
from peftlab.models import load_tokenizer
from peftlab.tasks import get_task


def render_example(tokenizer, input_ids: list[int], labels: list[int]) -> Text:
    """Masked (prompt) tokens dim, loss-bearing tokens bold green; token boundaries shown as '|'."""
    text = Text()
    for token_id, label in zip(input_ids, labels, strict=True):
        piece = tokenizer.decode([token_id])
        style = "dim" if label == IGNORE_INDEX else "bold green"
        text.append(piece, style=style)
        text.append("|", style="grey50")
    return text


def show_preview(config: Config, count: int, console: Console | None = None) -> None:
    console = console or Console()
    task = get_task(config.task, config)
    tokenizer = load_tokenizer(config.model.name)
    for record in task.load("train")[:count]:
        example = tokenize_example(tokenizer, task.prompt(record), task.response(record))
        with_loss = sum(label != IGNORE_INDEX for label in example["labels"])
        console.rule(f"{record['id']}: {len(example['input_ids'])} tokens, {with_loss} with loss")
        console.print(render_example(tokenizer, example["input_ids"], example["labels"]))
    console.print("[dim]dim: prompt, no loss[/]  [bold green]green: response + EOS, trained on[/]")
