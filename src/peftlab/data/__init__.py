"""Datasets: mining, JSONL records, the instruction template and loss masking."""
