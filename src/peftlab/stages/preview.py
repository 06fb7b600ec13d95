"""``peftlab data preview``: the rendered prompt of a training record and which of its tokens carry loss."""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

from peftlab.config import Config
from peftlab.data.examples import IGNORE_INDEX
from peftlab.models.loading import load_tokenizer
from peftlab.prompting.format import resolve_prompt_format
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
    """Training records as the configured prompt format renders and tokenizes them; for a task without a
    training split (HumanEval, MBPP), the rendered prompts of its first test problems."""
    console = console or Console()
    task = get_task(config.task, config)
    # the data first: a bad source fails in one line before the model's first use (minutes of conversion)
    records = task.load("train" if task.trainable else "test")[:count]
    tokenizer = load_tokenizer(config.model.name)
    prompt_format = resolve_prompt_format(config.model.prompt_format, tokenizer, task)
    recorded = prompt_format.record()
    console.print(f"prompt format: {recorded['prompt_format']} (template sha256 {recorded['prompt_template_sha256']})",
                  markup=False, soft_wrap=True)  # one line, so the hash can be copied whole
    if not task.trainable:
        for problem in records:
            prompt = prompt_format.render(problem)
            console.rule(f"{problem['id']}: {len(tokenizer(prompt)['input_ids'])} prompt tokens")
            console.print(Text(prompt))
        return
    for record in records:
        example = prompt_format.training_example(record)
        with_loss = sum(label != IGNORE_INDEX for label in example["labels"])
        console.rule(f"{record['id']}: {len(example['input_ids'])} tokens, {with_loss} with loss")
        console.print(render_example(tokenizer, example["input_ids"], example["labels"]))
    console.print("[dim]dim: prompt, no loss[/]  [bold green]green: response + EOS (chat: end of turn), trained on[/]")
