"""Datasets: mining source trees, JSONL records, prompt/completion examples with loss masking."""
