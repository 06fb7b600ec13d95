"""peftlab: which way of adapting a code LLM is best for the machine you have."""

__version__ = "0.1.0"
